"""Templates: one bounded sandbox, static checks for the linter, and fast renderers.

Request values are only ever passed in as data, never parsed as templates, so a
caller who sends `{{7*7}}` gets those characters back as text. Simple
`{{ name.attr }}` substitutions skip Jinja's machinery but call the same
`environment.getattr`, so their output (and their errors) equal Jinja's.

Policies are untrusted input too, so nothing is evaluated at lint time (templates
are parsed, never compiled: Jinja's optimizer would fold `'a' * 10**9` while
compiling) and every render is bounded: loop iterations and calls share one budget,
`*`, `**` and `%` refuse results past a size, no call returns a value past a size,
and the output of one field stops growing at MAX_OUTPUT characters.
"""
from __future__ import annotations

import contextvars
import functools
import re
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator
from urllib.parse import quote

from jinja2 import StrictUndefined, TemplateSyntaxError, Undefined, nodes
from jinja2.exceptions import SecurityError
from jinja2.filters import FILTERS
from jinja2.parser import Parser
from jinja2.compiler import CodeGenerator, Frame
from jinja2.sandbox import ImmutableSandboxedEnvironment

MAX_STEPS = 100_000  # loop iterations + calls + range items per render
MAX_VALUE = 10_000  # characters or items of any intermediate value
MAX_OUTPUT = 10_000  # characters of one rendered field
MAX_NUMBER_BITS = 256  # `**` and `*` on integers
MAX_ARGUMENT = 100_000  # an integer passed to any call (widths, counts)
MAX_TEMPLATE = 10_000  # characters of one template's source: no field renders more than MAX_OUTPUT anyway
# Filters a policy may use; the rest (center, indent, format, batch, slice, wordwrap, ...) can
# amplify a few characters into gigabytes, or are meaningless in speech and URLs.
ALLOWED_FILTERS = ("abs", "capitalize", "count", "d", "default", "dictsort", "e", "escape", "first", "float", "int",
                   "join", "last", "length", "list", "lower", "map", "max", "min", "reject", "rejectattr", "replace",
                   "reverse", "round", "select", "selectattr", "sort", "string", "sum", "title", "trim", "truncate",
                   "unique", "upper", "urlencode", "wordcount")


class LimitExceeded(SecurityError):
    """A render went past one of the bounds above; the caller gets the fallback."""


_BUDGET: contextvars.ContextVar[list[int] | None] = contextvars.ContextVar("roomc_render_budget", default=None)


def _spend(steps: int) -> None:
    budget = _BUDGET.get()
    if budget is None:
        return
    budget[0] -= steps
    if budget[0] < 0:
        raise LimitExceeded(f"template did more than {MAX_STEPS:,} loop iterations and calls; refused")


def _sized(value: Any) -> Any:
    if isinstance(value, (str, list, tuple, dict)) and len(value) > MAX_VALUE:
        raise LimitExceeded(f"template built a value of {len(value):,} characters or items "
                            f"(at most {MAX_VALUE:,}); refused")
    return value


def _bounded_range(*args: int) -> range:
    numbers = range(*args)
    if len(numbers) > MAX_VALUE:
        raise LimitExceeded(f"range of {len(numbers):,} items (at most {MAX_VALUE:,}); refused")
    _spend(len(numbers))
    return numbers


def _loop(iterable: Any) -> Iterator[Any]:
    """Every `{% for %}` iterates through this, so nested loops spend one shared budget."""
    for item in iterable:
        _spend(1)
        yield item


def _replace(value: Any, old: str, new: str, count: int | None = None) -> str:
    text = str(value)
    hits = (len(text) + 1 if old == "" else text.count(str(old))) if count is None else min(count, len(text) + 1)
    if len(text) + hits * max(0, len(str(new)) - len(str(old))) > MAX_VALUE:
        raise LimitExceeded(f"replace would build more than {MAX_VALUE:,} characters; refused")
    return text.replace(str(old), str(new), -1 if count is None else count)


def _join(value: Iterable, d: str = "", attribute: Any = None) -> str:
    items = [str(v if attribute is None else getattr(v, str(attribute), "")) for v in value]
    if sum(map(len, items)) + len(d) * max(0, len(items) - 1) > MAX_VALUE:
        raise LimitExceeded(f"join would build more than {MAX_VALUE:,} characters; refused")
    return str(d).join(items)


def _too_big_number(left: Any, right: Any, operator: str) -> bool:
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in (left, right)):
        return False
    if operator == "*":
        return left.bit_length() + right.bit_length() > MAX_NUMBER_BITS
    return right > 0 and max(left.bit_length(), 1) * right > MAX_NUMBER_BITS and abs(left) > 1


