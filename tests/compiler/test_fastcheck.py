"""The compiled yes/no schema check answers exactly as jsonschema's is_valid, for every shipped schema.

A check that says yes where jsonschema says no would let a broken policy lint clean, so the two are
compared on every policy in the repository, on random mutations of them, and on small schemas
that use each keyword at its edges (1.0 as an integer, true against 1 in an enum, ...).
"""
from __future__ import annotations

import copy
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from roomc.compiler.fastcheck import KEYWORDS, compile_check
from roomc.compiler.load import load_file
from roomc.compiler.schemas import ACTIONS, POLICY, ROUTE_TABLE, fast_check, validator

ROOT = Path(__file__).resolve().parent.parent.parent
POLICY_FILES = sorted(p for folder in (ROOT / "rooms", ROOT / "tests") for p in folder.rglob("*.yaml"))
DOCUMENTS = [load_file(str(p)).data for p in POLICY_FILES]
DOCUMENTS = [d for d in DOCUMENTS if d is not None]

JSON = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-3, 70), st.floats(allow_nan=False, width=32),
              st.sampled_from([1.0, 0.0, -1.5, "", "say", "join", "x" * 70, "{{ query.room }}", "/j", "#", "12"]),
              st.text(max_size=6)),
    lambda children: st.one_of(st.lists(children, max_size=4),
                               st.dictionaries(st.sampled_from(["say", "join", "name", "roles", "when", "url",
                                                                "actions", "rooms", "routes", "x", "nested"])
                                               | st.text(max_size=5), children, max_size=4)),
    max_leaves=12)


def test_every_policy_in_the_repository_gets_the_same_answer():
    assert len(DOCUMENTS) > 15
    for document in DOCUMENTS:
        assert fast_check(POLICY)(document) == validator(POLICY).is_valid(document)


def _paths(value, prefix=()):
    yield prefix
    if isinstance(value, dict):
        for key, child in value.items():
            yield from _paths(child, prefix + (key,))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield from _paths(child, prefix + (index,))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_mutated_policies_get_the_same_answer(data):
    document = copy.deepcopy(data.draw(st.sampled_from(DOCUMENTS)))
    for _ in range(data.draw(st.integers(1, 3))):
        paths = list(_paths(document))
        path = data.draw(st.sampled_from(paths[1:] or paths))
        parent = document
        for step in path[:-1]:
            parent = parent[step]
        action = data.draw(st.sampled_from(["replace", "delete", "add"]))
        if not path:
            break
        if action == "replace":
            parent[path[-1]] = data.draw(JSON)
        elif action == "delete":
            del parent[path[-1]]
        elif isinstance(parent, dict):
            parent[data.draw(st.text(max_size=5))] = data.draw(JSON)
        else:
            parent.append(data.draw(JSON))
    assert fast_check(POLICY)(document) == validator(POLICY).is_valid(document)


@settings(max_examples=200, deadline=None)
@given(document=JSON)
def test_random_documents_get_the_same_answer_from_every_shipped_schema(document):
    for name in (POLICY, ACTIONS, ROUTE_TABLE):
        assert fast_check(name)(document) == validator(name).is_valid(document), name
    envelope = {"actions": document if isinstance(document, list) else [document]}
    assert fast_check(ACTIONS)(envelope) == validator(ACTIONS).is_valid(envelope)


EDGE_SCHEMAS = [
    {"type": "integer"}, {"type": ["number", "null"]}, {"type": "boolean"}, {"enum": [1, "a", None]},
    {"enum": [True]}, {"const": 1}, {"const": "a"}, {"const": [1, {"a": True}]}, {"minimum": 1, "maximum": 2},
    {"exclusiveMinimum": 0}, {"uniqueItems": True}, {"items": False}, {"prefixItems": [{"type": "string"}]},
    {"minLength": 2, "maxLength": 3}, {"pattern": "^a+$"}, {"not": {"type": "string"}},
    {"contains": {"const": 1}, "minContains": 2, "maxContains": 3}, {"contains": {"type": "null"}},
    {"properties": {"a": False}, "patternProperties": {"^b": {"type": "string"}}, "additionalProperties": False},
    {"propertyNames": {"maxLength": 1}, "minProperties": 1, "maxProperties": 2}, {"required": ["a", "b"]},
    {"properties": {"a": {"type": "integer"}, "b": False}, "additionalProperties": {"type": "string"}},
    {"type": "object", "properties": {"say": {"const": 1}}, "additionalProperties": False, "required": ["say"]},
    {"oneOf": [{"type": "integer"}, {"minimum": 0}]}, {"anyOf": [{"const": 1}, {"type": "string"}]},
    {"allOf": [{"minimum": 0}, {"maximum": 3}]}, {"if": {"type": "string"}, "then": {"minLength": 2}},
    {"$defs": {"n": {"type": "integer"}}, "items": {"$ref": "#/$defs/n"}},
    {"$defs": {"t": {"anyOf": [{"type": "integer"}, {"type": "array", "items": {"$ref": "#/$defs/t"}}]}},
     "$ref": "#/$defs/t"},
    {"dependentRequired": {"a": ["b"]}}, {"unevaluatedProperties": False, "properties": {"a": True}},
]


@pytest.mark.parametrize("schema", EDGE_SCHEMAS, ids=[str(s)[:40] for s in EDGE_SCHEMAS])
@settings(max_examples=60, deadline=None)
@given(document=JSON | st.sampled_from([1.0, 2.0, True, False, 1, 0, [1, 1.0], [True, 1], {"a": 1}, {"b": 1},
                                        {"bb": "x"}, [1, 1, 1], [None], "aa", "ab", "\u00e9\u00e9"]))
def test_each_keyword_at_its_edges(schema, document):
    reference = Draft202012Validator(schema)
    fast = compile_check(schema, lambda sub: reference.evolve(schema=sub).is_valid)
    assert fast(document) == reference.is_valid(document)


def test_the_keyword_list_is_jsonschemas():
    """A keyword jsonschema knows but this list lacks would be ignored by the fast check: never valid by mistake."""
    assert KEYWORDS == frozenset(Draft202012Validator.VALIDATORS)
