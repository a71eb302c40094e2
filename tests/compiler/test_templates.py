"""Templates: request values stay data, and the fast path renders exactly what Jinja renders."""
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jinja2.exceptions import UndefinedError

from roomc.compiler.templates import TEXT_ENV, check, compile_condition, compile_text, is_template

HOSTILE = st.one_of(st.text(max_size=40), st.sampled_from(["{{7*7}}", "{% raw %}", "{{ secret }}", "}}{{", "%}"]))
TEMPLATES = st.sampled_from([
    "meeting-{{ query.room }}", "{{ query.room }}", "a{{query.x}}b{{ call.from }}c", "{{ room }}",
    "{{ call.raw }}", "x {{ query.items }}", "{{ query.missing }}", "plain text", "{{ call.digits }}-{{ role }}",
])


@given(template=TEMPLATES, room=HOSTILE, x=HOSTILE, caller=HOSTILE)
@settings(max_examples=300, deadline=None)
def test_fast_path_equals_jinja(template, room, x, caller):
    context = {"query": {"room": room, "x": x}, "call": {"from": caller, "digits": "", "raw": {"a": 1}},
               "room": room, "role": "host", "secret": {}}
    def outcome(render):
        try:
            return ("ok", render(context))
        except UndefinedError:
            return ("undefined", None)
    jinja = outcome(lambda c: TEXT_ENV.from_string(template).render(c))
    assert outcome(compile_text(template, fast=True)) == jinja


@given(value=HOSTILE)
def test_request_values_are_never_evaluated(value):
    assert compile_text("room-{{ query.room }}")({"query": {"room": value}}) == f"room-{value}"


def test_constant_strings_are_constants():
    assert not is_template("Welcome")
    assert compile_text("Welcome")({}) == "Welcome"


def test_missing_value_is_an_error_not_an_empty_string():
    with pytest.raises(UndefinedError):
        compile_text("meeting-{{ query.room }}")({"query": {}})


def test_conditions_are_false_when_values_are_missing_or_break():
    assert compile_condition("query.host == '1'")({"query": {}}) is False
    assert compile_condition("query.host == '1'")({"query": {"host": "1"}}) is True
    assert compile_condition("query.n | int > 3")({"query": {"n": "x"}}) is False
    assert compile_condition("query.__class__.__mro__")({"query": {}}) is False


def test_sandbox_refuses_unsafe_attributes():
    from jinja2.exceptions import SecurityError, UndefinedError
    # The sandbox hides `__class__` (undefined), so nothing of the interpreter leaks into a call.
    with pytest.raises((SecurityError, UndefinedError)):
        compile_text("{{ query.__class__.__mro__ }}", fast=False)({"query": {}})
    with pytest.raises((SecurityError, UndefinedError)):
        compile_text("{{ query.__class__.__mro__ }}", fast=True)({"query": {}})


def test_static_checks():
    assert check("{{ query.room }}") == ()
    assert [p.code for p in check("{{ query.room }")] == ["RC301"]
    assert [p.code for p in check("{{ caller }}")] == ["RC302"]
    assert [p.code for p in check("{{ call.fromm }}")] == ["RC302"]
    assert [p.code for p in check("{{ secret.PIN }}", secrets=frozenset({"PIN"}))] == []
    assert [p.code for p in check("{{ room }}", unavailable=frozenset({"room"}))] == ["RC302"]
    assert [p.line for p in check("a\n{{ nope }}")] == [2]


CONDITIONS = st.sampled_from([
    "query.host == '1'", "call.from in ['+254700000009', '+254700000001']", "call.digits == secret.HOST_PIN",
    "query.host != '1'", "not query.host", "query.a == '1' and call.from == 'x'", "query.a == '1' or query.b",
    "role == 'host'", "query.items", "call.digits not in ('1', '2')", "query.n | int > 3", "secret.MISSING == ''",
])


@given(condition=CONDITIONS, host=HOSTILE, caller=HOSTILE, digits=HOSTILE, pin=st.one_of(st.none(), HOSTILE),
       present=st.booleans())
@settings(max_examples=300, deadline=None)
def test_condition_fast_path_equals_jinja(condition, host, caller, digits, pin, present):
    query = {"host": host, "a": host, "n": digits} if present else {}
    context = {"query": query, "call": {"from": caller, "digits": digits},
               "secret": {} if pin is None else {"HOST_PIN": pin}, "room": "r"}
    assert compile_condition(condition, fast=True)(context) == compile_condition(condition, fast=False)(context)