class _BoundedCodeGenerator(CodeGenerator):
    """`~` compiles to a join Jinja's sandbox never sees: route it through a size check."""

    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        self.write("environment.bounded_concat((")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write("))")


class BoundedSandbox(ImmutableSandboxedEnvironment):
    """Jinja's sandbox with sizes and work bounded, and without constant folding."""

    intercepted_binops = frozenset({"*", "**", "%", "+"})
    code_generator_class = _BoundedCodeGenerator

    @staticmethod
    def bounded_concat(parts: tuple) -> str:
        """`a ~ b ~ c`, refused past MAX_VALUE characters (ten doublings of a short string pass 10^9)."""
        texts = [part if isinstance(part, str) else str(_sized(part)) for part in parts]
        if sum(map(len, texts)) > MAX_VALUE:
            raise LimitExceeded(f"`~` would build more than {MAX_VALUE:,} characters; refused")
        return "".join(texts)

    def __init__(self, **options: Any) -> None:
        super().__init__(optimized=False, autoescape=False, **options)
        self.filters = {name: FILTERS[name] for name in ALLOWED_FILTERS}
        self.filters.update(replace=_replace, join=_join)
        self.globals = {"range": _bounded_range, "dict": dict, "roomc_loop": _loop}

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "*" and isinstance(left, int) and isinstance(right, (str, list, tuple)):
            left, right = right, left  # 3 * 'a' is 'a' * 3
        if operator == "*" and isinstance(left, (str, list, tuple)) and isinstance(right, int):
            if len(left) * max(right, 0) > MAX_VALUE:
                raise LimitExceeded(f"repeating {len(left):,} items {right:,} times is more than {MAX_VALUE:,}; refused")
        elif operator in ("*", "**") and _too_big_number(left, right, operator):
            raise LimitExceeded(f"`{operator}` would build a number past {MAX_NUMBER_BITS} bits; refused")
        elif operator == "+" and isinstance(left, (str, list, tuple)) and isinstance(right, (str, list, tuple)):
            if len(left) + len(right) > MAX_VALUE:
                raise LimitExceeded(f"`+` would build more than {MAX_VALUE:,} items; refused")
        elif operator == "%" and isinstance(left, str) and re.search(r"\d{5,}", left):
            raise LimitExceeded("a format width or precision of 10,000 or more; refused")
        return _sized(super().call_binop(context, operator, left, right))

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805 - Jinja's signature
        _spend(1)
        for argument in (*args, *kwargs.values()):
            if isinstance(argument, int) and not isinstance(argument, bool) and abs(argument) > MAX_ARGUMENT:
                raise LimitExceeded(f"argument {argument:,} is larger than {MAX_ARGUMENT:,}; refused")
            _sized(argument)
        method = getattr(__obj, "__wrapped__", __obj)
        owner, name = getattr(method, "__self__", None), getattr(method, "__name__", "")
        if isinstance(owner, str) and name in ("format", "format_map") and re.search(r"\d{5,}", owner):
            raise LimitExceeded("a format width or precision of 10,000 or more; refused")
        if isinstance(owner, str) and name == "replace" and len(args) >= 2:
            return _replace(owner, *args[:3])
        if isinstance(owner, str) and name == "join" and args:
            return _join(args[0], owner)
        return _sized(super().call(__context, __obj, *args, **kwargs))


def _quote_part(value: Any) -> str:
    """A request value inside a URL: every reserved character encoded, so it stays one value."""
    return quote(str(value), safe="")


# Text is rendered strictly: a missing value is an error (the caller gets the fallback),
# never an empty string that could put two meetings in one room.
TEXT_ENV = BoundedSandbox(undefined=StrictUndefined, keep_trailing_newline=True)
# URL fields: what a `{{ }}` puts into a URL is percent-encoded (no `../`, `?`, spaces or CRLF verbatim).
URL_ENV = BoundedSandbox(undefined=StrictUndefined, keep_trailing_newline=True, finalize=_quote_part)
# Conditions are lenient: `query.host == '1'` is simply false when there is no `host`.
CONDITION_ENV = BoundedSandbox(undefined=Undefined)

CONTEXT_NAMES = frozenset({"query", "call", "room", "role", "secret", "now"})
# `now`: the wall clock in the policy's zone at request time (compiler/hours.py now_view); never read at compile time.
NOW_FIELDS = frozenset({"iso", "date", "time", "weekday", "hour", "minute", "year", "month", "day", "zone",
                        "timestamp"})
CALL_FIELDS = frozenset({"id", "from", "to", "direction", "digits", "clientRequestId", "raw"})
TEMPLATE_MARKERS = ("{{", "{%", "{#")

