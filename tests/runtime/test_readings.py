"""roomc under each reading of the platform's open questions (docs/runtime.md, "Platform readings").

Requests are shaped as each reading says the platform sends them: digits posted to the
number's URL, participant events in the third-party shape, call-completed envelopes,
unsigned events. The calls API is the local Sautikit, over real HTTP on loopback.
"""
import logging
import threading
import time

import pytest

from roomc.runtime import Settings, create_app
from roomc.runtime import calls
from roomc.runtime.signatures import sign
from roomc.runtime.store import SQLiteStore

from roomc.runtime.storage import open_store

from ..conftest import table_for

SECRET = b"whsec_readings"


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request, tmp_path):
    """Every reading against both stores: the per-call state (notes, callers, call ends) is store code."""
    location = str(tmp_path / "roomc.db") if request.param == "sqlite" else request.getfixturevalue("pg_url")
    with open_store(location) as opened:
        yield opened


def count(store, table):
    """Rows in one of the store's tables, whichever store it is."""
    if isinstance(store, SQLiteStore):
        return store._connection().execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
    with store._conn() as conn:
        return conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]


def post(client, path, query=None, **form):
    response = client.post(path, query_string=query or {}, data=form)
    assert response.status_code == 200 and response.mimetype == "application/json"
    return response.get_json()["actions"]


def conference(actions):
    return actions[-1].get("conference")


def seat(store, room, call):
    found = store.room(room)
    return next((p for p in (found or {"participants": []})["participants"] if p["callId"] == call), None)


# -- where digits go ----------------------------------------------------------------------
class TestDigitsAtTheNumbersUrl:
    """SDK README: digits come back to the number's voice_callback_url (/lobby), not the step's URL."""

    def test_the_pin_posted_to_the_lobby_is_answered_by_the_pin_step(self, client, store):
        assert "getDigits" in post(client, "/lobby", CallId="sdk-1")[0]
        prompt = post(client, "/lobby", CallId="sdk-1", Digits="123456")  # /pin?meeting=123456, inline
        assert "PIN" in prompt[0]["getDigits"]["nested"][0]["say"]["text"]
        host = post(client, "/lobby", CallId="sdk-1", Digits="4321")  # the PIN, at the number's URL
        assert conference(host)["name"] == "bridge-123456" and conference(host)["startOnEnter"] is True
        assert seat(store, "bridge-123456", "sdk-1")["role"] == "host"
        # The step is spent: the next digits at /lobby are a meeting number again, not a PIN.
        again = post(client, "/lobby", CallId="sdk-1", Digits="654321")
        assert "PIN" in again[0]["getDigits"]["nested"][0]["say"]["text"]
        assert calls.pending_step(store, "sdk-1") == ("/pin", {"meeting": "654321"})

    def test_the_same_after_a_redirect_the_platform_followed(self, client, store):
        post(client, "/lobby", CallId="sdk-2")
        post(client, "/pin", {"meeting": "333333"}, CallId="sdk-2")  # e.g. a redirect emitted past the inline limit
        host = post(client, "/lobby", CallId="sdk-2", Digits="4321")
        assert conference(host)["name"] == "bridge-333333"
        assert seat(store, "bridge-333333", "sdk-2")["role"] == "host"

    def test_a_six_digit_pin_is_not_taken_for_a_meeting_number(self, rooms_table, store):
        app = create_app(rooms_table, store=store, settings=Settings(
            public_url="https://rooms.example.com"))
        client = app.test_client()
        post(client, "/lobby", CallId="six")
        post(client, "/lobby", CallId="six", Digits="777777")  # its host PIN in the sample directory: 999999
        host = post(client, "/lobby", CallId="six", Digits="999999")
        assert conference(host)["name"] == "bridge-777777"
        assert seat(store, "bridge-777777", "six")["role"] == "host"

    def test_digits_at_the_steps_own_url_still_work(self, client, store):
        post(client, "/lobby", CallId="docs-1")
        post(client, "/pin", {"meeting": "123456"}, CallId="docs-1")
        participant = post(client, "/pin", {"meeting": "123456"}, CallId="docs-1", Digits="1111")
        assert conference(participant)["name"] == "bridge-123456"
        assert seat(store, "bridge-123456", "docs-1")["role"] == "participant"

    def test_a_plain_join_writes_nothing_but_its_seat(self, client, store):
        post(client, "/conference/join", {"room": "fast"}, CallId="plain")
        assert count(store, "call_notes") == 0

    def test_steps_expire(self, store):
        # Generous on both sides: a loaded machine took more than 50 ms between the two calls.
        calls.remember_step(store, "old", "/pin", {"meeting": "1"}, 1.0)
        assert calls.pending_step(store, "old") == ("/pin", {"meeting": "1"})
        time.sleep(1.1)
        assert calls.pending_step(store, "old") is None


