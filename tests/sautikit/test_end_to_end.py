"""Real processes on loopback: `roomc serve` + `roomc sautikit-local` + `roomc dial` / `calls` / `barge`."""
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from datetime import datetime

import pytest

from roomc.compiler import pipeline
from roomc.compiler.emit import emit
from roomc.sautikit.client import CallsClient, SautikitError

from ..conftest import ROOMS
from ..runtime.server import Server, free_port

pytestmark = pytest.mark.server
KEY, SECRET, ADMIN = "tsk_live_local", "whsec_local", {"Authorization": "Bearer adm"}
TOWN_HALL = str(ROOMS / "town-hall.yaml")


@pytest.fixture
def line(tmp_path):
    """A runtime serving rooms/ and a local Sautikit at 60x, signing with one shared secret."""
    table = tmp_path / "routes.json"
    table.write_text(emit(pipeline.run([str(ROOMS)]).table))
    runtime = Server(table, tmp_path / "roomc.db")
    runtime.env.update(ROOMC_PUBLIC_URL=runtime.base, SAUTIKIT_VOICE_SECRET=SECRET, ROOMC_ADMIN_TOKEN="adm")
    runtime.start()
    port = free_port()
    env = {**os.environ, "SAUTIKIT_API_KEY": KEY, "SAUTIKIT_VOICE_SECRET": SECRET}
    with open(tmp_path / "local.log", "ab") as log:
        local = subprocess.Popen([sys.executable, "-c", "from roomc.cli import run; run()", "sautikit-local",
                                  "--port", str(port), "--speed", "60"], env=env, stdout=log, stderr=subprocess.STDOUT)
    api = f"http://127.0.0.1:{port}"
    deadline = time.time() + 20
    while True:
        try:
            urllib.request.urlopen(urllib.request.Request(api + "/v1/local/report", headers={"Authorization": f"Bearer {KEY}"}))
            break
        except OSError:
            if time.time() > deadline:
                raise
            time.sleep(0.1)
    # `roomc dial` records its calls in the runtime's own store, as an operator on that machine would.
    yield runtime, api, {"SAUTIKIT_API_URL": api, "SAUTIKIT_API_KEY": KEY, "ROOMC_PUBLIC_URL": runtime.base,
                         "ROOMC_DB": str(tmp_path / "roomc.db")}
    local.send_signal(signal.SIGINT)
    local.wait(timeout=10)
    runtime.stop()


def eventually(check, timeout=15.0):
    deadline = time.time() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.time() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.05)


def report(api):
    request = urllib.request.Request(api + "/v1/local/report", headers={"Authorization": f"Bearer {KEY}"})
    return json.loads(urllib.request.urlopen(request).read())


def heard(api, call_id):
    return [e["what"] for e in report(api)["timeline"] if e["who"] == call_id]


def test_a_whole_town_hall_across_processes(line, invoke):
    runtime, api, env = line
    client = CallsClient(api_key=KEY, base_url=api)

    def dial(number, *query):
        result = invoke("dial", TOWN_HALL, "--route", "/townhall/join", "--query", "room=99", *sum((["--query", q] for q in query), []),
                        "--to", number, "--from", "+254700000001", env=env)
        assert result.exit_code == 0, result.output
        return json.loads(result.output)["call_id"]

    def participants():
        status, room = runtime.get("/rooms/townhall-99", ADMIN)
        return room["participants"] if status == 200 else []

    waiting = [dial(f"+25473300000{i}") for i in range(3)]
    eventually(lambda: sum(p["joinedAt"] is not None for p in participants()) == 3)
    assert all("waits on hold (https://cdn.example.com/hold-music.mp3)" in heard(api, n) for n in
               [f"+25473300000{i}" for i in range(3)])

    host = dial("+254733000100", "host=1")
    eventually(lambda: "starts townhall-99" in heard(api, "+254733000100"))

    supervisor = dial("+254733000200", "listen=1")
    eventually(lambda: any(p["callId"] == supervisor and p["joinedAt"] and p["muted"] for p in participants()))

    more = [dial(f"+25473300001{i}") for i in range(6)]
    eventually(lambda: sum(p["joinedAt"] is not None for p in participants()) == 11)
    eleventh = dial("+254733000999")
    eventually(lambda: client.get_call(eleventh)["status"] == "completed")
    assert heard(api, "+254733000999")[0] == 'hears "Sorry, this town hall is full."'

    listed = invoke("calls", "--room", "townhall-99", "--format", "json", env=env)
    assert len(json.loads(listed.output)["calls"]) == 12

    barged = json.loads(invoke("barge", supervisor, TOWN_HALL, "--route", "/townhall/join", "--query", "room=99",
                               "--query", "barge=1", env=env).output)
    coach = barged["redialled"]["call_id"]
    eventually(lambda: any(p["callId"] == coach and p["joinedAt"] and not p["muted"] and p["role"] == "coach"
                           for p in participants()))
    assert client.get_call(supervisor)["status"] == "completed"

    client.hangup(host)
    eventually(lambda: runtime.get("/rooms/townhall-99", ADMIN)[1]["recordingUrl"])
    room = runtime.get("/rooms/townhall-99", ADMIN)[1]
    assert room["recordingUrl"].endswith("/recordings/townhall-99-1.mp3") and room["ended"]
    eventually(lambda: all(client.get_call(c)["status"] == "completed" for c in waiting + more + [coach]))

    bill = report(api)
    assert bill["totalMinor"] == sum(leg["durationSeconds"] * 5 for leg in bill["legs"])  # outbound, per second
    for leg in bill["legs"]:
        assert client.get_call(leg["callId"])["cost_minor"] == leg["durationSeconds"] * 5


