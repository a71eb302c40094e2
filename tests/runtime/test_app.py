"""The app through Flask's test client: roles, capacity, events, admin routes and failure handling."""
import json
import sqlite3
import time
from datetime import datetime, timezone

import pytest

from roomc.runtime import Settings, create_app
from roomc.runtime.signatures import sign


def join(client, query, **form):
    response = client.post("/conference/join", query_string=query, data=form)
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    return response.get_json()["actions"]


def event(client, **fields):
    response = client.post("/conference/events", json=fields)
    assert response.status_code == 200
    return response.get_json()["outcome"]


def test_host_and_participant_answers(client):
    host = join(client, {"room": "99", "host": "1"}, CallId="c1")
    assert host[0] == {"say": {"text": "You are joining meeting-99 as the host."}}
    conference = host[1]["conference"]
    assert conference["startOnEnter"] is True and conference["endOnExit"] is True
    assert conference["statusEventsCallbackUrl"] == "https://rooms.example.com/conference/events"
    guest = join(client, {"room": "99"}, CallId="c2")
    assert guest[1]["conference"]["startOnEnter"] is False


def test_room_of_ten_admits_nine_and_keeps_the_tenth_seat_for_the_host(client):
    # Issue 13: ten waiting participants used to fill the room and lock the host out for good.
    answers = [join(client, {"room": "busy"}, CallId=f"call-{i}") for i in range(10)]
    assert all("conference" in a[-1] for a in answers[:9])
    assert answers[9] == [{"say": {"text": "Sorry, this meeting is full. Please try again later."}}, {"hangup": {}}]
    host = join(client, {"room": "busy", "host": "1"}, CallId="host")
    assert host[-1]["conference"]["startOnEnter"] is True and host[-1]["conference"]["maxParticipants"] == 10
    assert join(client, {"room": "busy", "host": "1"}, CallId="host")[-1]["conference"]  # a retry keeps it
    assert "hangup" in join(client, {"room": "busy", "host": "1"}, CallId="second-host")[-1]  # no seat left


def test_retried_webhook_keeps_its_one_seat(client):
    for _ in range(3):
        assert "conference" in join(client, {"room": "retry"}, CallId="same-call")[-1]
    others = [join(client, {"room": "retry"}, CallId=f"other-{i}") for i in range(10)]
    assert sum("conference" in a[-1] for a in others) == 8  # and one seat is the host's


def test_leave_frees_a_seat(client):
    for i in range(9):
        join(client, {"room": "churn"}, CallId=f"c{i}")
        assert event(client, ConferenceName="meeting-churn", StatusCallbackEvent="join", CallId=f"c{i}") == "stored"
    assert "hangup" in join(client, {"room": "churn"}, CallId="late")[-1]
    assert event(client, ConferenceName="meeting-churn", StatusCallbackEvent="leave", CallId="c3") == "stored"
    assert "conference" in join(client, {"room": "churn"}, CallId="late")[-1]


def test_supervisor_does_not_take_a_seat(client):
    for i in range(4):  # the fifth seat is held for the trainer
        assert "conference" in join_path(client, "/coaching/join", {"room": "s1"}, CallId=f"t{i}")[-1]
    supervisor = join_path(client, "/coaching/join", {"room": "s1"}, CallId="sup", From="+254700000009")
    assert supervisor[-1]["conference"]["muted"] is True
    assert supervisor[-1]["conference"]["maxParticipants"] == 6
    second = join_path(client, "/coaching/join", {"room": "s1"}, CallId="sup2", From="+254700000009")
    assert second == [{"say": {"text": "This session is full."}}, {"hangup": {}}]


def join_path(client, path, query, **form):
    return client.post(path, query_string=query, data=form).get_json()["actions"]


def test_json_and_form_voice_callbacks_read_the_same(client):
    form = client.post("/coaching/join?room=x", data={"CallSid": "a", "From": "+254700000009"}).get_json()
    body = client.post("/coaching/join?room=y", json={"callSid": "b", "from": "+254700000009"}).get_json()
    assert form["actions"][-1]["conference"]["muted"] is body["actions"][-1]["conference"]["muted"] is True


@pytest.mark.parametrize("room", ["", "bad name", "{{7*7}}", "x" * 65, "a/b", "ü"])
def test_invalid_room_names_get_a_spoken_refusal(client, room):
    actions = join(client, {"room": room} if room else {"room": ""}, CallId="c")
    assert actions == [{"say": {"text": "Sorry, that meeting number is not valid."}}, {"hangup": {}}]