# -- a later answer re-seats the call under its new role -----------------------------------
WEBINAR = """
roomc: 1
server: {publicUrl: "https://rooms.example.com"}
secrets: [SPEAKER_PIN]
rooms:
  webinar:
    name: "webinar-{{ query.w }}"
    maxParticipants: 2
    extraSeats: 50
    whenFull:
      - say: "Both speaker seats are taken."
      - hangup: {}
    roles:
      speaker: {when: "call.digits == secret.SPEAKER_PIN", startOnEnter: true}
      listener: {muted: true, countsTowardCapacity: false}
flows:
  entry:
    actions:
      - getDigits: {timeout: 5, nested: [say: "Speakers, enter your PIN."]}
      - join: {room: webinar, role: listener}
    onDigits:
      - when: "call.digits == secret.SPEAKER_PIN"
        actions: [join: {room: webinar, role: speaker}]
    otherwise: [join: {room: webinar, role: listener}]
routes:
  /webinar: {flow: entry}
  /events: events
"""


def test_three_speaker_pins_do_not_fit_two_speaker_seats(tmp_path, store):
    app = create_app(table_for(tmp_path, WEBINAR), store=store,
                     settings=Settings(public_url="https://rooms.example.com", secrets={"SPEAKER_PIN": "777"}))
    client = app.test_client()
    answers = []
    for n in range(3):
        post(client, "/webinar", {"w": "1"}, CallId=f"sp-{n}")  # the fallback join reserves a listener seat
        answers.append(post(client, "/webinar", {"w": "1"}, CallId=f"sp-{n}", Digits="777"))
    assert [bool(conference(a)) for a in answers] == [True, True, False]
    assert answers[2][0] == {"say": {"text": "Both speaker seats are taken."}}
    roles = {p["callId"]: p["role"] for p in store.room("webinar-1")["participants"]}
    assert roles["sp-0"] == roles["sp-1"] == "speaker"
    # The third caller's listener reservation is let go, not held for a caller who was hung up on.
    assert store.live_rooms()[0]["reserved"] == 2


def test_the_bridge_stores_the_host_who_keyed_the_pin_as_host(client, store):
    post(client, "/pin", {"meeting": "222222"}, CallId="h1")  # the PIN prompt: no seat until a PIN
    assert seat(store, "bridge-222222", "h1") is None
    post(client, "/pin", {"meeting": "222222"}, CallId="h1", Digits="4321")
    assert seat(store, "bridge-222222", "h1")["role"] == "host"
    post(client, "/pin", {"meeting": "222222"}, CallId="h1", Digits="4321")  # a retry keeps its one seat
    assert store.live_rooms()[0]["reserved"] == 1


# -- events that name no call, and calls that end -----------------------------------------
def events(client, path="/conference/events", **body):
    response = client.post(path, json=body)
    assert response.status_code == 200, response.get_json()
    return response.get_json()["outcome"]


@pytest.fixture
def short_ttl(rooms_table, store):
    app = create_app(rooms_table, store=store, settings=Settings(public_url="https://rooms.example.com",
                                                                 reservation_ttl=0.3))
    return app.test_client()