Renderer = Callable[[dict], str]


def is_template(text: Any) -> bool:
    """Whether a string has template syntax in it (a plain string is emitted as a constant)."""
    # Written out (not any() over TEMPLATE_MARKERS): it is asked of every string of a policy, several times.
    return isinstance(text, str) and ("{{" in text or "{%" in text or "{#" in text)


@dataclass(frozen=True)
class TemplateProblem:
    code: str
    line: int  # 1-based line inside the template
    message: str
    column: int = 0  # 1-based column inside the template line; 0 when only the line is known


def _position(source: str, offset: int) -> tuple[int, int]:
    before = source[:offset]
    return before.count("\n") + 1, offset - (before.rfind("\n") + 1) + 1


class _LocatedTokens:
    """Jinja's token stream, remembering where in the source each token starts (Jinja keeps only lines)."""

    def __init__(self, source: str):
        self.source = source
        self.offsets: dict[int, int] = {}
        self.position = 0
        self.lex_error_at: int | None = None
        self.parser: Parser | None = None

    def tokens(self) -> Iterator[Any]:
        lexer = TEXT_ENV.lexer
        raw = lexer.tokeniter(self.source, None)
        while True:
            try:
                lineno, kind, value = next(raw)
            except StopIteration:
                return
            except TemplateSyntaxError:
                # The lexer stopped at the first character past the last token it read.
                rest = self.source[self.position:]
                self.lex_error_at = self.position + len(rest) - len(rest.lstrip())
                raise
            found = self.source.find(value, self.position) if value else -1
            start = found if found >= 0 else self.position
            for token in lexer.wrap(iter([(lineno, kind, value)])):
                self.offsets[id(token)] = start
                yield token
            self.position = start + len(value)


def _located_error(source: str, exc: TemplateSyntaxError, where: _LocatedTokens, parser: Parser | None,
                   shift: int) -> TemplateProblem:
    """The syntax error at the exact line and column of the token (or character) it is about."""
    line, column = exc.lineno or 1, 0
    lexed = re.search(r" at (\d+)$", exc.message or "")
    if lexed:  # the lexer names the offset of the character it could not read
        line, column = _position(source, max(int(lexed.group(1)) - shift, 0))
    elif where.lex_error_at is not None:
        line, column = _position(source, max(min(where.lex_error_at - shift, len(source)), 0))
    elif parser is not None and id(parser.stream.current) in where.offsets:
        offset = where.offsets[id(parser.stream.current)] - shift
        if parser.stream.current.type == "eof":
            offset = len(source)
        line, column = _position(source, max(min(offset, len(source)), 0))
    message = re.sub(r" at \d+$", "", exc.message or "invalid template")
    return TemplateProblem("RC301", line, f"template syntax error: {message}", column)


# Text and `{{ name.attr... }}` substitutions on one line: the shape most policy strings have.
_SIMPLE_PART = re.compile(r"\{\{[ \t]*([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)[ \t]*\}\}|([^{}\r\n]+)")
# Names Jinja's parser reads as something other than a variable in first position.
_NOT_VARIABLES = frozenset({"true", "false", "True", "False", "none", "None", "not", "and", "or", "in", "is", "if",
                            "else"})


def _simple_parts(source: str) -> list[tuple[str, list[str] | None]] | None:
    """A template of text and `{{ a.b }}` parts on one line, as (text, None) and ("", [a, b]) pieces; else None."""
    parts: list[tuple[str, list[str] | None]] = []
    position = 0
    for match in _SIMPLE_PART.finditer(source):
        if match.start() != position:
            return None
        position = match.end()
        if match.group(2) is not None:
            parts.append((match.group(2), None))
            continue
        names = match.group(1).split(".")
        if names[0] in _NOT_VARIABLES:
            return None
        parts.append(("", names))
    if position != len(source) or not parts:
        return None
    return parts


def _simple_tree(source: str) -> nodes.Template | None:
    """The tree Jinja's parser builds for a template of text and `{{ a.b }}` parts, built directly; else None.

    Parsing is most of what lint spends on templates, and most templates have only this shape;
    a test holds the two trees equal, line numbers included.
    """
    pieces = _simple_parts(source)
    if pieces is None:
        return None
    parts: list[nodes.Expr] = []
    for text, names in pieces:
        if names is None:
            parts.append(nodes.TemplateData(text, lineno=1))
            continue
        first, *attributes = names
        expr: nodes.Expr = nodes.Name(first, "load", lineno=1)
        for attribute in attributes:
            expr = nodes.Getattr(expr, attribute, "load", lineno=1)
        parts.append(expr)
    # No set_environment: these trees are only read by the static checks, never compiled or evaluated.
    return nodes.Template([nodes.Output(parts, lineno=1)], lineno=1)


