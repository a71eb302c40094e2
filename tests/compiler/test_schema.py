"""The shipped schemas: valid against their metaschema, fully documented, and in step with the generator."""
import subprocess
import sys

import pytest
from jsonschema import Draft202012Validator

from roomc.compiler.schemas import ACTIONS, POLICY, ROUTE_TABLE, actions_problems, schema

from ..conftest import ROOT


@pytest.mark.parametrize("name", [POLICY, ACTIONS, ROUTE_TABLE])
def test_schema_is_valid_draft_2020_12(name):
    Draft202012Validator.check_schema(schema(name))
    assert schema(name)["$schema"] == "https://json-schema.org/draft/2020-12/schema"


def _properties(node, path=()):
    if isinstance(node, dict):
        for key, value in (node.get("properties") or {}).items():
            yield path + (key,), value
        for key, value in node.items():
            yield from _properties(value, path + (key,))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _properties(value, path + (index,))


def test_every_policy_property_is_documented_for_editors():
    missing = [".".join(map(str, p)) for p, prop in _properties(schema(POLICY))
               if not all(k in prop for k in ("title", "description", "markdownDescription"))]
    assert missing == []


def test_objects_refuse_unknown_keys():
    def objects(node):
        if isinstance(node, dict):
            if node.get("type") == "object" and "properties" in node:
                yield node
            for value in node.values():
                yield from objects(value)
        elif isinstance(node, list):
            for value in node:
                yield from objects(value)
    assert all(o.get("additionalProperties") is False for o in objects(schema(POLICY)))


def test_committed_schema_matches_its_generator():
    result = subprocess.run([sys.executable, "tools/gen_schema.py", "--check"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("actions, ok", [
    ([{"say": {"text": "hi"}}], True),
    ([{"say": {"text": "hi"}}] * 51, False),
    ([{"conference": {"beep": True}}], False),
    ([{"getDigits": {"nested": [{"dial": {"number": "+254700000001"}}]}}], False),
    ([{"conference": {"name": "x", "maxParticipants": "10"}}], False),
    ([{"say": {"text": "a"}, "hangup": {}}], False),
    ([{"dial": {"number": "+254700000001", "sip": "sip:a@b"}}], False),
    ([{"hangup": {}}], True),
    # stream and aiAgent, native verbs of SDK v0.5.0 (src/verbs.ts)
    ([{"stream": {"url": "wss://ai.example.com/s", "connect": True, "track": "both_tracks",
                  "outputSamplingRate": 16000, "headerMetadata": "{\"tenant\": \"acme\"}"}}], True),
    ([{"stream": {"url": "https://ai.example.com/s"}}], False),
    ([{"stream": {"url": "wss://a.example", "headerMetadata": {"tenant": "acme"}}}], False),  # a string on the wire
    ([{"stream": {"url": "wss://a.example", "outputSamplingRate": 44100}}], False),
    ([{"say": {"text": "One moment."}}, {"aiAgent": {"agentId": "3f7c0f5e-0000-4000-8000-000000000001",
                                                      "handover": {"callbackUrl": "https://x.example/back"}}}], True),
    ([{"aiAgent": {"agentId": "a", "handover": {"callbackUrl": "https://x.example", "voicemail": {}}}}], False),
    ([{"aiAgent": {"agentId": "a", "onUnavailable": "retry"}}], False),
    ([{"aiAgent": {}}], False),
    ([{"aiAgent": {"agentId": "a"}}, {"say": {"text": "after"}}], False),  # aiAgent must be last
    ([{"aiAgent": {"agentId": "a"}}, {"aiAgent": {"agentId": "b"}}], False),
])
def test_actions_schema_refuses_what_sautikit_refuses(actions, ok):
    assert Draft202012Validator(schema(ACTIONS)).is_valid({"actions": actions}) or not ok
    assert (not actions_problems({"actions": actions})) == ok


def test_examples_declare_the_schema_modeline():
    for path in (ROOT / "rooms").glob("*.yaml"):
        assert path.read_text().startswith("# yaml-language-server: $schema=../schema/roomc.schema.json"), path