def test_third_party_event_shape_holds_seats_past_the_ttl(short_ttl, store):
    client = short_ttl
    for i in range(9):  # the tenth seat is held for the host
        assert conference(post(client, "/conference/join", {"room": "tp"}, CallId=f"c{i}", From=f"+25471100000{i}"))
        assert events(client, conferenceName="meeting-tp", event="join", participant_id=f"p{i}",
                      caller=f"+25471100000{i}") == "stored"
    time.sleep(0.4)  # every reservation has lapsed; the join events hold the seats
    assert not conference(post(client, "/conference/join", {"room": "tp"}, CallId="c10", From="+254711000010"))
    assert seat(store, "meeting-tp", "c3")["joinedAt"] is not None
    # A leave naming only the participant id finds the call the join was matched to.
    assert events(client, conferenceName="meeting-tp", event="leave", participant_id="p3") == "stored"
    assert seat(store, "meeting-tp", "c3")["leftAt"] is not None
    assert conference(post(client, "/conference/join", {"room": "tp"}, CallId="c11", From="+254711000011"))


def test_outbound_legs_are_matched_by_the_number_dialled(client, store):
    post(client, "/conference/join", {"room": "ob"}, CallId="out-1", From="+254700000001", To="+254722333444",
         Direction="outbound")
    events(client, conferenceName="meeting-ob", event="participant-join", caller="+254722333444")
    assert seat(store, "meeting-ob", "out-1")["joinedAt"] is not None


def test_call_completed_frees_the_calls_seat(client, store):
    for i in range(9):  # the tenth seat is held for the host
        post(client, "/conference/join", {"room": "cc"}, CallId=f"cc{i}")
        events(client, ConferenceName="meeting-cc", StatusCallbackEvent="join", CallId=f"cc{i}")
    assert not conference(post(client, "/conference/join", {"room": "cc"}, CallId="late"))
    envelope = {"kind": "call.completed", "event_id": "evt-1", "workspace_id": "ws", "occurred_at": time.time(),
                "data": {"call_id": "cc4", "status": "completed", "duration_seconds": 30, "hangup_cause": "normal"}}
    assert events(client, **envelope) == "stored"
    assert events(client, **envelope) == "duplicate"
    assert seat(store, "meeting-cc", "cc4")["leftAt"] is not None
    assert conference(post(client, "/conference/join", {"room": "cc"}, CallId="late"))


@pytest.mark.parametrize("seated_as, names", [
    ("HD_0123456789abcdef", {"pbx_call_id": "HD_0123456789abcdef"}),
    ("HD_0123456789abcdef", {"session_id": "HD_0123456789abcdef"}),
    ("0123456789abcdef", {"session_id": "HD_0123456789abcdef"}),  # the PBX's id, the SDK's HD_ form of it
    ("HD_0123456789abcdef", {"pbx_call_id": "0123456789abcdef"}),
])
def test_call_completed_naming_the_call_by_another_id_frees_its_seat(client, store, seated_as, names):
    """Voice callbacks carry the PBX's id; call.completed names the call by Sautikit's call_id with the
    PBX's id beside it (pbx_call_id, session_id): any of them that roomc seated is freed."""
    post(client, "/conference/join", {"room": "pbx"}, CallId=seated_as)
    events(client, ConferenceName="meeting-pbx", StatusCallbackEvent="join", CallId=seated_as)
    envelope = {"kind": "call.completed", "event_id": f"evt-pbx-{seated_as}-{sorted(names)}",
                "data": {"call_id": "5f0e1c52-0000-4000-8000-000000000001", "status": "completed", **names}}
    assert events(client, **envelope) == "stored"
    assert seat(store, "meeting-pbx", seated_as)["leftAt"] is not None


def test_call_failed_in_the_other_envelope_frees_a_reservation(client, store):
    post(client, "/conference/join", {"room": "cf"}, CallId="cf1")
    assert events(client, event_kind="call.failed", event_id="evt-2",
                  payload={"call_id": "cf1", "status": "failed", "failure_reason": "no-answer"}) == "stored"
    assert store.live_rooms() == []


def test_a_join_that_arrives_after_the_call_ended_does_not_hold_a_seat(client, store):
    post(client, "/conference/join", {"room": "late-join"}, CallId="lj")
    ended = time.time()
    events(client, kind="call.completed", event_id="evt-3", occurred_at=ended, data={"call_id": "lj"})
    events(client, ConferenceName="meeting-late-join", StatusCallbackEvent="join", CallId="lj", Timestamp=ended - 5)
    assert seat(store, "meeting-late-join", "lj")["leftAt"] is not None
    assert store.live_rooms() == []