@functools.lru_cache(maxsize=1 << 16)
def _shape(source: str) -> str | None:
    """The template with its literal text left out, when it is only text and `{{ a.b }}` parts on one line.

    Every static check reads such a template's names only, and its text only to place a finding's column:
    4,000 rooms named `r1-{{ query.room }}`, `r2-{{ query.room }}`... are checked once, as `{{ query.room }}`,
    and a template is looked at on its own only when its shape has a finding (a test holds both answers equal).
    """
    if len(source) > MAX_TEMPLATE or "{{" not in source:
        return None  # refused unparsed (RC307), or no substitution (a constant, or another kind of template)
    pieces = _simple_parts(source)
    if pieces is None:
        return None
    return "".join("{{ " + ".".join(names) + " }}" for _, names in pieces if names is not None)


@functools.lru_cache(maxsize=1 << 16)
def _syntax(source: str, expression: bool) -> tuple[nodes.Template | None, TemplateProblem | None]:
    """Parse (never compile: compiling would fold constants) a template or a condition."""
    if len(source) > MAX_TEMPLATE:
        # Refused unparsed: Jinja's parser is not linear in every construct, and no field needs this much.
        return None, TemplateProblem("RC307", 1, f"template of {len(source):,} characters (at most "
                                     f"{MAX_TEMPLATE:,}); split the text, or move it out of the template")
    simple = None if expression else _simple_tree(source)
    if simple is not None:
        return simple, None
    try:
        return _parse(source, expression, None), None
    except TemplateSyntaxError:
        pass
    # Only a template that fails pays for locating its tokens, to give the error its column.
    where = _LocatedTokens(("{{ (" + source + ") }}") if expression else source)
    try:
        _parse(source, expression, where)
    except TemplateSyntaxError as exc:
        return None, _located_error(source, exc, where, where.parser, 4 if expression else 0)
    return None, TemplateProblem("RC301", 1, "template syntax error")


def _parse(source: str, expression: bool, where: _LocatedTokens | None) -> nodes.Template:
    text = "{{ (" + source + ") }}" if expression else source
    if where is not None:
        where.parser = Parser(TEXT_ENV, text)
        where.parser.stream = _token_stream(where)
        parser = where.parser
    else:
        parser = Parser(TEXT_ENV, text)
    if not expression:
        return parser.parse()
    # A condition is one expression: `a ) }}{{ (b` must not sneak a second output in.
    parser.stream.expect("variable_begin")
    parser.stream.expect("lparen")
    expr = parser.parse_expression()
    parser.stream.expect("rparen")
    parser.stream.expect("variable_end")
    if parser.stream.current.type != "eof":
        parser.fail(f"unexpected {parser.stream.current.type!r} after the condition")
    return nodes.Template([nodes.Output([expr], lineno=1)], lineno=1)


def _token_stream(where: _LocatedTokens) -> Any:
    from jinja2.lexer import TokenStream

    return TokenStream(where.tokens(), None, None)


def _column_of(source: str, line: int, pattern: str) -> int:
    lines = source.split("\n")
    if not 1 <= line <= len(lines):
        return 0
    found = re.search(pattern, lines[line - 1])
    return found.start() + 1 if found else 0


@functools.lru_cache(maxsize=1 << 16)
def _preorder(tree: nodes.Template) -> tuple[nodes.Node, ...]:
    """Every node of a parsed template in Jinja's find_all order, walked once (the checks each used to walk it)."""
    found: list[nodes.Node] = []
    stack = list(tree.iter_child_nodes())[::-1]
    while stack:
        node = stack.pop()
        found.append(node)
        stack.extend(list(node.iter_child_nodes())[::-1])
    return tuple(found)


def _find(tree: nodes.Template, kinds: Any) -> list[Any]:
    """`tree.find_all(kinds)`, from the cached walk."""
    return [node for node in _preorder(tree) if isinstance(node, kinds)]


@functools.lru_cache(maxsize=1 << 16)
def _read_names(tree: nodes.Template) -> tuple[tuple[str, int], ...]:
    found = _find(tree, nodes.Name)
    assigned = {n.name for n in found if n.ctx in ("store", "param")}
    return tuple((node.name, node.lineno) for node in found if node.ctx == "load" and node.name not in assigned)


def _names(tree: nodes.Template) -> Iterator[tuple[str, int]]:
    """Names read from the context (not set or looped over inside the template), with their lines (once per tree)."""
    return iter(_read_names(tree))


