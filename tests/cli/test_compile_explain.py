"""`roomc compile`, `roomc explain` and `roomc graph`, including the platform page's Express example."""
import json

import pytest

from ..conftest import ROOT

MEETING = str(ROOT / "rooms" / "meeting.yaml")


def express_handler(query: dict) -> dict:
    """The platform page's Express handler (shared/seeds), transcribed: what it returns for a query."""
    room_name = query.get("room", "default-room")
    is_host = query.get("host") == "1"
    return {"actions": [
        {"say": {"text": f"You are joining {room_name} as the host." if is_host
                 else f"You are joining {room_name}. Please wait for the host."}},
        {"conference": {
            "name": room_name, "startOnEnter": is_host, "endOnExit": is_host, "beep": True,
            "maxParticipants": 10, "waitUrl": "https://yourapp.example.com/hold-music.mp3",
            "statusEventsCallbackUrl": "https://yourapp.example.com/conference/events",
            "statusEvents": "start end join leave mute unmute"}},
    ]}


@pytest.mark.parametrize("query", [{"room": "99", "host": "1"}, {"room": "99"}, {}])
def test_explain_reproduces_the_express_example(invoke, query):
    """roomc for room=99 answers what the page answers for room=meeting-99: the example's name has a
    literal prefix of its own, so no other room's conference is reachable through it (RC213)."""
    args = ["explain", MEETING, "--route", "/conference/join", "--format", "json"]
    for key, value in query.items():
        args += ["--query", f"{key}={value}"]
    result = invoke(*args)
    assert result.exit_code == 0
    page_query = {**query, "room": "meeting-" + query.get("room", "default-room")}
    assert json.loads(result.output) == express_handler(page_query)


def test_explain_expected_json_written_from_the_page(invoke):
    """The page's host answer for meeting-99, written out by hand rather than computed."""
    result = invoke("explain", MEETING, "--route", "/conference/join", "--query", "room=99",
                    "--query", "host=1", "--format", "json")
    assert json.loads(result.output) == {"actions": [
        {"say": {"text": "You are joining meeting-99 as the host."}},
        {"conference": {"name": "meeting-99", "startOnEnter": True, "endOnExit": True, "beep": True,
                        "maxParticipants": 10, "waitUrl": "https://yourapp.example.com/hold-music.mp3",
                        "statusEventsCallbackUrl": "https://yourapp.example.com/conference/events",
                        "statusEvents": "start end join leave mute unmute"}}]}


def test_explain_says_why_on_stderr(runner):
    from roomc.cli import main
    result = runner.invoke(main, ["explain", MEETING, "--route", "/conference/join", "--query", "room=m-1",
                                  "--participants", "10"], catch_exceptions=False)
    assert "role 'participant' chosen: the default (no `when`)" in result.stderr
    assert "full: the room's own seats (maxParticipants): 10 of 10 taken" in result.stderr
    assert json.loads(result.stdout)["actions"][-1] == {"hangup": {}}


def test_explain_flow_with_digits_and_the_meeting_directory(invoke):
    bridge = str(ROOT / "rooms" / "dial-in-bridge.yaml")
    result = invoke("explain", bridge, "--route", "/pin", "--query", "meeting=123456", "--form", "Digits=4321",
                    "--format", "json")
    actions = json.loads(result.output)["actions"]
    assert actions[-1]["conference"]["name"] == "bridge-123456"
    assert actions[-1]["conference"]["startOnEnter"] is True
    wrong = invoke("explain", bridge, "--route", "/pin", "--query", "meeting=123456", "--form", "Digits=0000",
                   "--format", "json")
    assert json.loads(wrong.output)["actions"][0]["say"]["text"].startswith("That PIN is not valid")


def test_explain_a_pin_step_at_a_given_try(invoke):
    bridge = str(ROOT / "rooms" / "dial-in-bridge.yaml")
    last = invoke("explain", bridge, "--route", "/pin", "--query", "meeting=123456", "--form", "Digits=0000",
                  "--try", "3")
    assert "try 3 of 3" in last.stderr and "on the last try: afterLastTry" in last.stderr
    assert json.loads(last.stdout)["actions"] == [{"say": {"text": "That PIN is not valid. Goodbye."}}, {"hangup": {}}]
    past = invoke("explain", bridge, "--route", "/pin", "--query", "meeting=123456", "--form", "Digits=4321",
                  "--try", "4")
    assert "past the last try, no branch is tried" in past.stderr and "conference" not in past.stdout
    assert "4321" not in past.stderr  # the trace never repeats the digits