# -- signatures on the events route ---------------------------------------------------------
def signed_app(rooms_table, store, mode):
    return create_app(rooms_table, store=store, settings=Settings(
        public_url="https://rooms.example.com", signing_secret=SECRET, events_signature=mode)).test_client()


def signed_post(client, path, query=None, **form):
    from urllib.parse import urlencode

    body = urlencode(form).encode()
    response = client.post(path, query_string=query or {}, data=body, headers={
        "X-Sautikit-Signature": sign(SECRET, body), "Content-Type": "application/x-www-form-urlencoded"})
    return response.get_json()["actions"]


@pytest.mark.parametrize("mode", ["required", "optional", "off"])
def test_events_signature_modes(rooms_table, store, mode):
    client = signed_app(rooms_table, store, mode)
    url = conference(signed_post(client, "/conference/join", {"room": "sig"}, CallId="s1"))["statusEventsCallbackUrl"]
    path, _, query = url.removeprefix("https://rooms.example.com").partition("?")
    body = {"ConferenceName": "meeting-sig", "StatusCallbackEvent": "join", "CallId": "s1"}
    unsigned_with_token = client.post(path + "?" + query, json=body).status_code
    unsigned_bare = client.post(path, json=body).status_code
    badly_signed = client.post(path + "?" + query, json=body, headers={"X-Sautikit-Signature": "t=1,v1=00"}).status_code
    expected = {"required": (403, 403, 403), "optional": (200, 403, 403), "off": (200, 200, 200)}[mode]
    assert (unsigned_with_token, unsigned_bare, badly_signed) == expected
    if mode == "optional":
        assert query.startswith(f"{calls.TOKEN_PARAM}=")
        # The token is the room's: it does not carry another room's events.
        other = {**body, "ConferenceName": "another"}
        assert client.post(path + "?" + query, json=other).status_code == 403


def test_events_signature_setting_is_read_and_announced(rooms_table, store, caplog):
    env = {"SAUTIKIT_VOICE_SECRET": "s"}
    assert Settings.from_env(rooms_table, env).events_signature == "optional"
    assert Settings.from_env(rooms_table, {**env, "ROOMC_EVENTS_SIGNATURE": "Required"}).events_signature == "required"
    with pytest.raises(ValueError, match="ROOMC_EVENTS_SIGNATURE"):
        Settings.from_env(rooms_table, {**env, "ROOMC_EVENTS_SIGNATURE": "sometimes"})
    policy_says = {**rooms_table, "server": {**rooms_table["server"], "eventsSignature": "off"}}
    assert Settings.from_env(policy_says, env).events_signature == "off"
    with caplog.at_level(logging.INFO, logger="roomc"):
        signed_app(rooms_table, store, "required")
    assert any("events signature: required" in r.getMessage() for r in caplog.records)