def _by_shape(problems: Callable[..., tuple[TemplateProblem, ...]], source: str, expression: bool,
              *args: Any) -> tuple[TemplateProblem, ...]:
    """`problems` of a template, asked of its shape first: none there means none in any template of that shape.

    Text outside `{{ }}` only places a finding's column, so a shape with findings is checked template by template.
    """
    if not expression:
        shape = _shape(source)
        if shape is not None and shape != source and not problems(shape, False, *args):
            return ()
    return problems(source, expression, *args)


def check(source: str, *, expression: bool = False, secrets: frozenset[str] = frozenset(),
          unavailable: frozenset[str] = frozenset()) -> tuple[TemplateProblem, ...]:
    """Static problems in a template or condition: syntax, unknown filters, names, call fields (cached)."""
    return _by_shape(_check, source, expression, secrets, unavailable)


@functools.lru_cache(maxsize=1 << 16)
def _check(source: str, expression: bool, secrets: frozenset[str], unavailable: frozenset[str]
           ) -> tuple[TemplateProblem, ...]:
    if not expression and not is_template(source):
        return ()
    tree, problem = _syntax(source, expression)
    if problem:
        return (problem,)
    assert tree is not None
    found = []
    for used in _find(tree, (nodes.Filter, nodes.Test)):
        known = TEXT_ENV.filters if isinstance(used, nodes.Filter) else TEXT_ENV.tests
        if used.name not in known:
            kind = "filter" if isinstance(used, nodes.Filter) else "test"
            near = _near(used.name, known)
            found.append(TemplateProblem("RC301", used.lineno, f"unknown {kind} '{used.name}'{near}",
                                         _column_of(source, used.lineno, rf"\b{re.escape(used.name)}\b")))
    allowed = CONTEXT_NAMES - unavailable
    reported: set[str] = set()
    for name, line in _names(tree):
        if name not in allowed and name not in TEXT_ENV.globals and name not in reported:
            reported.add(name)
            where = " here" if name in CONTEXT_NAMES else ""
            found.append(TemplateProblem("RC302", line, f"undefined template variable '{name}'{where}; "
                                         f"available: {', '.join(sorted(allowed))}",
                                         _column_of(source, line, rf"(?<![.\w]){re.escape(name)}\b")))
    for node in _find(tree, nodes.Getattr):
        if not isinstance(node.node, nodes.Name):
            continue
        column = _column_of(source, node.lineno, rf"\b{re.escape(node.node.name)}\s*\.\s*{re.escape(node.attr)}\b")
        if node.node.name == "call" and node.attr not in CALL_FIELDS:
            found.append(TemplateProblem("RC302", node.lineno,
                                         f"'call.{node.attr}' is not a call field{_near(node.attr, CALL_FIELDS)} "
                                         f"(fields: {', '.join(sorted(CALL_FIELDS))}; "
                                         "other request fields are under call.raw)", column))
        if node.node.name == "now" and node.attr not in NOW_FIELDS:
            found.append(TemplateProblem("RC302", node.lineno,
                                         f"'now.{node.attr}' is not a field of now{_near(node.attr, NOW_FIELDS)} "
                                         f"(fields: {', '.join(sorted(NOW_FIELDS))})", column))
        if node.node.name == "secret" and node.attr not in secrets:
            found.append(TemplateProblem("RC302", node.lineno,
                                         f"'secret.{node.attr}' is not declared under `secrets`", column))
    return tuple(found)


def _near(name: str, choices: Iterable[str]) -> str:
    import difflib

    close = difflib.get_close_matches(name, sorted(choices), n=1)
    return f"; did you mean '{close[0]}'?" if close else ""


def _is_request_value(node: nodes.Node) -> bool:
    """`query.x`, `call.digits`...: always text (call.raw is whatever the body held)."""
    while isinstance(node, (nodes.Getattr, nodes.Getitem)):
        inner = node.node
        if isinstance(inner, nodes.Name):
            return inner.name == "query" or (inner.name == "call" and getattr(node, "attr", None) != "raw")
        node = inner
    return False


def _numbers(node: nodes.Node) -> list[Any]:
    if isinstance(node, nodes.Const) and isinstance(node.value, (int, float)):
        return [node.value]
    if isinstance(node, (nodes.List, nodes.Tuple)):
        return [i.value for i in node.items if isinstance(i, nodes.Const) and isinstance(i.value, (int, float))]
    return []


def mismatched_comparisons(source: str, expression: bool) -> tuple[TemplateProblem, ...]:
    """Comparisons of a request value (always text) with a number: `call.digits == 1234` is never true."""
    return _by_shape(_mismatched_comparisons, source, expression)