def test_hostile_values_are_spoken_as_text_not_evaluated(client):
    actions = join(client, {"room": "ok-room"}, CallId="c", From="{{ secret.HOST_PIN }}")
    assert "4321" not in json.dumps(actions)


def test_flow_branches_on_digits(client):
    prompt = client.post("/lobby", data={"CallId": "c"}).get_json()["actions"]
    assert "getDigits" in prompt[0]
    assert prompt[-1] == {"redirect": {"url": "https://rooms.example.com/lobby"}}
    onward = client.post("/lobby", data={"CallId": "c", "Digits": "123456"}).get_json()["actions"]
    # The redirect to /pin is answered inline: the PIN prompt, with no round trip for the PBX to refuse.
    assert "getDigits" in onward[0] and "PIN" in onward[0]["getDigits"]["nested"][0]["say"]["text"]
    assert onward[-1]["redirect"]["url"] == "https://rooms.example.com/pin?meeting=123456"  # no PIN: asked again
    host = client.post("/pin?meeting=123456", data={"CallId": "c", "Digits": "4321"}).get_json()["actions"]
    assert host[-1]["conference"]["name"] == "bridge-123456" and host[-1]["conference"]["startOnEnter"] is True


def test_full_bridge_moves_callers_to_the_overflow_room(client):
    for i in range(25):
        client.post("/pin?meeting=555555", data={"CallId": f"p{i}", "Digits": "5555"})  # the participant PIN
    actions = client.post("/pin?meeting=555555", data={"CallId": "late", "Digits": "5555"}).get_json()["actions"]
    assert actions[0]["say"]["text"].startswith("This meeting is full")
    assert actions[-1]["conference"]["name"] == "overflow-555555"
    assert actions[-1]["conference"]["muted"] is True


def test_events_in_any_spelling_are_stored_once(client, app):
    t0 = int(time.time()) // 100 * 100 - 3600  # an hour ago: senders' clocks are believed within a plausible window
    iso = datetime.fromtimestamp(t0 + 5, timezone.utc).isoformat().replace("+00:00", "Z")
    assert event(client, ConferenceName="m", StatusCallbackEvent="start", Timestamp=str(t0)) == "stored"
    assert event(client, conferenceName="m", event="participant-join", callSid="c1", timestamp=t0 + 1) == "stored"
    assert event(client, conferenceName="m", event="participant-join", callSid="c1", timestamp=t0 + 1) == "duplicate"
    form = client.post("/conference/events", data={"room": "m", "status": "LEAVE", "CallId": "c1", "time": iso})
    assert form.get_json()["outcome"] == "stored"
    assert event(client, conference_name="m", Event="conference-end", timestamp=t0 + 100,
                 RecordingUrl="https://rec.example.com/m.mp3") == "stored"
    room = app.extensions["roomc"]["store"].room("m")
    assert room["recordingUrl"] == "https://rec.example.com/m.mp3"
    assert room["started"] == _iso(t0) and room["ended"] == _iso(t0 + 100)
    assert room["participants"][0]["leftAt"] == _iso(t0 + 5)


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def test_unreadable_events_are_kept_not_dropped(client, app):
    response = client.post("/conference/events", data=b"\x00garbage", content_type="application/octet-stream")
    assert response.status_code == 200 and response.get_json()["outcome"] == "unreadable"
    response = client.post("/conference/events", json={"weird": "shape"})
    assert response.get_json()["outcome"] == "unreadable"
    assert app.extensions["roomc"]["store"].count_events() == 2


def test_admin_routes_need_the_token(client):
    join(client, {"room": "adm"}, CallId="c1")
    assert client.get("/rooms").status_code == 401
    assert client.get("/rooms", headers={"Authorization": "Bearer wrong"}).status_code == 401
    listing = client.get("/rooms", headers={"Authorization": "Bearer admin-token"}).get_json()
    assert listing["rooms"] == [{"name": "meeting-adm", "participants": 0, "reserved": 1, "seatsTaken": 1, "started": False}]
    room = client.get("/rooms/meeting-adm", headers={"Authorization": "Bearer admin-token"}).get_json()
    assert set(room) == {"name", "started", "ended", "participants", "recordingUrl", "handsRaised", "operatorRequested"}
    assert set(room["participants"][0]) == {"callId", "role", "muted", "joinedAt", "leftAt", "reservedAt"}
    assert client.get("/rooms/none", headers={"Authorization": "Bearer admin-token"}).status_code == 404