# -- the sweeper asks the calls API (the local Sautikit, over HTTP) -------------------------
@pytest.fixture
def calls_api():
    from werkzeug.serving import make_server

    from roomc.sautikit.client import CallsClient
    from roomc.sautikit.engine import Platform, VirtualClock
    from roomc.sautikit.local_server import create_local_app

    platform = Platform(VirtualClock())
    server = make_server("127.0.0.1", 0, create_local_app(platform, api_key="tsk_test"), threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    client = CallsClient(api_key="tsk_test", base_url=f"http://127.0.0.1:{server.server_port}", attempts=1, timeout=2)
    yield platform, client
    server.shutdown()


def test_sweeper_holds_live_calls_and_frees_ended_ones(calls_api, tmp_path):
    platform, client = calls_api
    live = platform.place_call(local="+254700000001", remote="+254722000001", url="http://127.0.0.1:9/none")
    gone = platform.place_call(local="+254700000001", remote="+254722000002", url="http://127.0.0.1:9/none")
    live.status, gone.status = "answered", "completed"
    with SQLiteStore(str(tmp_path / "sweep.db")) as store:
        now = time.time()
        for call in (live.id, gone.id, "not-a-call"):
            assert store.reserve("sw", call, "participant", counted=True, limit=3, ttl=5, muted=False, now=now).admitted
        sweeper = calls.Sweeper(store, client.get_call, ttl=60, every=5)
        assert sweeper.sweep_once(now=now + 1) == {"held": 1, "freed": 1, "unknown": 1}
        later = now + 30  # past the 5 s reservations: only the live call still holds its seat
        taken = {p["callId"] for p in store.room("sw")["participants"]
                 if store.reserve("sw", p["callId"], "participant", counted=True, limit=3, ttl=5, muted=False,
                                  now=later).again}
        assert taken == {live.id}


# -- redirects to your own server ----------------------------------------------------------
def test_redirects_to_own_routes_are_answered_inline_and_loops_end_in_a_redirect(client):
    """The redirect page says the PBX may refuse URLs that are not Sautikit's: roomc needs none on the way in."""
    lobby = post(client, "/lobby", CallId="loop")
    # A prompt, then (no digits) the lobby's redirect to itself: emitted, since digits keyed at the
    # first prompt belong to it; nothing is inlined after a getDigits.
    assert "getDigits" in lobby[0] and lobby[-1] == {"redirect": {"url": "https://rooms.example.com/lobby"}}
    wrong = post(client, "/lobby", CallId="loop", Digits="12")
    assert wrong[0] == {"say": {"text": "That meeting number is not valid."}}
    assert "getDigits" in wrong[1]  # the lobby again, inline


def test_explain_shows_the_inlined_answer(invoke):
    from ..conftest import ROOMS

    result = invoke("explain", str(ROOMS), "--route", "/lobby", "--form", "Digits=123456", "--secret", "HOST_PIN=1")
    assert result.exit_code == 0, result.output
    assert "redirect to /pin answered inline" in result.output and "getDigits" in result.output


def test_two_workers_sweepers_share_a_busy_room_and_ask_about_every_call(calls_api, tmp_path):
    """120 reservations about to lapse, batches of 50, two workers: every call is asked about once in
    a round (the old sweeper asked about the same first 50 on both workers, round after round)."""
    platform, client = calls_api
    placed = [platform.place_call(local="+254700000001", remote=f"+2547220{i:05d}", url="http://127.0.0.1:9/none")
              for i in range(120)]
    for call in placed:
        call.status = "answered"
    path = str(tmp_path / "busy.db")
    asked: list[list[str]] = [[], []]

    def counting(worker: int):
        def get_call(call_id: str) -> dict:
            asked[worker].append(call_id)
            return client.get_call(call_id)
        return get_call

    with SQLiteStore(path) as one, SQLiteStore(path) as two:
        now = time.time()
        for call in placed:
            assert one.reserve("busy", call.id, "participant", counted=True, limit=1000, ttl=5, muted=False,
                               now=now).admitted
        sweepers = [calls.Sweeper(store, counting(i), ttl=60, every=5, batch=50) for i, store in enumerate((one, two))]
        rounds = [sweepers[0].sweep_once(now=now + 1), sweepers[1].sweep_once(now=now + 1)]
        assert rounds[0]["held"] + rounds[1]["held"] == 120
        assert not set(asked[0]) & set(asked[1])
        assert sorted(asked[0] + asked[1]) == sorted(call.id for call in placed)
        # Every reservation is held: at the old expiry no seat is free for a newcomer.
        assert not one.reserve("busy", "newcomer", "participant", counted=True, limit=120, ttl=5, muted=False,
                               now=now + 30).admitted


def test_slow_answers_are_asked_side_by_side_not_one_after_another(tmp_path):
    """Ten calls whose answers each take the client's whole 1 s timeout: asked one after another they
    held the round (and the live calls behind them) for 10 s."""
    with SQLiteStore(str(tmp_path / "slow.db")) as store:
        now = time.time()
        names = [f"slow-{i}" for i in range(10)] + [f"live-{i}" for i in range(10)]
        for name in names:
            assert store.reserve("s", name, "participant", counted=True, limit=50, ttl=5, muted=False, now=now).admitted

        def get_call(call_id: str) -> dict:
            if call_id.startswith("slow-"):
                time.sleep(1.0)
                raise TimeoutError("timed out")
            return {"status": "answered"}

        started = time.monotonic()
        counts = calls.Sweeper(store, get_call, ttl=60, every=5).sweep_once(now=now + 1)
        assert counts == {"held": 10, "freed": 0, "unknown": 10}
        assert time.monotonic() - started < 6.0  # 8 at a time: about 2 s; one by one it was 10 s