@pytest.mark.parametrize("source", [
    "Hi {{ query.room }}", "{% for i in range(3) %}{% if i %}{{ i | upper }}{% endif %}{% endfor %}",
    "{% set a = [1, (2, 3)] %}{{ a[0] ~ call.digits if call.digits == '1' else secret.pin }}\n{{ x.y.z(1, k=2) }}",
    "{% macro m(a) %}{{ a }}{% endmacro %}{{ m('x') }}{# c #}{% raw %}{{ %}{% endraw %}",
])
def test_the_cached_node_walk_is_jinjas_find_all(source):
    """The static checks read one cached walk instead of walking the tree per check: same nodes, same order."""
    from jinja2 import nodes

    from roomc.compiler.templates import _find, _syntax

    tree, problem = _syntax(source, False)
    assert problem is None and tree is not None
    for kinds in (nodes.Node, nodes.Name, (nodes.Filter, nodes.Test), nodes.Getattr, nodes.Const, nodes.For):
        assert [id(n) for n in _find(tree, kinds)] == [id(n) for n in tree.find_all(kinds)]


SIMPLE_PIECES = st.sampled_from(["r1-", "Welcome to ", " ", "-", "a.b", "x_y", "%", "é", "{{ query.room }}",
                                 "{{room}}", "{{ call.digits }}", "{{\tq.a.b }}", "{{ true }}", "{{ none }}",
                                 "{{ not }}", "{{ query.if }}", "{{ a.b.c.d }}", "{{ _x }}", "{{ a .b }}",
                                 "{{- a }}", "{", "}", "}}", "\n", "{{ 1 }}", "{{ a|upper }}", "{{ in }}"])


@settings(max_examples=300, deadline=None)
@given(st.lists(SIMPLE_PIECES, min_size=1, max_size=6).map("".join))
def test_simple_templates_get_jinjas_own_tree(source):
    """The direct tree for text and `{{ a.b }}` parts equals Jinja's parse, fields and line numbers alike."""
    from jinja2 import TemplateSyntaxError, nodes

    from roomc.compiler.templates import _simple_tree

    simple = _simple_tree(source)
    if simple is None:
        return
    try:
        parsed = TEXT_ENV.parse(source)
    except TemplateSyntaxError:
        raise AssertionError(f"built a tree for {source!r}, which Jinja refuses") from None
    assert simple == parsed
    assert [n.lineno for n in simple.find_all(nodes.Node)] == [n.lineno for n in parsed.find_all(nodes.Node)]


def test_the_common_shapes_take_the_direct_path():
    from roomc.compiler.templates import _simple_tree

    for source in ("r1-{{ query.room }}", "{{ a }}{{ b.c }}x", "Room {{ room }} is full."):
        assert _simple_tree(source) is not None
    for source in ("{{ a | upper }}", "{% if a %}x{% endif %}", "{{ true }}", "a\n{{ b }}", "{{- a }}"):
        assert _simple_tree(source) is None


SHAPE_TEXT = st.sampled_from(["r1-", "Welcome to ", " ", "-", "query", "call.fromm ", "secret", "_x", "é", "now",
                              "a.b", "%", "**"])
SHAPE_NAMES = st.sampled_from(["query.room", "call.digits", "call.fromm", "call.raw.x", "now.hour", "now.hours",
                               "secret.PIN", "secret.OTHER", "secret", "room", "role", "caller", "query._x",
                               "range", "q.a.b", "now"])
SHAPED = st.lists(st.one_of(SHAPE_TEXT, SHAPE_NAMES.map(lambda n: "{{ " + n + " }}"),
                            SHAPE_NAMES.map(lambda n: "{{" + n + "}}")), min_size=1, max_size=6).map("".join)


@settings(max_examples=400, deadline=None)
@given(source=SHAPED, secrets=st.frozensets(st.sampled_from(["PIN", "OTHER"])),
       unavailable=st.frozensets(st.sampled_from(["room", "role", "secret"])))
def test_checks_by_shape_equal_checks_of_each_template(source, secrets, unavailable):
    """Templates that differ only in literal text are checked once, by shape: every answer, position and message
    equals the template's own (the shape is bypassed by patching it out)."""
    from unittest import mock

    from roomc.compiler import templates

    def answers() -> tuple:
        return (templates.check(source, secrets=secrets, unavailable=unavailable),
                templates.failing(source, False), templates.costly(source, False),
                templates.mismatched_comparisons(source, False), templates.secret_names(source),
                templates.reads_now(source), templates.uses_request(source))

    shaped = answers()
    with mock.patch.object(templates, "_shape", lambda _: None):
        assert answers() == shaped


def test_shapes_leave_the_literal_text_out():
    from roomc.compiler.templates import MAX_TEMPLATE, _shape

    assert _shape("r1-{{ query.room }}") == _shape("meet-{{query.room}}") == "{{ query.room }}"
    assert _shape("a{{ b.c }}d{{ e }}") == "{{ b.c }}{{ e }}"
    for source in ("plain", "{{ a | upper }}", "a\n{{ b }}", "{{ true }}", "x" * MAX_TEMPLATE + "{{ a }}"):
        assert _shape(source) is None