def test_admin_routes_are_off_without_a_token(rooms_table, store):
    client = create_app(rooms_table, store=store, settings=Settings()).test_client()
    assert client.get("/rooms", headers={"Authorization": "Bearer "}).status_code == 404


def test_healthz_and_json_errors(client):
    assert client.get("/healthz").get_json()["ok"] is True
    missing = client.post("/nope")
    assert missing.status_code == 404 and missing.get_json()["error"]["code"] == "route.not_found"
    assert client.put("/conference/join").status_code == 405


def test_store_failure_still_answers_the_caller(app, client, store):
    with sqlite3.connect(store.path) as db:
        db.execute("DROP TABLE seats")
    response = client.post("/conference/join?room=x", data={"CallId": "c"})
    assert response.status_code == 200
    assert response.get_json() == {"actions": [
        {"say": {"text": "Sorry, we could not connect your call. Please try again later."}}, {"hangup": {}}]}


def test_oversized_and_malformed_bodies_still_answer(client):
    big = client.post("/conference/join?room=x", data={"CallId": "c", "pad": "x" * 300_000})
    assert big.status_code == 200 and "actions" in big.get_json()
    broken = client.post("/conference/join?room=x", data=b"{not json", content_type="application/json")
    # No readable call id: the fallback, and no seat (tests/runtime/test_requests.py).
    assert broken.status_code == 200 and broken.get_json()["actions"][-1] == {"hangup": {}}


class TestSignatures:
    SECRET = b"whsec_test"

    @pytest.fixture
    def signed(self, rooms_table, store):
        settings = Settings(public_url="https://r.example.com", signing_secret=self.SECRET)
        return create_app(rooms_table, store=store, settings=settings).test_client()

    def test_unsigned_requests_are_refused_and_change_nothing(self, signed, store):
        response = signed.post("/conference/join?room=sig", data={"CallId": "c"})
        assert response.status_code == 403
        assert store.room("sig") is None

    def test_valid_timestamped_signature(self, signed):
        body = b"CallId=c&From=%2B254700000001"
        response = signed.post("/conference/join?room=sig", data=body,
                               content_type="application/x-www-form-urlencoded",
                               headers={"X-Sautikit-Signature": sign(self.SECRET, body)})
        assert response.status_code == 200 and "conference" in response.get_json()["actions"][-1]

    def test_stale_and_tampered_signatures(self, signed):
        body = b"CallId=c"
        stale = sign(self.SECRET, body, timestamp=int(time.time()) - 301)
        assert signed.post("/conference/join?room=s", data=body, headers={"X-Sautikit-Signature": stale},
                           content_type="application/x-www-form-urlencoded").status_code == 403
        good = sign(self.SECRET, body)
        assert signed.post("/conference/join?room=s", data=b"CallId=d", headers={"X-Sautikit-Signature": good},
                           content_type="application/x-www-form-urlencoded").status_code == 403

    def test_events_are_verified_too(self, signed, store):
        body = json.dumps({"ConferenceName": "m", "StatusCallbackEvent": "start"}).encode()
        assert signed.post("/conference/events", data=body, content_type="application/json").status_code == 403
        assert store.count_events() == 0
        ok = signed.post("/conference/events", data=body, content_type="application/json",
                         headers={"x-sautikit-signature": sign(self.SECRET, body)})
        assert ok.status_code == 200 and store.count_events() == 1


def test_oversized_event_is_refused_with_413(client):
    response = client.post("/conference/events", data=b"x" * 300_000, content_type="application/json")
    assert response.status_code == 413 and response.get_json()["error"]["code"] == "request.too_large"


def test_get_requests_read_the_call_from_the_query_string(client):
    for _ in range(2):  # the same call twice: one seat, not two
        response = client.get("/conference/join?room=viaget&CallId=g-1&From=%2B254700000001")
        assert "conference" in response.get_json()["actions"][-1]
    others = [client.get(f"/conference/join?room=viaget&CallId=g-{i}").get_json()["actions"] for i in range(2, 12)]
    assert sum("conference" in a[-1] for a in others) == 8  # and one seat is the host's
