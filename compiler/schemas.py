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
