"""A seat's lifetime across real processes, when the join event is not enough (issue 10, question 3).

`roomc serve` and `roomc sautikit-local` (at 60x) on loopback with a 1-2 s reservation TTL:
reservations lapse within a minute of simulated time, so only what roomc learns from the
platform keeps the town hall's ten seats counted: events in the third-party shape or the
Sautikit envelope, or (with every status event refused) the calls API asked by the sweeper.
"""
import os
import signal
import subprocess
import sys
import time
import urllib.request
from urllib.parse import urlencode

import pytest

from roomc.compiler import pipeline
from roomc.compiler.emit import emit
from roomc.sautikit.client import CallsClient

from ..conftest import ROOMS
from ..runtime.server import Server, free_port
from .test_end_to_end import eventually, heard

pytestmark = pytest.mark.server
KEY, SECRET, ADMIN = "tsk_live_local", "whsec_local", {"Authorization": "Bearer adm"}
NUMBER = "+254700000001"


@pytest.fixture
def start(tmp_path):
    """start(local_args, runtime_env) -> (runtime, api): a local Sautikit, then a runtime serving the town hall."""
    started: list = []

    def run(local_args: list[str], runtime_env: dict) -> tuple[Server, str]:
        port = free_port()
        env = {**os.environ, "SAUTIKIT_API_KEY": KEY, "SAUTIKIT_VOICE_SECRET": SECRET}
        with open(tmp_path / "local.log", "ab") as log:
            local = subprocess.Popen([sys.executable, "-c", "from roomc.cli import run; run()", "sautikit-local",
                                      "--port", str(port), "--speed", "60", *local_args], env=env, stdout=log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        started.append(local)
        api = f"http://127.0.0.1:{port}"
        eventually(lambda: _up(api), timeout=20)
        table = tmp_path / "routes.json"
        table.write_text(emit(pipeline.run([str(ROOMS)]).table))  # signed: rooms/meeting.yaml names the secret
        runtime = Server(table, tmp_path / "roomc.db", workers=1)
        runtime.env.update(ROOMC_PUBLIC_URL=runtime.base, SAUTIKIT_VOICE_SECRET=SECRET, ROOMC_ADMIN_TOKEN="adm",
                           **{k: v.replace("{api}", api) for k, v in runtime_env.items()})
        for name in ("SAUTIKIT_API_KEY", "SAUTIKIT_API_URL"):
            if name not in runtime_env:
                runtime.env.pop(name, None)
        started.append(runtime)
        return runtime.start(), api

    yield run
    for thing in reversed(started):
        if isinstance(thing, Server):
            thing.stop()
        elif thing.poll() is None:
            thing.send_signal(signal.SIGINT)
            try:
                thing.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(thing.pid, signal.SIGKILL)
                thing.wait()


def _up(api: str) -> bool:
    try:
        urllib.request.urlopen(urllib.request.Request(api + "/v1/local/report",
                                                      headers={"Authorization": f"Bearer {KEY}"}), timeout=2)
        return True
    except OSError:
        return False


def fill_the_town_hall(runtime: Server, client: CallsClient) -> dict[str, str]:
    """The host, a listening supervisor and nine guests, each in the room (joined, as the runtime stored it)."""
    def dial(to: str, **query: str) -> str:
        url = runtime.base + "/townhall/join?" + urlencode({"room": "9", **query})
        return client.create_call(from_=NUMBER, to=to, voice_callback_url=url)["call_id"]

    calls = {"host": dial("+254733000100", host="1"), "supervisor": dial("+254733000200", listen="1")}
    calls.update({f"guest-{i}": dial(f"+25473300001{i}") for i in range(9)})
    eventually(lambda: all("joins townhall-9" in " ".join(heard_by(client, runtime, c)) for c in calls.values()),
               timeout=30)
    return calls


def heard_by(client: CallsClient, runtime: Server, call_id: str) -> list[str]:
    return heard(client.base_url, client.get_call(call_id)["remote_e164"])


def participants(runtime: Server) -> list[dict]:
    status, room = runtime.get("/rooms/townhall-9", ADMIN)
    return room["participants"] if status == 200 else []


@pytest.mark.parametrize("shape", [["--event-shape", "thirdparty", "--events-signed", "false"],
                                   ["--event-shape", "sautikit-envelope"]], ids=["thirdparty-unsigned", "envelope"])
def test_capacity_holds_past_the_reservation_ttl(start, shape):
    runtime, api = start(shape, {"ROOMC_RESERVATION_TTL": "1"})
    client = CallsClient(api_key=KEY, base_url=api)
    calls = fill_the_town_hall(runtime, client)
    # Every join became readable: the seats are the events', not the lapsed reservations'.
    eventually(lambda: sum(p["joinedAt"] is not None for p in participants(runtime)) == 11)
    time.sleep(2.5)  # 2.5 minutes of meeting: every reservation has lapsed
    late = client.create_call(from_=NUMBER, to="+254733000999",
                              voice_callback_url=runtime.base + "/townhall/join?room=9")["call_id"]
    eventually(lambda: client.get_call(late)["status"] == "completed", timeout=20)
    assert heard(api, "+254733000999")[:1] == ['hears "Sorry, this town hall is full."']
    assert not [w for w in heard(api, "+254733000999") if "stalls" in w]
    # A guest who leaves frees a seat, found by participant id or number: the next caller is let in.
    client.hangup(calls["guest-3"])
    eventually(lambda: any(p["leftAt"] for p in participants(runtime)))
    again = client.create_call(from_=NUMBER, to="+254733000998",
                               voice_callback_url=runtime.base + "/townhall/join?room=9")["call_id"]
    eventually(lambda: "joins townhall-9 (beep)" in heard(api, "+254733000998"), timeout=20)
    assert client.get_call(again)["status"] == "answered"


def test_with_every_status_event_refused_the_calls_api_keeps_the_count(start):
    """`required` signatures and a PBX that signs nothing: every status event is refused (403); the sweeper asks
    GET /v1/calls/{id} and keeps live callers' seats, and frees the seat of one who hung up."""
    runtime, api = start(["--events-signed", "false"],
                         {"ROOMC_RESERVATION_TTL": "2", "ROOMC_EVENTS_SIGNATURE": "required",
                          "SAUTIKIT_API_KEY": KEY, "SAUTIKIT_API_URL": "{api}"})
    client = CallsClient(api_key=KEY, base_url=api)
    calls = fill_the_town_hall(runtime, client)
    assert all(p["joinedAt"] is None for p in participants(runtime))  # no event got through
    time.sleep(4)  # twice the TTL: only the sweeper's word holds the seats now
    late = client.create_call(from_=NUMBER, to="+254733000999",
                              voice_callback_url=runtime.base + "/townhall/join?room=9")["call_id"]
    eventually(lambda: client.get_call(late)["status"] == "completed", timeout=20)
    assert heard(api, "+254733000999")[:1] == ['hears "Sorry, this town hall is full."']
    client.hangup(calls["guest-5"])
    eventually(lambda: client.get_call(calls["guest-5"])["status"] == "completed")
    time.sleep(3)  # the next sweeps see the call has ended (or its reservation lapses unrenewed)
    again = client.create_call(from_=NUMBER, to="+254733000998",
                               voice_callback_url=runtime.base + "/townhall/join?room=9")["call_id"]
    eventually(lambda: "joins townhall-9 (beep)" in heard(api, "+254733000998"), timeout=20)
    assert client.get_call(again)["status"] == "answered"
    log = runtime.log_path.read_text()
    assert "events signature: required" in log and "seat sweeper: asking" in log
