"""The JSON Schemas that ship with roomc, loaded and compiled once per process."""
from __future__ import annotations

import functools
import json
from importlib import resources

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


@functools.cache
def validator(name: str) -> Draft202012Validator:
    """A compiled validator for a shipped schema, built once and reused for every file."""
    return Draft202012Validator(schema(name))


def actions_problems(envelope: object) -> list[tuple[str, str]]:
    """(where, message) of everything Sautikit would refuse in a voice answer: the actions schema's errors,
    plus the one rule a schema cannot state, that `aiAgent` is the last action (SDK verbs.ts)."""
    found = [(".".join(str(p) for p in error.absolute_path), error.message)
             for error in validator(ACTIONS).iter_errors(envelope)]
    actions = envelope.get("actions") if isinstance(envelope, dict) else None
    if isinstance(actions, list):
        for index, action in enumerate(actions[:-1]):
            if isinstance(action, dict) and "aiAgent" in action:
                found.append((f"actions.{index}", "aiAgent must be the last action: nothing runs once the leg "
                               "is forked to the agent"))
    return found
