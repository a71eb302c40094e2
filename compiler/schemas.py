"""The JSON Schemas that ship with roomc, loaded and compiled once per process."""
from __future__ import annotations

import functools
import json
from importlib import resources
from typing import TYPE_CHECKING, Any

from .fastcheck import Check, compile_check

if TYPE_CHECKING:
    from jsonschema import Draft202012Validator

POLICY = "roomc.schema.json"
ACTIONS = "sautikit-actions.schema.json"
ROUTE_TABLE = "route-table.schema.json"


@functools.cache
def schema_text(name: str) -> str:
    """The raw JSON text of a shipped schema."""
    return resources.files("roomc.schema").joinpath(name).read_text(encoding="utf-8")


@functools.cache
def schema(name: str) -> dict:
    """A shipped schema as data."""
    return json.loads(schema_text(name))


ANNOTATIONS = frozenset({"description", "title", "markdownDescription", "default", "examples", "$comment"})


def _inlined(node: Any, defs: dict, active: frozenset[str]) -> Any:
    """`node` with every local `$ref` replaced by what it names (the same checks, no lookup per instance)."""
    if isinstance(node, list):
        return [_inlined(v, defs, active) for v in node]
    if not isinstance(node, dict):
        return node
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/") and ref[8:] in defs and ref not in active:
        target = _inlined(defs[ref[8:]], defs, active | {ref})
        rest = {k: _inlined(v, defs, active) for k, v in node.items() if k != "$ref"}
        if not rest.keys() - ANNOTATIONS and isinstance(target, dict):
            return {**rest, **target}
        return {**rest, "allOf": [target]}
    if isinstance(ref, str) and ref in active:
        raise RecursionError(ref)
    return {k: _inlined(v, defs, active) for k, v in node.items()}


def _dereferenced(document: dict) -> dict:
    """The schema with its `$defs` inlined when they do not refer to themselves; as shipped otherwise."""
    try:
        inlined = _inlined({k: v for k, v in document.items() if k != "$defs"}, document.get("$defs", {}),
                           frozenset())
    except RecursionError:
        return document
    return {**inlined, "$defs": document.get("$defs", {})}


@functools.cache
def validator(name: str) -> Draft202012Validator:
    """A compiled validator for a shipped schema, built once and reused for every file.

    Local `$ref`s are inlined first: resolving one per instance was a quarter of the validation time.
    jsonschema is imported here, not at start-up: a run where every file is valid never needs it.
    """
    from jsonschema import Draft202012Validator

    return Draft202012Validator(_dereferenced(schema(name)))


@functools.cache
def fast_check(name: str) -> Check:
    """`validator(name).is_valid`, compiled into closures: the yes/no answer without jsonschema's walk."""

    def delegate(subschema: Any) -> Check:
        return lambda value: bool(validator(name).evolve(schema=subschema).is_valid(value))
    return compile_check(_dereferenced(schema(name)), delegate)


def actions_problems(envelope: object) -> list[tuple[str, str]]:
    """(where, message) of everything Sautikit would refuse in a voice answer: the actions schema's errors,
    plus the one rule a schema cannot state, that `aiAgent` is the last action (SDK verbs.ts)."""
    found = [] if fast_check(ACTIONS)(envelope) else [
        (".".join(str(p) for p in error.absolute_path), error.message) for error in validator(ACTIONS).iter_errors(envelope)]
    actions = envelope.get("actions") if isinstance(envelope, dict) else None
    if isinstance(actions, list):
        for index, action in enumerate(actions[:-1]):
            if isinstance(action, dict) and "aiAgent" in action:
                found.append((f"actions.{index}", "aiAgent must be the last action: nothing runs once the leg "
                               "is forked to the agent"))
    return found
