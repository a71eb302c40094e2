"""Templates: one sandboxed Jinja environment, static checks for the linter, and fast renderers.

Request values are only ever passed in as data, never parsed as templates, so a
caller who sends `{{7*7}}` gets those characters back as text. Simple
`{{ name.attr }}` substitutions skip Jinja's machinery but call the same
`environment.getattr`, so their output (and their errors) equal Jinja's.
"""
from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Any, Callable

from jinja2 import StrictUndefined, TemplateSyntaxError, Undefined, meta, nodes
from jinja2.exceptions import UndefinedError
from jinja2.sandbox import SandboxedEnvironment

# Text is rendered strictly: a missing value is an error (the caller gets the fallback),
# never an empty string that could put two meetings in one room.
TEXT_ENV = SandboxedEnvironment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)
# Conditions are lenient: `query.host == '1'` is simply false when there is no `host`.
CONDITION_ENV = SandboxedEnvironment(undefined=Undefined, autoescape=False)

CONTEXT_NAMES = frozenset({"query", "call", "room", "role", "secret"})
CALL_FIELDS = frozenset({"id", "from", "to", "direction", "digits", "clientRequestId", "raw"})
TEMPLATE_MARKERS = ("{{", "{%", "{#")
_SIMPLE = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)(?:\.([A-Za-z_][A-Za-z0-9_]*))?\s*\}\}")

Renderer = Callable[[dict], str]


def is_template(text: Any) -> bool:
    """Whether a string has template syntax in it (a plain string is emitted as a constant)."""
    return isinstance(text, str) and any(marker in text for marker in TEMPLATE_MARKERS)


@dataclass(frozen=True)
class TemplateProblem:
    code: str
    line: int  # 1-based line inside the template
    message: str


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


def _fast_renderer(source: str) -> Renderer | None:
    parts: list[Any] = []
    position = 0
    for match in _SIMPLE.finditer(source):
        parts.append(source[position:match.start()])
        parts.append((match.group(1), match.group(2)))
        position = match.end()
    parts.append(source[position:])
    if any(isinstance(p, str) and any(m in p for m in TEMPLATE_MARKERS + ("}}", "%}", "#}")) for p in parts):
        return None
    getattr_ = TEXT_ENV.getattr

    def render(context: dict) -> str:
        out = []
        for part in parts:
            if part.__class__ is str:
                out.append(part)
                continue
            name, attr = part
            if name not in context:
                raise UndefinedError(f"'{name}' is undefined")
            value = context[name] if attr is None else getattr_(context[name], attr)
            out.append(str(value))  # str() of a StrictUndefined raises, as in Jinja
        return "".join(out)

    return render


def compile_text(source: str, *, fast: bool = True) -> Renderer:
    """A function rendering `source` against a context; constants cost nothing to render."""
    if not is_template(source):
        return lambda context, _text=source: _text
    if fast:
        renderer = _fast_renderer(source)
        if renderer is not None:
            return renderer
    template = TEXT_ENV.from_string(source)
    return lambda context: template.render(context)


def compile_condition(source: str) -> Callable[[dict], bool]:
    """A role or branch condition as a function of the context; any error counts as false."""
    expression = CONDITION_ENV.compile_expression(source)

    def holds(context: dict) -> bool:
        try:
            return bool(expression(**context))
        except Exception:  # a hostile value must not crash the call; the condition simply does not hold
            return False

    return holds
