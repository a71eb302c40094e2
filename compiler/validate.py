"""Pass 2, validate: the room-language schema, with findings at the offending key or value.

jsonschema's raw errors point at instances, not source positions, and its
oneOf/anyOf failures read as dumps; this pass turns each into one Diagnostic
that names the key, says what was expected, and suggests a near spelling.
"""
from __future__ import annotations

import difflib
from typing import TYPE_CHECKING, Any, Iterator

from .diagnostics import Diagnostic, Severity
from .hours import MAX_CLOSURES
from .load import SourceFile
from .schemas import POLICY, fast_check, validator

if TYPE_CHECKING:
    from jsonschema.exceptions import ValidationError

TYPE_NAMES = {"object": "a mapping", "array": "a list", "string": "a string", "integer": "an integer",
              "boolean": "true or false", "null": "nothing", "number": "a number"}


def _describe(value: object) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "nothing (null)"
    text = repr(value)
    return text if len(text) < 40 else text[:37] + "...'"


def _where(path: tuple) -> str:
    return "the top level" if not path else "'" + ".".join(str(p) for p in path) + "'"


def _types(schema: dict) -> list[str]:
    if "type" in schema:
        kinds = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        return [TYPE_NAMES.get(str(k), str(k)) for k in kinds]
    if "const" in schema:
        return [repr(schema["const"])]
    return []


def _convert(error: ValidationError, source: SourceFile) -> Iterator[Diagnostic]:
    path = tuple(error.absolute_path)
    kind = error.validator
    if kind == "additionalProperties" and isinstance(error.instance, dict):
        allowed = sorted(error.schema.get("properties", {}))
        for key in error.instance:
            if key in allowed:
                continue
            near = difflib.get_close_matches(key, allowed, n=1)
            hint = f"did you mean '{near[0]}'?" if near else (
                f"expected one of: {', '.join(allowed)}" if allowed else "")
            yield Diagnostic("RC101", Severity.ERROR, f"unknown key '{key}' in {_where(path)}",
                             source.key_spans.get(path + (key,), source.span(path + (key,))), path + (key,), hint)
        return
    if kind == "required":
        missing = [k for k in error.validator_value if k not in error.instance]
        for key in missing:
            yield Diagnostic("RC102", Severity.ERROR, f"missing required key '{key}' in {_where(path)}",
                             source.key_spans.get(path, source.span(path)), path)
        return
    if kind == "oneOf" and all(set(sub) == {"required"} for sub in error.validator_value):
        # "Exactly one of these keys" (a redirect's `route` or `url`): say so, not jsonschema's wording.
        keys = [key for sub in error.validator_value for key in sub["required"]]
        given = [key for key in keys if isinstance(error.instance, dict) and key in error.instance]
        names = " or ".join(f"'{key}'" for key in keys)
        if given:
            yield Diagnostic("RC104", Severity.ERROR, f"{_where(path)} has both {' and '.join(map(repr, given))}; "
                             f"keep one", source.span(path), path)
        else:
            yield Diagnostic("RC102", Severity.ERROR, f"{_where(path)} needs {names}",
                             source.key_spans.get(path, source.span(path)), path)
        return
    if kind in ("oneOf", "anyOf") and error.context:
        shallow = [e for e in error.context if tuple(e.absolute_path) == path and e.validator in ("type", "const")]
        if len(shallow) == len(error.context):
            expected: list[str] = []
            for sub in error.schema[kind]:
                expected.extend(t for t in _types(sub) if t not in expected)
            yield Diagnostic("RC103", Severity.ERROR,
                             f"{_where(path)} should be {' or '.join(expected)}, not {_describe(error.instance)}",
                             source.span(path), path)
            return
        deeper = [e for e in error.context if not (tuple(e.absolute_path) == path and e.validator in ("type", "const"))]
        from jsonschema.exceptions import best_match

        yield from _convert(best_match(deeper), source)
        return
    if kind == "type":
        yield Diagnostic("RC103", Severity.ERROR,
                         f"{_where(path)} should be {' or '.join(_types(error.schema))}, not {_describe(error.instance)}",
                         source.span(path), path)
        return
    if kind in ("minProperties", "maxProperties") and "say" in error.schema.get("properties", {}):
        verbs = ", ".join(error.instance) or "none"
        yield Diagnostic("RC105", Severity.ERROR,
                         f"an action has exactly one verb (found: {verbs})", source.span(path), path)
        return
    if kind == "propertyNames":
        key = error.instance
        yield Diagnostic("RC104", Severity.ERROR, f"'{key}' is not a valid id here: {error.message}",
                         source.key_spans.get(path + (key,), source.span(path)), path + (key,))
        return
    if kind in ("maxItems", "maxLength", "maxProperties"):
        # jsonschema's message is the whole value; a 100,000-item list or a megabyte string is no message.
        unit = {"maxItems": "items", "maxLength": "characters", "maxProperties": "keys"}[kind]
        yield Diagnostic("RC104", Severity.ERROR, f"{_where(path)} has more than {error.validator_value:,} {unit} "
                         f"(at most {error.validator_value:,})", source.span(path), path)
        return
    if kind == "enum":
        choices = ", ".join(repr(c) for c in error.validator_value)
        message = f"{_where(path)} is {_describe(error.instance)}; expected one of {choices}"
    elif kind == "const":
        message = f"{_where(path)} must be {error.validator_value!r}, not {_describe(error.instance)}"
    elif kind == "pattern":
        message = f"{_where(path)} value {_describe(error.instance)} does not match {error.validator_value}"
    else:
        message = f"{_where(path)}: {error.message}"
    yield Diagnostic("RC104", Severity.ERROR, message, source.span(path), path)


def _bounded(data: Any) -> Any:
    """The document with over-long closure lists cut to one past their bound: the schema's maxItems still
    reports them, and a 100,000-entry list (aliases make it a small file) is not checked item by item."""
    if not isinstance(data, dict):
        return data
    schedules = data.get("hours")
    if not isinstance(schedules, dict) or not any(
            isinstance(s, dict) and isinstance(s.get("closures"), list) and len(s["closures"]) > MAX_CLOSURES
            for s in schedules.values()):
        return data
    cut = {key: ({**s, "closures": s["closures"][:MAX_CLOSURES + 1]}
                 if isinstance(s, dict) and isinstance(s.get("closures"), list) else s)
           for key, s in schedules.items()}
    return {**data, "hours": cut}


def validate(source: SourceFile) -> list[Diagnostic]:
    """Check one loaded file against the room-language schema."""
    if source.data is None:
        return []
    data = _bounded(source.data)
    if fast_check(POLICY)(data):  # the common case: a yes without jsonschema's walk
        return []
    found: list[Diagnostic] = []
    for error in validator(POLICY).iter_errors(data):
        found.extend(_convert(error, source))
    if source.refused:
        # A number refused at load (RC011/RC012) is already reported where it is; its stand-in is no second finding.
        found = [d for d in found if not any(d.path[:len(r)] == r for r in source.refused)]
    return found
