"""Templates: one sandboxed Jinja environment, static checks for the linter, and fast renderers.

Request values are only ever passed in as data, never parsed as templates, so a
caller who sends `{{7*7}}` gets those characters back as text. Simple
`{{ name.attr }}` substitutions skip Jinja's machinery but call the same
`environment.getattr`, so their output (and their errors) equal Jinja's.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Callable

from jinja2 import StrictUndefined, TemplateSyntaxError, Undefined, meta, nodes
from jinja2.sandbox import SandboxedEnvironment

# Text is rendered strictly: a missing value is an error (the caller gets the fallback),
# never an empty string that could put two meetings in one room.
TEXT_ENV = SandboxedEnvironment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)
# Conditions are lenient: `query.host == '1'` is simply false when there is no `host`.
CONDITION_ENV = SandboxedEnvironment(undefined=Undefined, autoescape=False)

CONTEXT_NAMES = frozenset({"query", "call", "room", "role", "secret"})
CALL_FIELDS = frozenset({"id", "from", "to", "direction", "digits", "clientRequestId", "raw"})
TEMPLATE_MARKERS = ("{{", "{%", "{#")

Renderer = Callable[[dict], str]


def is_template(text: Any) -> bool:
    """Whether a string has template syntax in it (a plain string is emitted as a constant)."""
    return isinstance(text, str) and any(marker in text for marker in TEMPLATE_MARKERS)


@dataclass(frozen=True)
class TemplateProblem:
    code: str
    line: int  # 1-based line inside the template
    message: str


@functools.lru_cache(maxsize=4096)
def _syntax(source: str, expression: bool) -> tuple[nodes.Template | None, TemplateProblem | None]:
    try:
        if expression:
            CONDITION_ENV.compile_expression(source)
            return TEXT_ENV.parse("{{ (" + source + ") }}"), None
        return TEXT_ENV.parse(source), None
    except TemplateSyntaxError as exc:
        return None, TemplateProblem("RC301", exc.lineno or 1, f"template syntax error: {exc.message}")


@functools.lru_cache(maxsize=4096)
def check(source: str, *, expression: bool = False, secrets: frozenset[str] = frozenset(),
          unavailable: frozenset[str] = frozenset()) -> tuple[TemplateProblem, ...]:
    """Static problems in a template or condition: syntax, unknown names, unknown fields (cached)."""
    if not expression and not is_template(source):
        return ()
    tree, problem = _syntax(source, expression)
    if problem:
        return (problem,)
    assert tree is not None
    found = []
    allowed = CONTEXT_NAMES - unavailable
    for name in sorted(meta.find_undeclared_variables(tree)):
        if name not in allowed:
            where = " here" if name in CONTEXT_NAMES else ""
            found.append(TemplateProblem("RC302", _first_line(tree, name),
                                         f"undefined template variable '{name}'{where}; "
                                         f"available: {', '.join(sorted(allowed))}"))
    for node in tree.find_all(nodes.Getattr):
        if not isinstance(node.node, nodes.Name):
            continue
        if node.node.name == "call" and node.attr not in CALL_FIELDS:
            found.append(TemplateProblem("RC302", node.lineno,
                                         f"'call.{node.attr}' is not a call field; fields: {', '.join(sorted(CALL_FIELDS))} "
                                         "(other request fields are under call.raw)"))
        if node.node.name == "secret" and node.attr not in secrets:
            found.append(TemplateProblem("RC302", node.lineno,
                                         f"'secret.{node.attr}' is not declared under `secrets`"))
    return tuple(found)


def secret_names(source: str) -> set[str]:
    """Names read from `secret` in a template (empty when it does not parse)."""
    tree, _ = _syntax(source, False)
    if tree is None:
        return set()
    names = {n.attr for n in tree.find_all(nodes.Getattr) if isinstance(n.node, nodes.Name) and n.node.name == "secret"}
    if any(n.name == "secret" for n in tree.find_all(nodes.Name)) and not names:
        names.add("*")
    return names


def uses_request(source: str) -> bool:
    """Whether a template reads anything from the request (query or call)."""
    tree, _ = _syntax(source, False)
    return tree is not None and bool({"query", "call"} & meta.find_undeclared_variables(tree))


def _first_line(tree: nodes.Template, name: str) -> int:
    return next((n.lineno for n in tree.find_all(nodes.Name) if n.name == name), 1)


def _output_nodes(source: str, env: SandboxedEnvironment) -> list[nodes.Expr] | None:
    """The children of a template that is a single output statement, or None."""
    try:
        tree = env.parse(source)
    except TemplateSyntaxError:
        return None
    if len(tree.body) != 1 or not isinstance(tree.body[0], nodes.Output):
        return None
    return tree.body[0].nodes


Value = Callable[[dict], Any]


def _fast_value(node: nodes.Node, env: SandboxedEnvironment) -> Value | None:
    """A direct function for the few node shapes policies use; None means "let Jinja do it"."""
    getattr_ = env.getattr
    if isinstance(node, nodes.Name) and node.ctx == "load":
        name, undefined = node.name, env.undefined
        return lambda c: c[name] if name in c else undefined(name=name)
    if isinstance(node, nodes.Const):
        constant = node.value
        return lambda c: constant
    if isinstance(node, (nodes.List, nodes.Tuple)) and all(isinstance(i, nodes.Const) for i in node.items):
        items = [i.value for i in node.items if isinstance(i, nodes.Const)]
        sequence = tuple(items) if isinstance(node, nodes.Tuple) else items
        return lambda c: sequence
    if isinstance(node, nodes.Getattr):
        inner = _fast_value(node.node, env)
        if inner is None:
            return None
        attr, of = node.attr, inner
        return lambda c: getattr_(of(c), attr)
    if isinstance(node, nodes.Filter):
        return _fast_default(node, env)
    if isinstance(node, nodes.Compare) and len(node.ops) == 1 and node.ops[0].op in _COMPARE:
        left, right = _fast_value(node.expr, env), _fast_value(node.ops[0].expr, env)
        if left is None or right is None:
            return None
        op, lhs, rhs = _COMPARE[node.ops[0].op], left, right
        return lambda c: op(lhs(c), rhs(c))
    if isinstance(node, (nodes.And, nodes.Or)):
        left, right = _fast_value(node.left, env), _fast_value(node.right, env)
        if left is None or right is None:
            return None
        lhs, rhs = left, right
        if isinstance(node, nodes.And):
            return lambda c: lhs(c) and rhs(c)
        return lambda c: lhs(c) or rhs(c)
    if isinstance(node, nodes.Not):
        inner = _fast_value(node.node, env)
        if inner is None:
            return None
        negated = inner
        return lambda c: not negated(c)
    return None


def _fast_default(node: nodes.Filter, env: SandboxedEnvironment) -> Value | None:
    """`x | default('literal')`: the literal when x is undefined, as Jinja's filter does."""
    if node.name != "default" or node.node is None or len(node.args) != 1 or node.kwargs or node.dyn_args \
            or node.dyn_kwargs:
        return None
    argument = node.args[0]
    inner = _fast_value(node.node, env)
    if inner is None or not isinstance(argument, nodes.Const):
        return None
    fallback, of = argument.value, inner

    def default(c: dict) -> Any:
        value = of(c)
        return fallback if isinstance(value, Undefined) else value
    return default