def test_explain_unknown_route(invoke):
    result = invoke("explain", MEETING, "--route", "/nope")
    assert result.exit_code == 2 and "no route '/nope'" in result.output


def test_compile_writes_the_table(invoke, tmp_path):
    out = tmp_path / "build" / "routes.json"
    result = invoke("compile", str(ROOT / "rooms"), "-o", str(out))
    assert result.exit_code == 0
    table = json.loads(out.read_text())
    assert set(table["routes"]) >= {"/conference/join", "/conference/events", "/lobby", "/pin"}
    # The compiled table serves as input too.
    again = invoke("explain", str(out), "--route", "/conference/join", "--query", "room=a", "--format", "json")
    assert json.loads(again.output)["actions"][-1]["conference"]["name"] == "meeting-a"


def test_compile_refuses_policies_with_errors(invoke):
    result = invoke("compile", str(ROOT / "tests/compiler/cases/references"))
    assert result.exit_code == 1
    assert "[RC201]" in result.output and "not compiled" in result.output


def test_graph_mermaid_and_dot(invoke):
    mermaid = invoke("graph", str(ROOT / "rooms"), "--format", "mermaid").output
    assert mermaid.startswith("flowchart LR")
    assert "flow_lobby -->|digits: redirect| route__pin" in mermaid
    assert "room_bridge -->|when full: join| room_overflow" in mermaid
    dot = invoke("graph", str(ROOT / "rooms"), "--format", "dot").output
    assert dot.startswith("digraph roomc {") and dot.rstrip().endswith("}")


def test_emit_ir_shows_the_intermediate_form_with_spans(invoke):
    result = invoke("compile", MEETING, "--emit", "ir")
    assert result.exit_code == 0
    assert "Room(id='meeting'" in result.output and "Span(file=" in result.output and "line=" in result.output


CALL_CENTRE = str(ROOT / "rooms" / "call-centre.yaml")


@pytest.mark.parametrize("at, opened, reason", [
    ("2026-12-25T09:00+03:00", False, "closed at fri 2026-12-25 09:00 Africa/Nairobi: a closure (Christmas Day)"),
    ("2026-12-24T06:00Z", True, "open at thu 2026-12-24 09:00 Africa/Nairobi, within 08:00-17:00"),
    ("2026-12-27T12:00+03:00", False, "outside the weekly hours (sun: closed)"),
])
def test_explain_at_an_instant(runner, at, opened, reason):
    from roomc.cli import main

    result = runner.invoke(main, ["explain", CALL_CENTRE, "--route", "/support/join", "--query", "ticket=7",
                                  "--at", at])
    assert result.exit_code == 0, result.output
    actions = json.loads(result.stdout)["actions"]
    assert ("conference" in actions[-1]) is opened
    assert reason in result.stderr and result.stderr.startswith(f"# as of {at} (--at)")


@pytest.mark.parametrize("at, problem", [
    ("2026-12-25T09:00", "has no offset"),
    ("0001-01-01T00:00+14:00", "outside the years 1970 to 9998"),
    ("9999-12-31T23:59-12:00", "outside the years"),
    ("1969-12-31T23:59:59Z", "outside the years"),
    ("tomorrow", "ISO 8601"),
    ("2026-12-25T25:61+03:00", "ISO 8601"),
])
def test_explain_at_refuses_what_names_no_instant(invoke, at, problem):
    result = invoke("explain", CALL_CENTRE, "--route", "/support/join", "--query", "ticket=7", "--at", at)
    assert result.exit_code != 0 and problem in result.output and "Traceback" not in result.output


def test_explain_shows_the_rooms_default_voice(invoke):
    result = invoke("explain", CALL_CENTRE, "--route", "/support/join", "--query", "ticket=7",
                    "--at", "2026-12-24T09:00+03:00", "--format", "json")
    say = json.loads(result.output)["actions"][0]["say"]
    assert say == {"text": "Thank you for calling. An agent will be with you shortly.", "voice": "woman",
                   "language": "en-KE"}