@functools.lru_cache(maxsize=1 << 16)
def _mismatched_comparisons(source: str, expression: bool) -> tuple[TemplateProblem, ...]:
    """Comparisons of a request value (always text) with a number: `call.digits == 1234` is never true."""
    tree, _ = _syntax(source, expression) if expression or is_template(source) else (None, None)
    if tree is None:
        return ()
    found = []
    for compare in _find(tree, nodes.Compare):
        left = compare.expr
        for operand in compare.ops:
            right = operand.expr
            for value_side, other in ((left, right), (right, left)):
                numbers = _numbers(other)
                if not numbers or not _is_request_value(value_side) or isinstance(numbers[0], bool):
                    continue
                shown = numbers[0]
                found.append(TemplateProblem(
                    "RC304", compare.lineno,
                    f"compares a request value (always text) with the number {shown!r}: never equal; "
                    f"write '{shown}' (quoted)",
                    _column_of(source, compare.lineno, re.escape(str(shown)))))
            for value_side, other in ((left, right), (right, left)):
                problem = _now_mismatch(value_side, other)
                if problem:
                    found.append(TemplateProblem("RC304", compare.lineno, problem, 0))
            left = right
    return tuple(found)


NOW_NUMBERS = frozenset({"hour", "minute", "year", "month", "day", "timestamp"})
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def _now_mismatch(value_side: nodes.Node, other: nodes.Node) -> str | None:
    """`now.hour == '09'`, `now.time > 17`, `now.weekday == 'Tuesday'`: never true (or an error, read as false)."""
    if not (isinstance(value_side, nodes.Getattr) and isinstance(value_side.node, nodes.Name)
            and value_side.node.name == "now" and value_side.attr in NOW_FIELDS):
        return None
    items = other.items if isinstance(other, (nodes.List, nodes.Tuple)) else [other]
    consts = [i.value for i in items if isinstance(i, nodes.Const) and not isinstance(i.value, bool)]
    field = value_side.attr
    texts = [c for c in consts if isinstance(c, str)]
    numbers = [c for c in consts if isinstance(c, (int, float))]
    if field in NOW_NUMBERS and texts:
        fix = f"compare it with {int(texts[0])}" if texts[0].isascii() and texts[0].isdigit() else "compare it with a number"
        return f"now.{field} is a number; {fix}, not {texts[0][:40]!r} (never equal)"
    if field not in NOW_NUMBERS and numbers:
        return (f"now.{field} is text (now.time is like '09:30', now.date like '2026-12-24'); compare it with text, "
                f"not the number {numbers[0]!r} (never true)")
    wrong = [t for t in texts if t not in WEEKDAYS] if field == "weekday" else []
    if wrong:
        near = [d for d in WEEKDAYS if wrong[0].lower().startswith(d)]
        return (f"now.weekday is one of {', '.join(WEEKDAYS)}, never {wrong[0][:40]!r}"
                + (f"; write '{near[0]}'" if near else ""))
    return None


def secret_names(source: str) -> set[str]:
    """Names read from `secret` in a template (empty when it does not parse)."""
    tree, _ = _syntax(_shape(source) or source, False)
    if tree is None:
        return set()
    names = {n.attr for n in _find(tree, nodes.Getattr) if isinstance(n.node, nodes.Name) and n.node.name == "secret"}
    if any(n.name == "secret" for n in _find(tree, nodes.Name)) and not names:
        names.add("*")
    return names


def reads_now(source: str, expression: bool = False) -> bool:
    """Whether a template or condition reads `now` (False when it does not parse: RC301 says so)."""
    if not expression and not is_template(source):
        return False
    tree, _ = _syntax(source if expression else _shape(source) or source, expression)
    return tree is not None and any(name == "now" for name, _ in _names(tree))


def uses_request(source: str) -> bool:
    """Whether a template reads anything from the request (query or call); True when it does not parse.

    A template that does not parse is reported once (RC301), not again as "no request value".
    """
    tree, _ = _syntax(_shape(source) or source, False)
    return tree is None or any(name in ("query", "call") for name, _ in _names(tree))


def _output_nodes(source: str, env: BoundedSandbox) -> list[nodes.Expr] | None:
    """The children of a template that is a single output statement, or None."""
    try:
        tree = env.parse(source)
    except TemplateSyntaxError:
        return None
    if len(tree.body) != 1 or not isinstance(tree.body[0], nodes.Output):
        return None
    return tree.body[0].nodes


Value = Callable[[dict], Any]


def _fast_value(node: nodes.Node, env: BoundedSandbox) -> Value | None:
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


