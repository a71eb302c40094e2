"""Properties for every input: valid policies lint clean, no YAML crashes the linter, every answer is valid."""
import json
import string

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from roomc.compiler import pipeline
from roomc.compiler.load import load_text
from roomc.compiler.schemas import ACTIONS, schema
from roomc.compiler.validate import validate
from roomc.runtime.normalise import call_fields, has_digits
from roomc.runtime.render import Responder

IDS = st.text(string.ascii_lowercase, min_size=1, max_size=8)
WORDS = st.text(string.ascii_letters + " .,", min_size=1, max_size=30).filter(str.strip)
HOSTILE = st.one_of(st.text(max_size=80), st.sampled_from(
    ["{{7*7}}", "{% raw %}", "'; DROP TABLE seats; --", "\x00", "../../etc", "+254700000009", "x" * 70, "ü€𝄞"]))


@st.composite
def policies(draw):
    """Valid, lint-clean policies: rooms with a request value in the name, a starting role, routes to all."""
    rooms, routes = {}, {"/events": "events"}
    for index, room_id in enumerate(draw(st.lists(IDS, min_size=1, max_size=3, unique=True))):
        capacity = draw(st.integers(0, 30))
        roles = {}
        role_ids = draw(st.lists(IDS, min_size=1, max_size=3, unique=True))
        for position, role_id in enumerate(role_ids):
            last = position == len(role_ids) - 1
            role = {"startOnEnter": last or draw(st.booleans())}
            if not last:
                role["when"] = draw(st.sampled_from(["query.host == '1'", "call.from in ['+254700000009']",
                                                     "call.digits == '1234'"]))
            if draw(st.booleans()):
                role["say"] = draw(st.one_of(WORDS, st.just("Joining {{ room }} as {{ role }}")))
            if draw(st.booleans()):
                role["muted"] = draw(st.booleans())
            if draw(st.booleans()) and not last:
                role["countsTowardCapacity"] = False
            roles[role_id] = role
        # Each room's name has its own literal prefix, as RC211 asks.
        room = {"name": room_id + draw(st.sampled_from(["-{{ query.room }}", "-{{ query.room | default('x') }}",
                                                        "-m-{{ call.id }}"])), "roles": roles}
        if capacity:
            # A seat held for each host and one more for the callers who wait for them (RC240).
            room["maxParticipants"] = max(capacity, len(roles) + 1)
        if draw(st.booleans()):
            room["whenFull"] = [{"say": draw(WORDS)}, {"hangup": {}}]
        if draw(st.booleans()):
            room["record"] = True
        rooms[room_id] = room
        routes[f"/join/{index}"] = {"join": room_id}
    flows = {"menu": {"actions": [{"getDigits": {"numDigits": 1, "nested": [{"say": "Press one"}]}},
                                  {"redirect": "/menu"}],
                      "onDigits": [{"digits": "1", "actions": [{"join": next(iter(rooms))}]}],
                      "otherwise": [{"say": "Sorry"}, {"redirect": {"route": "/menu", "query": {"d": "{{ call.digits }}"}}}]}}
    routes["/menu"] = {"flow": "menu"}
    return {"roomc": 1, "server": {"publicUrl": "https://rooms.example.com", "signatureSecretEnv": "SECRET"},
            "rooms": rooms, "flows": flows, "routes": routes}


@given(policy=policies())
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_generated_valid_policies_lint_clean(tmp_path, policy):
    path = tmp_path / "gen.yaml"
    path.write_text(yaml.safe_dump(policy, sort_keys=False))
    compilation = pipeline.run([str(path)])
    assert [str(d) for d in compilation.diagnostics] == []
    assert compilation.table is not None


@given(policy=policies(), query=st.dictionaries(st.sampled_from(["room", "host", "x"]), HOSTILE),
       form=st.dictionaries(st.sampled_from(["CallId", "From", "Digits", "To", "junk"]), HOSTILE),
       taken=st.integers(0, 40))
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_every_answer_validates_against_the_sautikit_schema(tmp_path, policy, query, form, taken):
    path = tmp_path / "gen.yaml"
    path.write_text(yaml.safe_dump(policy, sort_keys=False))
    table = pipeline.run([str(path)]).table
    responder = Responder(table, secrets={})
    check = Draft202012Validator(schema(ACTIONS))
    for route, spec in table["routes"].items():
        if spec["kind"] == "events":
            continue
        answer = responder.answer(route, query, call_fields(form), digits_sent=has_digits(form),
                                  seats=lambda room, role, limit: (taken < limit, "test"))
        envelope = {"actions": answer.actions}
        assert list(check.iter_errors(envelope)) == [], json.dumps(envelope)[:500]
        assert "{{" not in json.dumps(answer.actions) or any("{{" in v for v in list(query.values()) + list(form.values()))


YAMLISH = st.text(alphabet=string.printable + "ü\t", max_size=300)


@given(text=YAMLISH)
@settings(max_examples=300, deadline=None)
def test_random_text_never_crashes_the_loader_or_validator(text):
    source = load_text(text, "fuzz.yaml")
    validate(source)


@given(policy=policies(), data=st.data())
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_mutated_policies_never_crash_the_pipeline(tmp_path, policy, data):
    text = yaml.safe_dump(policy, sort_keys=False)
    position = data.draw(st.integers(0, len(text)))
    insert = data.draw(st.sampled_from(["", ":", "- ", "\t", "{", "}}", "[", "&a ", "*a", "yes", "<<: ", "\n---\n",
                                        "{{", "%", "'", '"', " # roomc: ignore[RC204]", "\x85"]))
    cut = data.draw(st.integers(0, 5))
    mutated = text[:position] + insert + text[position + cut:]
    path = tmp_path / "mutated.yaml"
    path.write_text(mutated, encoding="utf-8")
    compilation = pipeline.run([str(path)])  # an exception here is a crash
    for finding in compilation.diagnostics:
        assert finding.span.line >= 1 and finding.span.column >= 1 and finding.code.startswith("RC")
