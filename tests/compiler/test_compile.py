"""Compiled tables: golden files for every example, determinism, and what the table promises."""
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from roomc.compiler import pipeline
from roomc.compiler.emit import emit

from ..conftest import REGENERATE, ROOMS, ROOT, table_for

GOLDEN = Path(__file__).parent / "golden"
EXAMPLES = sorted(p.name for p in ROOMS.glob("*.yaml"))


def _compiled(paths):
    compilation = pipeline.run(paths)
    assert compilation.table is not None, [str(d) for d in compilation.diagnostics]
    return emit(compilation.table)


@pytest.mark.parametrize("example", EXAMPLES + ["all"])
def test_golden_route_table(example, monkeypatch):
    monkeypatch.chdir(ROOT)
    text = _compiled(["rooms"] if example == "all" else [f"rooms/{example}"])
    golden = GOLDEN / f"{example.removesuffix('.yaml')}.json"
    if REGENERATE:
        golden.write_text(text, encoding="utf-8")
    assert text == golden.read_text(encoding="utf-8")


def test_same_input_same_bytes_in_any_order(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    files = [f"rooms/{name}" for name in EXAMPLES]
    first = _compiled(files)
    assert _compiled(list(reversed(files))) == first
    assert _compiled(["rooms"]) == first


def test_table_records_version_and_input_digest(monkeypatch, tmp_path):
    monkeypatch.chdir(ROOT)
    table = json.loads(_compiled(["rooms/meeting.yaml"]))
    assert table["format"] == 1 and table["roomc"] == pipeline.VERSION
    copy = tmp_path / "rooms"
    shutil.copytree(ROOMS, copy)
    (copy / "meeting.yaml").write_text((copy / "meeting.yaml").read_text().replace("cap 10", "cap ten"))
    monkeypatch.chdir(tmp_path)
    assert json.loads(_compiled(["rooms/meeting.yaml"]))["digest"] != table["digest"]


def test_refuses_a_policy_with_errors(tmp_path):
    compilation = pipeline.run([str(ROOT / "tests/compiler/cases/references")])
    assert compilation.table is None


def test_capacity_leaves_seats_for_uncounted_roles(tmp_path):
    table = table_for(tmp_path, """
        roomc: 1
        server: {signatureSecretEnv: S, publicUrl: "https://rooms.example.com"}
        rooms:
          r:
            name: "r-{{ query.room }}"
            maxParticipants: 5
            roles:
              sup: {when: "query.sup == '1'", muted: true, countsTowardCapacity: false, startOnEnter: true}
              member: {startOnEnter: true}
        routes:
          /j: {join: r}
          /e: events
    """)
    room = table["rooms"]["r"]
    assert room["capacity"] == 5 and room["extraSeats"] == 2
    conference = room["roles"][0]["actions"][-1]["conference"]
    assert conference["maxParticipants"] == 7 and conference["muted"] is True
    assert conference["statusEventsCallbackUrl"] == {"$url": {"route": "/e", "query": {}}}
    assert conference["statusEvents"] == "start end join leave mute unmute"
    assert [r["counts"] for r in room["roles"]] == [False, True]


def test_constants_stay_constants_and_templates_are_marked(tmp_path):
    table = table_for(tmp_path, """
        roomc: 1
        rooms:
          r:
            name: "r-{{ query.room }}"
            roles:
              member: {say: "Hello", startOnEnter: true}
        routes: {/j: {join: r}}
    """)
    room = table["rooms"]["r"]
    assert room["name"] == {"$t": "r-{{ query.room }}"}
    assert room["roles"][0]["actions"][0] == {"say": {"text": "Hello"}}


def test_too_long_join_expansion_is_caught(tmp_path):
    says = "\n".join(f"          - say: m{i}" for i in range(49))
    path = tmp_path / "p.yaml"
    path.write_text(f"""roomc: 1
server: {{signatureSecretEnv: S}}
rooms:
  r:
    name: "r-{{{{ query.room }}}}"
    roles:
      member:
        startOnEnter: true
        actions:
{says}
flows:
  f:
    actions:
      - say: hello
      - join: r
routes:
  /f: {{flow: f}}
""")
    found = [(d.code, d.message) for d in pipeline.run([str(path)]).diagnostics]
    assert any(code == "RC403" and "51 actions" in message for code, message in found), found


def _conferences(table):
    for room in table["rooms"].values():
        for role in room["roles"]:
            yield room, role, role["actions"][-1]["conference"]


def test_every_conference_says_start_on_enter_and_end_on_exit(rooms_table):
    """Unset is never left to the PBX: the SDK says `true`, the docs say the PBX default."""
    for _, _, conference in _conferences(rooms_table):
        assert isinstance(conference["startOnEnter"], bool) and isinstance(conference["endOnExit"], bool)
    supervisor = next(c for room, role, c in _conferences(rooms_table) if role["id"] == "supervisor" and c["muted"])
    assert supervisor["startOnEnter"] is False  # a listen-only supervisor who arrives first starts nothing


def test_unset_start_on_enter_is_decided_by_the_room(tmp_path):
    table = table_for(tmp_path, """
        roomc: 1
        server: {publicUrl: "https://rooms.example.com", signatureSecretEnv: S}
        rooms:
          open:
            name: "open-{{ query.room }}"
            roles:
              listener: {when: "query.listen == '1'", muted: true}
              anyone: {}
          hosted:
            name: "hosted-{{ query.room }}"
            roles:
              host: {when: "query.host == '1'", startOnEnter: true, endOnExit: true}
              guest: {}
        routes:
          /open: {join: open}
          /hosted: {join: hosted}
          /events: events
        """)
    starts = {(room["name"]["$t"].split("-")[0], role["id"]): (c["startOnEnter"], c["endOnExit"])
              for room, role, c in _conferences(table)}
    assert starts == {("open", "listener"): (False, False), ("open", "anyone"): (True, False),
                      ("hosted", "host"): (True, True), ("hosted", "guest"): (False, False)}


def test_route_table_schema_constrains_no_string_under_rooms_or_flows():
    """verify checks one room and one flow per shape (strings emptied); that is exact only while this holds."""
    from roomc.compiler.schemas import ROUTE_TABLE, schema

    table_schema = schema(ROUTE_TABLE)
    text = json.dumps([table_schema["properties"]["rooms"], table_schema["properties"]["flows"],
                       table_schema["$defs"]])
    for keyword in ('"pattern"', '"enum"', '"const"', '"format"', '"minLength"', '"maxLength"', '"propertyNames"'):
        assert keyword not in text, keyword


def test_in_room_digits_go_to_the_keys_route_with_the_room_named(tmp_path):
    table = table_for(tmp_path, """
        roomc: 1
        server: {signatureSecretEnv: S, publicUrl: "https://rooms.example.com"}
        rooms:
          hall:
            name: "hall-{{ query.room }}"
            collectDigits: true
            numDigits: 1
            roles:
              host: {when: "query.host == '1'", startOnEnter: true, collectDigits: false}
              guest: {}
          side:
            name: "side-{{ query.room }}"
            collectDigits: true
            numDigits: 1
            digitsCallbackUrl: /side/keys
            roles: {guest: {}}
        routes:
          /hall/join: {join: hall}
          /side/join: {join: side}
          /e: events
          /hall/keys: {keys: {"1": raiseHand, "0": callOperator}}
          /side/keys: {keys: {"9": callOperator}}
    """)
    assert table["routes"]["/hall/keys"] == {"kind": "keys", "methods": ["GET", "POST"],
                                             "keys": {"0": "callOperator", "1": "raiseHand"}}
    host, guest = (r["actions"][-1]["conference"] for r in table["rooms"]["hall"]["roles"])
    # Left out, the URL is the first keys route (by path); a role that collects nothing gets none.
    assert guest["digitsCallbackUrl"] == {"$url": {"route": "/hall/keys", "query": {"room": {"$t": "{{ room }}"}}}}
    assert "digitsCallbackUrl" not in host and host["collectDigits"] is False
    side = table["rooms"]["side"]["roles"][0]["actions"][-1]["conference"]
    assert side["digitsCallbackUrl"]["$url"]["route"] == "/side/keys"


def test_keys_map_only_known_effects_and_key_shapes(tmp_path):
    from ..conftest import compile_text

    for keys in ('{"1": shout}', '{"12345678a": raiseHand}', "{}", '{"": raiseHand}'):
        compilation = compile_text(tmp_path, f"""
            roomc: 1
            routes:
              /k: {{keys: {keys}}}
        """)
        assert compilation.table is None
        assert any(d.code in ("RC101", "RC103", "RC104") for d in compilation.diagnostics), keys


def test_no_pin_of_the_meeting_directory_is_in_the_compiled_table(monkeypatch):
    """The table names where the directory is read, never what is in it (issue 13)."""
    import csv

    monkeypatch.chdir(ROOT)
    text = _compiled(["rooms/dial-in-bridge.yaml"])
    table = json.loads(text)
    assert table["directory"] == {"file": "rooms/dial-in-meetings.csv", "fileEnv": "MEETINGS_FILE"}
    with open(ROOT / "rooms" / "dial-in-meetings.csv", newline="") as handle:
        pins = {row[key] for row in csv.DictReader(handle) for key in ("hostPin", "participantPin")}
    assert pins and not [pin for pin in pins if pin in text]


def test_rc224_fires_on_its_failing_example_and_not_on_its_passing_one(tmp_path):
    """A room that sends keys to a keys route but hears no join/leave would show no hands (or keep them)."""
    import textwrap

    from roomc.compiler.rules import keys_without_join_events as rule

    doc = rule.__doc__ or ""
    failing, passing = doc.split("Failing::")[1].split("Passing::")
    found = {}
    for name, example in (("failing", failing), ("passing", passing)):
        path = tmp_path / f"{name}.yaml"
        path.write_text("roomc: 1\nserver: {signatureSecretEnv: S, publicUrl: \"https://r.example.com\"}\n"
                        + textwrap.dedent(example).strip("\n") + "\n")
        found[name] = [d.code for d in pipeline.run([str(path)]).diagnostics]
    assert found["failing"] == ["RC224"] and found["passing"] == []


def test_version_is_the_installed_one_without_importing_importlib_metadata(tmp_path):
    from importlib import metadata

    assert pipeline.version() == metadata.version("roomc")
    # Linting a file must not pay for importlib.metadata and the email, zipfile and csv modules it imports.
    (tmp_path / "p.yaml").write_text("roomc: 1\n")
    code = ("import sys; from roomc.cli import main; from roomc.compiler import pipeline; "
            "pipeline.run([sys.argv[1]]); print(pipeline.VERSION, 'importlib.metadata' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path / "p.yaml")], capture_output=True, text=True,
                          cwd=tmp_path, check=True)
    assert done.stdout.split() == [metadata.version("roomc"), "False"]


def test_full_collections_are_held_off_only_while_the_passes_run(monkeypatch):
    """A run keeps every object it makes, so full collections wait; the caller's settings come back after,
    also when a pass fails; a young cycle made and dropped during the run is still freed."""
    import gc
    import weakref

    seen = []

    class Cycle:
        pass

    def step(c):
        seen.append(gc.get_threshold())
        cycle = Cycle()
        cycle.me = cycle
        seen.append(weakref.ref(cycle))
        del cycle
        gc.collect(0)
        return c

    before = gc.get_threshold()
    monkeypatch.setattr(pipeline, "PASSES", (("load", step),))
    pipeline.run(["nowhere.yaml"], until="load")
    assert gc.get_threshold() == before
    assert seen[0][:2] == before[:2] and seen[0][2] > 1_000_000
    assert seen[1]() is None

    def broken(c):
        raise ValueError("boom")

    monkeypatch.setattr(pipeline, "PASSES", (("load", broken),))
    assert [d.code for d in pipeline.run(["nowhere.yaml"]).diagnostics] == ["RC000"]
    assert gc.get_threshold() == before


def _canonical_json(node, key=""):
    """The key verify used before its hashable keys: fill, free text collapsed, then sorted JSON."""
    from roomc.compiler.verify import FREE_TEXT, fill

    def canonical(node, key=""):
        if isinstance(node, dict):
            return {k: canonical(v, k) for k, v in node.items()}
        if isinstance(node, list):
            return [canonical(v, key) for v in node]
        if key in FREE_TEXT and isinstance(node, str):
            return "x" if node else ""
        return node
    return json.dumps(canonical(fill(node, key), key), sort_keys=True)


def _shape_json(node):
    def shape(node):
        if isinstance(node, dict):
            return {k: shape(v) for k, v in node.items()}
        if isinstance(node, list):
            return [shape(v) for v in node]
        return "" if isinstance(node, str) else node
    return json.dumps(shape(node), sort_keys=True)


_LEAVES = st.sampled_from(["", "a", "b", 0, 1, 1.0, True, False, None, {"$t": "{{ a }}"}, {"$t": "{{ b }}"},
                           {"$url": {"route": "/x", "query": {}}}])
_TREES = st.recursive(_LEAVES, lambda inner: st.one_of(
    st.lists(inner, max_size=3),
    st.dictionaries(st.sampled_from(["text", "name", "number", "numDigits", "finishOnKey", "url", "other"]), inner,
                    max_size=3)), max_leaves=6)


@settings(max_examples=500, deadline=None)
@given(st.lists(st.tuples(_TREES, st.sampled_from(["", "actions", "text", "number", "other"])), min_size=2,
                max_size=6))
def test_verify_keys_are_never_looser_than_the_json_keys(trees):
    """Responses (and rooms) that share a hashable key share the JSON key verify used before, so checking one
    of them per key decides for all; True, 1 and 1.0 never share one."""
    from roomc.compiler.verify import _response_key, _shape

    by_key: dict = {}
    by_shape: dict = {}
    for tree, key in trees:
        assert by_key.setdefault(_response_key(tree, key), _canonical_json(tree, key)) == _canonical_json(tree, key)
        assert by_shape.setdefault(_shape(tree), _shape_json(tree)) == _shape_json(tree)


@pytest.mark.parametrize("example", EXAMPLES)
def test_verify_checks_each_response_the_json_keys_checked(example, monkeypatch):
    """On every example, the responses verify checks are one per JSON key, as before."""
    from roomc.compiler.verify import _response_key, expand, responses

    monkeypatch.chdir(ROOT)
    table = pipeline.run([f"rooms/{example}"]).table
    assert table is not None
    keys, jsons = set(), set()
    for _, actions in responses(table):
        expanded = expand(table, actions)
        keys.add(_response_key(expanded, "actions"))
        jsons.add(_canonical_json({"actions": expanded}))
    assert len(keys) == len(jsons)