def _fast_default(node: nodes.Filter, env: BoundedSandbox) -> Value | None:
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


def _fast_renderer(source: str, url: bool = False) -> Renderer | None:
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

    if url:
        def render_url(context: dict) -> str:
            return "".join(p if p.__class__ is str else _quote_part(p(context)) for p in parts)
        return render_url

    def render(context: dict) -> str:
        # str() of a StrictUndefined raises UndefinedError, exactly as Jinja's own output does.
        return "".join(p if p.__class__ is str else str(p(context)) for p in parts)

    return render


def name_frame(source: str) -> tuple[str, str, bool]:
    """(literal prefix, literal suffix, exact) of a room name: what every name it renders starts and ends with.

    A constant name is exact; `bridge-{{ query.meeting }}` is ("bridge-", "", False). Text between two
    substitutions is not used: the frame is what can be proved without knowing the values.
    """
    if not is_template(source):
        return source, "", True
    starts = [i for i in (source.find(m) for m in TEMPLATE_MARKERS) if i >= 0]
    ends = [i + 2 for i in (source.rfind(m) for m in ("}}", "%}", "#}")) if i >= 0]
    prefix = source[:min(starts)]
    suffix = source[max(ends):] if ends and max(ends) > min(starts) else ""
    return prefix, suffix, False


def frames_overlap(a: tuple[str, str, bool], b: tuple[str, str, bool]) -> bool:
    """Whether two room-name frames can render the same string (conservative: True unless provably disjoint)."""
    if a[2] and b[2]:
        return a[0] == b[0]
    if a[2] or b[2]:
        (name, _, _), (prefix, suffix, _) = (a, b) if a[2] else (b, a)
        return len(name) >= len(prefix) + len(suffix) and name.startswith(prefix) and name.endswith(suffix)
    prefixes = a[0].startswith(b[0]) or b[0].startswith(a[0])
    suffixes = a[1].endswith(b[1]) or b[1].endswith(a[1])
    return prefixes and suffixes


_LOADERS = ((nodes.Extends, "extends"), (nodes.Include, "include"), (nodes.Import, "import"),
            (nodes.FromImport, "from"))


def _zero(node: nodes.Node) -> bool:
    return isinstance(node, nodes.Const) and isinstance(node.value, (int, float)) and node.value == 0


def failing(source: str, expression: bool) -> tuple[TemplateProblem, ...]:
    """Constructs that parse but fail on every render: loading another template, `_` attributes, dividing by zero."""
    return _by_shape(_failing, source, expression)


@functools.lru_cache(maxsize=1 << 16)
def _failing(source: str, expression: bool) -> tuple[TemplateProblem, ...]:
    """Constructs that parse but fail on every render: loading another template, `_` attributes, dividing by zero."""
    tree, _ = _syntax(source, expression) if expression or is_template(source) else (None, None)
    if tree is None:
        return ()
    found = []

    def add(node: nodes.Node, message: str, pattern: str) -> None:
        found.append(TemplateProblem("RC306", node.lineno, message, _column_of(source, node.lineno, pattern)))

    for loader, keyword in _LOADERS:
        for statement in _find(tree, loader):
            shown = "{% from ... import %}" if keyword == "from" else f"{{% {keyword} %}}"
            add(statement, f"`{shown}` loads another template, and a policy has none to load: it fails on every "
                "render; write the text out", rf"\{{%-?\s*{keyword}\b")
    for attribute in _find(tree, nodes.Getattr):
        if attribute.attr.startswith("_"):
            add(attribute, f"attribute '{attribute.attr}' starts with `_`: the sandbox refuses it on every render",
                rf"(?<![\w]){re.escape(attribute.attr)}\b")
    for item in _find(tree, nodes.Getitem):
        if isinstance(item.arg, nodes.Const) and isinstance(item.arg.value, str) and item.arg.value.startswith("_"):
            add(item, f"item '{item.arg.value}' starts with `_`: the sandbox refuses it on every render",
                rf"\[\s*['\"]{re.escape(item.arg.value)}")
    divisions: tuple[tuple[str, type[nodes.BinExpr], str], ...] = (
        ("/", nodes.Div, r"(?<!/)/(?!/)\s*0"), ("//", nodes.FloorDiv, r"//\s*0"), ("%", nodes.Mod, r"%\s*0"))
    for operator, division, pattern in divisions:
        for node in _find(tree, division):
            formats = isinstance(node.left, nodes.Const) and isinstance(node.left.value, str)
            if _zero(node.right) and not (division is nodes.Mod and formats):  # '%d' % 0 formats, it does not divide
                add(node, f"`{operator} 0` divides by zero: it fails on every render", pattern)
    return tuple(found)