_COMPARE = {"eq": lambda a, b: a == b, "ne": lambda a, b: a != b, "in": lambda a, b: a in b,
            "notin": lambda a, b: a not in b}


def _fast_renderer(source: str) -> Renderer | None:
    """Literal text and simple substitutions, computed as Jinja's generated code computes them."""
    children = _output_nodes(source, TEXT_ENV)
    if children is None:
        return None
    parts: list[Any] = []
    for child in children:
        if isinstance(child, nodes.TemplateData):
            parts.append(child.data)
            continue
        value = _fast_value(child, TEXT_ENV)
        if value is None:
            return None
        parts.append(value)

    def render(context: dict) -> str:
        # str() of a StrictUndefined raises UndefinedError, exactly as Jinja's own output does.
        return "".join(p if p.__class__ is str else str(p(context)) for p in parts)

    return render


def compile_text(source: str, *, fast: bool = True) -> Renderer:
    """A function rendering `source` against a context; constants cost nothing to render."""
    if not is_template(source):
        def constant(context: dict) -> str:
            return source
        return constant
    if fast:
        renderer = _fast_renderer(source)
        if renderer is not None:
            return renderer
    template = TEXT_ENV.from_string(source)
    return lambda context: template.render(context)


def compile_condition(source: str, *, fast: bool = True) -> Callable[[dict], bool]:
    """A role or branch condition as a function of the context; any error counts as false."""
    children = _output_nodes("{{ (" + source + ") }}", CONDITION_ENV) if fast else None
    direct = _fast_value(children[0], CONDITION_ENV) if children and len(children) == 1 else None
    if direct is None:
        expression = CONDITION_ENV.compile_expression(source)

        def direct(context: dict) -> Any:
            return expression(**context)

    def holds(context: dict) -> bool:
        try:
            return bool(direct(context))
        except Exception:  # a hostile value must not crash the call; the condition simply does not hold
            return False

    return holds