def test_client_errors_carry_the_platform_code(line):
    _, api, _ = line
    client = CallsClient(api_key=KEY, base_url=api, attempts=1)
    with pytest.raises(SautikitError) as missing:
        client.get_call("no-such-call")
    assert (missing.value.status, missing.value.code) == (404, "calls.not_found")
    with pytest.raises(SautikitError) as unauthorised:
        CallsClient(api_key="wrong", base_url=api).get_call("x")
    assert unauthorised.value.code == "api_key.invalid"


def test_idempotency_key_replays_instead_of_dialling_twice(line):
    runtime, api, _ = line
    client = CallsClient(api_key=KEY, base_url=api)
    url = runtime.base + "/townhall/join?room=idem"
    first = client.create_call(from_="+254700000001", to="+254733000001", voice_callback_url=url, idempotency_key="k1")
    again = client.create_call(from_="+254700000001", to="+254733000001", voice_callback_url=url, idempotency_key="k1")
    assert first["call_id"] == again["call_id"]
    started = client.get_call(first["call_id"])["started_at"]
    assert datetime.fromisoformat(started.replace("Z", "+00:00")).year >= 2026  # RFC 3339, as the platform sends
    assert len(list(client.list_calls(limit=1))) == 1  # paging through a one-item page


def test_unreachable_platform_is_a_clear_error():
    client = CallsClient(api_key=KEY, base_url=f"http://127.0.0.1:{free_port()}", attempts=2, backoff=0.01)
    with pytest.raises(SautikitError) as error:
        client.get_call("x")
    assert error.value.code == "network.unreachable"


def test_sautikit_local_plays_the_readings_it_is_started_with(tmp_path, webhook):
    """The switches reach a real `roomc sautikit-local` process: thirdparty-shaped, unsigned status events."""
    base, replies, received = webhook
    replies.append({"actions": [{"conference": {"name": "r", "statusEventsCallbackUrl": base + "/events",
                                                "statusEvents": "join"}}]})
    port = free_port()
    env = {**os.environ, "SAUTIKIT_API_KEY": KEY, "SAUTIKIT_VOICE_SECRET": SECRET}
    log = tmp_path / "local.log"
    with open(log, "ab") as out:
        local = subprocess.Popen([sys.executable, "-c", "from roomc.cli import run; run()", "sautikit-local",
                                  "--port", str(port), "--speed", "60", "--event-shape", "thirdparty",
                                  "--events-signed", "false"], env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        client = CallsClient(api_key=KEY, base_url=f"http://127.0.0.1:{port}", attempts=10, backoff=0.05)  # waits for start-up
        client.create_call(from_="+254700000001", to="+254733000001", voice_callback_url=base + "/join")
        eventually(lambda: any(path == "/events" for path, _, _ in received))
    finally:
        local.send_signal(signal.SIGINT)
        local.wait(timeout=10)
    (path, body, signature), = [r for r in received if r[0] == "/events"]
    assert json.loads(body)["event"] == "join" and "conferenceName" in json.loads(body) and signature is None
    assert received[0][2] is not None  # the voice callback is still signed
    banner = log.read_text()
    assert "event_shape=thirdparty" in banner and "events_signed=false" in banner


def test_a_hand_raised_in_the_room_reaches_the_runtime_across_processes(line):
    runtime, api, _ = line

    def inbound(number, keys):
        body = json.dumps({"from": number, "to": "+254700000001", "url": runtime.base + "/townhall/join?room=77",
                           "keys": keys, "hangup_after": 900}).encode()
        request = urllib.request.Request(api + "/v1/local/inbound", data=body, method="POST", headers={
            "Authorization": f"Bearer {KEY}", "Content-Type": "application/json"})
        with urllib.request.urlopen(request) as answer:
            return json.loads(answer.read())["call_id"]

    asker = inbound("+254733000001", [{"after": 30, "digits": "1"}])
    caller = inbound("+254733000002", [{"after": 30, "digits": "0"}, {"after": 60, "digits": "7"}])

    def flags():
        status, room = runtime.get("/rooms/townhall-77", ADMIN)
        if status != 200:
            return None
        return [h["callId"] for h in room["handsRaised"]], [o["callId"] for o in room["operatorRequested"]]

    assert eventually(lambda: flags() == ([asker], [caller]) and flags())
    assert eventually(lambda: "presses 7 in townhall-77" in heard(api, "+254733000002"))
    time.sleep(0.5)  # the unmapped 7 was acknowledged and changed nothing
    assert flags() == ([asker], [caller])
    with pytest.raises(urllib.error.HTTPError) as refused:  # nobody else can post keys for the room
        urllib.request.urlopen(urllib.request.Request(runtime.base + "/townhall/keys?room=townhall-77",
                                                      data=b'{"Digits": "1", "CallId": "x"}', method="POST",
                                                      headers={"Content-Type": "application/json"}))
    assert refused.value.code == 403
    refused.value.close()