def costly(source: str, expression: bool) -> tuple[TemplateProblem, ...]:
    """Constructs that only make a template expensive: `**`, huge numbers, repeats, wide formats, nested loops."""
    return _by_shape(_costly, source, expression)


@functools.lru_cache(maxsize=1 << 16)
def _costly(source: str, expression: bool) -> tuple[TemplateProblem, ...]:
    """Constructs that only make a template expensive: `**`, huge numbers, repeats, wide formats, nested loops.

    Found on the parsed tree, never by evaluating it; the runtime refuses the same things when they run.
    """
    tree, _ = _syntax(source, expression) if expression or is_template(source) else (None, None)
    if tree is None:
        return ()
    found = []

    def add(node: nodes.Node, message: str, pattern: str) -> None:
        found.append(TemplateProblem("RC305", node.lineno, message, _column_of(source, node.lineno, pattern)))

    for power in _find(tree, nodes.Pow):
        add(power, "`**` in a template: a power can build numbers of millions of digits; compute it elsewhere",
            r"\*\*")
    for const in _find(tree, nodes.Const):
        if isinstance(const.value, int) and not isinstance(const.value, bool) and abs(const.value) > MAX_ARGUMENT:
            add(const, f"number {const.value} is larger than {MAX_ARGUMENT:,}; templates are bounded at run time",
                re.escape(str(const.value)))
        if isinstance(const.value, str) and re.search(r"%[-#0 +]*\d{5,}|\{[^}]*\d{5,}", const.value):
            add(const, "a format width of 10,000 or more would build a huge string", r"\d{5,}")
    for product in _find(tree, nodes.Mul):
        sides = (product.left, product.right)
        if any(isinstance(side, (nodes.List, nodes.Tuple)) or (isinstance(side, nodes.Const)
               and isinstance(side.value, str)) for side in sides) and not any(
                isinstance(side, nodes.Const) and isinstance(side.value, int) and side.value <= 100 for side in sides):
            add(product, "repeating text or a list by a computed count; write the text out", r"\*")
    for loop in _find(tree, nodes.For):
        inner = next(iter(loop.find_all(nodes.For)), None)
        if inner is not None:
            add(inner, "a loop inside a loop: its cost multiplies; templates are bounded at "
                f"{MAX_STEPS:,} steps at run time", r"\{%-?\s*for\b")
    return tuple(found)


def _bounded_template(source: str, env: BoundedSandbox) -> Any:
    """The Jinja template with every `{% for %}` iterating through the shared budget."""
    tree = env.parse(source)
    for loop in tree.find_all(nodes.For):
        loop.iter = nodes.Call(nodes.Name("roomc_loop", "load"), [loop.iter], [], None, None, lineno=loop.lineno)
    return env.from_string(tree)


def _with_budget(render: Callable[[dict], Any]) -> Callable[[dict], Any]:
    def bounded(context: dict) -> Any:
        token = _BUDGET.set([MAX_STEPS])
        try:
            return render(context)
        finally:
            _BUDGET.reset(token)
    return bounded


def compile_text(source: str, *, fast: bool = True, url: bool = False) -> Renderer:
    """A function rendering `source` against a context; constants cost nothing to render.

    With `url`, every substitution is percent-encoded (the literal text around it is not).
    """
    if not is_template(source):
        def constant(context: dict) -> str:
            return source
        return constant
    if fast:
        renderer = _fast_renderer(source, url)
        if renderer is not None:
            return renderer
    template = _bounded_template(source, URL_ENV if url else TEXT_ENV)

    def render(context: dict) -> str:
        out: list[str] = []
        size = 0
        for chunk in template.generate(context):
            size += len(chunk)
            if size > MAX_OUTPUT:
                raise LimitExceeded(f"template output is longer than {MAX_OUTPUT:,} characters; refused")
            out.append(chunk)
        return "".join(out)
    return _with_budget(render)


def compile_condition(source: str, *, fast: bool = True) -> Callable[[dict], bool]:
    """A role or branch condition as a function of the context; any error counts as false."""
    children = _output_nodes("{{ (" + source + ") }}", CONDITION_ENV) if fast else None
    direct = _fast_value(children[0], CONDITION_ENV) if children and len(children) == 1 else None
    if direct is None:
        expression = CONDITION_ENV.compile_expression(source)

        def evaluate(context: dict) -> Any:
            return expression(**context)
        direct = _with_budget(evaluate)

    def holds(context: dict) -> bool:
        try:
            return bool(direct(context))
        except Exception:  # a hostile value must not crash the call; the condition simply does not hold
            return False

    return holds