def test_graph_shows_what_keeps_hours_and_where_closed_callers_go(invoke, tmp_path):
    policy = tmp_path / "p.yaml"
    policy.write_text(
        'roomc: 1\nserver: {publicUrl: "https://x.example.com", signatureSecretEnv: S}\n'
        'hours:\n  office:\n    zone: UTC\n    weekly: {daily: "08:00-17:00"}\n'
        '    closed: [{say: "Closed."}, {redirect: /voicemail}]\n'
        'flows:\n  voicemail: {actions: [{record: {maxLength: 60}}]}\n'
        'rooms:\n  support: {name: "support-{{ query.t }}", hours: office, roles: {caller: {}}}\n'
        'routes:\n  /support: {join: support}\n  /voicemail: {flow: voicemail}\n  /e: events\n')
    mermaid = invoke("graph", str(policy)).output
    assert 'hours_office{{"hours office"}}' in mermaid
    assert "room_support -->|closed| hours_office" in mermaid
    assert "hours_office -->|closed: redirect| route__voicemail" in mermaid
    assert 'hours_office [label="hours office", shape=hexagon];' in invoke("graph", str(policy), "--format", "dot").output


def test_explain_a_key_pressed_in_the_town_hall(runner):
    from roomc.cli import main
    town_hall = str(ROOT / "rooms" / "town-hall.yaml")
    result = runner.invoke(main, ["explain", town_hall, "--route", "/townhall/keys", "--query", "room=townhall-99",
                                  "--form", "Digits=1", "--form", "CallId=c1"], catch_exceptions=False)
    assert json.loads(result.stdout) == {"ok": True, "outcome": "stored", "effect": "raiseHand"}
    assert "digits '1' -> raiseHand" in result.stderr and "adds it to handsRaised" in result.stderr
    unmapped = runner.invoke(main, ["explain", town_hall, "--route", "/townhall/keys", "--query", "room=townhall-99",
                                    "--form", "Digits=5"], catch_exceptions=False)
    assert json.loads(unmapped.stdout)["reason"] == "key not mapped" and "map to nothing" in unmapped.stderr
    graph = runner.invoke(main, ["graph", town_hall], catch_exceptions=False).stdout
    assert "room_townhall -->|in-room keys| route__townhall_keys" in graph


def test_explain_shows_the_seat_held_for_the_host_and_the_pools(runner):
    from roomc.cli import main
    base = ["explain", MEETING, "--route", "/conference/join", "--query", "room=m-1", "--participants", "9"]
    participant = runner.invoke(main, base, catch_exceptions=False)
    assert ("full: the room's own seats (maxParticipants): 9 of 10 taken, 1 held for 'host' (0 filled): "
            "9 + 1 held for others = 10 of 10") in participant.stderr
    host = runner.invoke(main, base + ["--query", "host=1"], catch_exceptions=False)
    assert "admitted: the room's own seats (maxParticipants): 9 of 10 taken" in host.stderr
    assert "this caller fills a seat held for 'host'" in host.stderr
    joined = runner.invoke(main, base + ["--present", "host=1"], catch_exceptions=False)
    # The host is one of the nine: its seat is filled, so the tenth is anyone's.
    assert "admitted: the room's own seats (maxParticipants): 9 of 10 taken, 1 held for 'host' (1 filled)" in joined.stderr
    webinar = str(ROOT / "rooms" / "webinar.yaml")
    speaker = runner.invoke(main, ["explain", webinar, "--route", "/webinar/join", "--query", "id=7", "--query",
                                   "speaker=1", "--query", "key=k", "--secret", "WEBINAR_SPEAKER_KEY=k",
                                   "--taken", "speakers=2"], catch_exceptions=False)
    assert "full: pool 'speakers': 2 of 2 taken" in speaker.stderr
    assert '"muted": true' in speaker.stdout  # sent to the listeners by the pool's whenFull
    bad = runner.invoke(main, base + ["--taken", "speakers=-1"])
    assert bad.exit_code != 0 and "--taken takes a whole number of seats" in bad.output + bad.stderr
