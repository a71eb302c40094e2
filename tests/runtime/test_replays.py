"""Signed requests replayed as an attacker would (issue 9): a captured signature opens no other
door, a stranger's body costs a hash before anything parses it, and event headers are bound too."""
import json
import time

import pytest

from roomc.runtime import Settings, create_app, normalise
from roomc.runtime import calls
from roomc.runtime.signatures import sign

from ..conftest import table_for

SECRET = b"whsec_test"


def signed_client(rooms_table, store, **settings):
    settings.setdefault("public_url", "https://r.example.com")
    config = Settings(signing_secret=SECRET, **settings)
    return create_app(rooms_table, store=store, settings=config).test_client()


def post(client, path, body, headers=None, content_type="application/x-www-form-urlencoded"):
    return client.post(path, data=body, content_type=content_type,
                       headers={"X-Sautikit-Signature": sign(SECRET, body), **(headers or {})})


def test_a_strangers_body_is_not_parsed_before_its_signature_is_checked(rooms_table, store, monkeypatch):
    client = signed_client(rooms_table, store)

    def parse_body(*_args, **_kwargs):
        raise AssertionError("parsed before the signature was checked")

    monkeypatch.setattr(normalise, "parse_body", parse_body)
    monkeypatch.setattr(normalise, "parse_query", parse_body)
    for path in ("/conference/join?room=x", "/conference/events"):
        response = client.post(path, data=b"CallId=" + b"%41" * 20_000,
                               content_type="application/x-www-form-urlencoded",
                               headers={"X-Sautikit-Signature": f"t={int(time.time())},v1=" + "0" * 64})
        assert response.status_code == 403 and response.is_json


def test_replaying_a_signed_event_with_other_event_headers_is_refused(rooms_table, store):
    client = signed_client(rooms_table, store, events_signature="required")
    body = json.dumps({"ConferenceName": "m", "StatusCallbackEvent": "join", "CallId": "c1"}).encode()
    headers = {"X-Sautikit-Signature": sign(SECRET, body)}
    first = client.post("/conference/events", data=body, content_type="application/json", headers=headers)
    assert first.get_json()["outcome"] == "stored"
    again = client.post("/conference/events", data=body, content_type="application/json", headers=headers)
    assert again.get_json()["outcome"] == "duplicate"  # an exact retry
    for extra in ({"X-Sautikit-Event": "call.completed"}, {"X-Sautikit-Event-Id": "evt-new"},
                  {"X-Sautikit-Idempotency-Key": "k2"}):
        replay = client.post("/conference/events", data=body, content_type="application/json",
                             headers={**headers, **extra})
        assert replay.status_code == 403, extra
    assert store.count_events() == 1
    assert store.room("m")["participants"][0]["leftAt"] is None


LOOP = """
roomc: 1
server: {publicUrl: "https://r.example.com/roomc", signatureSecretEnv: S}
rooms:
  r: {name: "r", maxParticipants: 2, roles: {member: {say: "Joining."}}}
flows:
  wait: {actions: [{getDigits: {numDigits: 1, timeout: 5}}, {redirect: /loop}]}
  other: {actions: [{join: r}]}
routes:
  /loop: {flow: wait}
  /other: {flow: other}
  /events: events
"""


@pytest.fixture
def loop_client(tmp_path, store):
    table = table_for(tmp_path, LOOP)
    return signed_client(table, store, public_url="https://r.example.com/roomc")


def test_an_empty_body_get_cannot_open_another_calls_redirects(loop_client):
    victim = b"CallId=victim"
    assert post(loop_client, "/other", victim).status_code == 200  # the victim's genuine request
    # A signed empty body (any GET redirect's) naming the victim in its query string is answered
    # with a redirect to /loop; it must not let the victim's body be replayed there.
    answer = loop_client.get("/loop?CallSid=victim", headers={"X-Sautikit-Signature": sign(SECRET, b"")}).get_json()
    assert answer["actions"][-1]["redirect"]["url"].endswith("/loop")
    assert post(loop_client, "/loop", victim).status_code == 403


def test_redirect_grants_hold_behind_a_proxy_that_strips_the_public_path(loop_client):
    body = b"CallId=c9"
    answer = post(loop_client, "/loop?x=1", body).get_json()["actions"]
    assert answer[-1]["redirect"]["url"] == "https://r.example.com/roomc/loop"
    # The platform re-posts the same body (so the same signature) to the redirect, which a proxy
    # in front forwards without the /roomc prefix.
    assert post(loop_client, "/loop", body).status_code == 200
    assert post(loop_client, "/other", body).status_code == 403


def test_events_tokens_change_daily_and_speak_for_their_room_only(rooms_table, store):
    client = signed_client(rooms_table, store, events_signature="optional")
    day = 86400
    now = time.time()
    assert calls.token_matches(SECRET, "a", calls.events_token(SECRET, "a", int(now // day) - 1), now=now)
    assert not calls.token_matches(SECRET, "a", calls.events_token(SECRET, "a", int(now // day) - 2), now=now)
    assert not calls.token_matches(SECRET, "b", calls.events_token(SECRET, "a"), now=now)
    for room, call in (("room-a", "ca"), ("room-b", "cb")):
        store.reserve(room, call, "participant", counted=True, limit=5, ttl=60, muted=False)
        token = calls.events_token(SECRET, room)
        assert client.post(f"/conference/events?k={token}", json={"ConferenceName": room, "StatusCallbackEvent": "join",
                                                                 "CallId": call}).get_json()["outcome"] == "stored"
    # An unsigned call-completed believed for room-a's token cannot free cb's seat in room-b.
    token_a = calls.events_token(SECRET, "room-a")
    forged = {"ConferenceName": "room-a", "kind": "call.completed", "event_id": "e1", "data": {"call_id": "cb"}}
    client.post(f"/conference/events?k={token_a}", json=forged)
    assert store.room("room-b")["participants"][0]["leftAt"] is None


@pytest.mark.parametrize("call_id", ["x" * 300, "a\x1b[31mred", "a\r\nb", "a\u2028b", "a\x85b", "a\u202eb", "a\x9b2J"])
def test_unusable_call_ids_take_no_seat(client, store, call_id):
    answer = client.post("/conference/join?room=ids", data={"CallId": call_id}).get_json()["actions"]
    assert answer[-1] == {"hangup": {}} and store.room("ids") is None
    answer = client.post("/conference/join?room=ids", json={"CallId": {"a": 1}}).get_json()["actions"]
    assert answer[-1] == {"hangup": {}} and store.room("ids") is None


def test_unreadable_bodies_differing_only_in_invalid_bytes_are_two_events(client, store):
    for body in (b"\xff\xfe garbage", b"\xfe\xff garbage"):
        response = client.post("/conference/events", data=body, content_type="application/octet-stream")
        assert response.get_json()["outcome"] == "unreadable"
    assert store.count_events() == 2
