"""The keys route (in-room digits) through Flask's test client and a real SQLite store:
effects, hostile posts, signatures, retries, order, and a store that cannot write."""
import sqlite3
import time

import pytest
from hypothesis import HealthCheck, given, settings as hsettings, strategies as st

from roomc.runtime import Settings, create_app
from roomc.runtime.calls import events_token
from roomc.runtime.keys import effect_for
from roomc.runtime.signatures import sign

ADMIN = {"Authorization": "Bearer admin-token"}
ROOM = "townhall-99"
KEYS = "/townhall/keys"


def seat(client, call, room="99", **query):
    answer = client.post("/townhall/join", query_string={"room": room, **query}, data={"CallId": call})
    assert "conference" in answer.get_json()["actions"][-1], answer.get_json()
    return answer.get_json()["actions"][-1]["conference"]


def press(client, digits, call=None, room=ROOM, json=None, headers=None, **fields):
    body = json if json is not None else {**({"Digits": digits} if digits is not None else {}),
                                          **({"CallId": call} if call else {}), **fields}
    response = client.post(KEYS, query_string={"room": room} if room else {}, json=body, headers=headers or {})
    assert response.mimetype == "application/json", response.data[:200]
    return response


def flags(client, room=ROOM):
    view = client.get(f"/rooms/{room}", headers=ADMIN).get_json()
    return ([h["callId"] for h in view["handsRaised"]], [o["callId"] for o in view["operatorRequested"]])


def test_the_conference_sends_keys_to_the_keys_route_naming_its_room(client):
    conference = seat(client, "c1")
    assert conference["collectDigits"] is True and conference["numDigits"] == 1
    assert conference["digitsCallbackUrl"] == f"https://rooms.example.com{KEYS}?room={ROOM}"


def test_a_raised_hand_shows_in_the_room_until_lowered(client):
    seat(client, "c1")
    seat(client, "c2")
    assert press(client, "1", "c1").get_json() == {"ok": True, "outcome": "stored", "effect": "raiseHand"}
    assert press(client, "0", "c2").get_json()["effect"] == "callOperator"
    assert flags(client) == (["c1"], ["c2"])
    view = client.get(f"/rooms/{ROOM}", headers=ADMIN).get_json()
    assert view["handsRaised"][0]["role"] == "participant" and view["handsRaised"][0]["at"].endswith("Z")
    time.sleep(0.01)  # untimed presses are ordered by arrival
    assert press(client, "2", "c1").get_json()["effect"] == "lowerHand"
    assert flags(client) == ([], ["c2"])


def test_a_retry_is_stored_once(client, store):
    seat(client, "c1")
    body = {"Digits": "1", "CallId": "c1", "Timestamp": int(time.time())}
    assert press(client, None, json=body).get_json()["outcome"] == "stored"
    assert press(client, None, json=body).get_json()["outcome"] == "duplicate"
    # Untimed and without an id: the same bytes are a retry; another press (another body) is not.
    untimed = {"Digits": "1", "CallId": "c1"}
    assert press(client, None, json=untimed).get_json()["outcome"] == "stored"
    assert press(client, None, json=untimed).get_json()["outcome"] == "duplicate"
    rows = store._connection().execute("SELECT COUNT(*) FROM events WHERE kind = 'raiseHand'").fetchone()[0]
    assert rows == 2


def test_timed_presses_are_read_in_the_senders_order_whatever_the_delivery_order(client):
    seat(client, "c1")
    now = int(time.time())
    assert press(client, None, json={"Digits": "2", "CallId": "c1", "Timestamp": now - 5}).status_code == 200
    assert press(client, None, json={"Digits": "1", "CallId": "c1", "Timestamp": now - 10}).status_code == 200
    assert flags(client) == ([], [])  # lowered at -5, after the raise at -10, though delivered first


def test_leaving_lowers_the_hand(client):
    seat(client, "c1")
    press(client, "1", "c1")
    assert flags(client)[0] == ["c1"]
    client.post("/townhall/events", json={"ConferenceName": ROOM, "StatusCallbackEvent": "join", "CallId": "c1"})
    client.post("/townhall/events", json={"ConferenceName": ROOM, "StatusCallbackEvent": "leave", "CallId": "c1"})
    assert flags(client) == ([], [])


@pytest.mark.parametrize("digits", ["", " ", "7", "12", "1x", "abc", "1" * 33, "１", "1\n2", "<script>", "{{7*7}}",
                                    "%00", "1\x00"])
def test_keys_that_map_to_nothing_are_acknowledged_and_change_nothing(client, store, digits):
    seat(client, "c1")
    response = press(client, digits, "c1")
    assert response.status_code == 200 and response.get_json()["outcome"] == "ignored"
    assert store.count_events() == 0


@pytest.mark.parametrize("body", [[1, 2], "1", {"Digits": {"a": 1}, "CallId": "c1"}, {"Digits": ["1"], "CallId": "c1"},
                                  {"Digits": 1e400, "CallId": "c1"}, {"Digits": "1", "CallId": {"x": 1}},
                                  {"Digits": "1", "CallId": "c1", "Timestamp": "nan"}])
def test_hostile_bodies_get_json_and_never_a_500(client, store, body):
    seat(client, "c1")
    response = press(client, None, json=body)
    assert response.status_code == 200, response.data
    if response.get_json()["outcome"] == "stored":  # the nan timestamp: stored with its arrival time
        assert flags(client)[0] == ["c1"]


def test_a_caller_not_in_the_room_unknown_rooms_and_mismatched_rooms_are_ignored(client, store):
    seat(client, "c1")
    seat(client, "other", room="55")
    assert press(client, "1", "stranger").get_json()["reason"] == "caller not in the room"
    assert press(client, "1", "other").get_json()["reason"] == "caller not in the room"  # seated elsewhere
    assert press(client, "1", "c1", room=None).get_json()["reason"] == "no readable room"
    assert press(client, "1", "c1", room="bad name").get_json()["reason"] == "no readable room"
    assert press(client, "1", "c1", ConferenceName="townhall-55").get_json()["reason"] == \
        "the body names another room than the URL"
    assert press(client, "1", None).get_json()["reason"] == "caller not in the room"
    assert store.count_events() == 0
    # The body alone may name the room (another reading of the undocumented payload).
    assert press(client, "1", "c1", room=None, ConferenceName=ROOM).get_json()["outcome"] == "stored"


def test_a_caller_named_only_by_number_is_found_by_the_seat(client):
    client.post("/townhall/join", query_string={"room": "99"}, data={"CallId": "c9", "From": "+254700000009"})
    assert press(client, "1", None, caller="+254700000009").get_json()["outcome"] == "stored"
    assert flags(client)[0] == ["c9"]


def test_a_number_shared_by_two_callers_in_the_room_names_neither(client, store):
    """Caller ids are easily spoofed, and one office line can dial in twice: a press that names its caller
    only by number, when two calls in the room have that number, is nobody's (before, the earliest
    joined got the stranger's hand)."""
    client.post("/townhall/join", query_string={"room": "99"}, data={"CallId": "victim", "From": "+254700000001"})
    client.post("/townhall/join", query_string={"room": "99"}, data={"CallId": "spoofer", "From": "+254700000001"})
    response = press(client, "0", None, caller="+254700000001")
    assert response.get_json() == {"ok": True, "outcome": "ignored", "reason": "caller not in the room"}
    assert store.count_events() == 0 and flags(client) == ([], [])
    # Once the spoofer has left, the number names one call again.
    client.post("/townhall/events", json={"ConferenceName": ROOM, "StatusCallbackEvent": "leave", "CallId": "spoofer"})
    assert press(client, "1", None, caller="+254700000001").get_json()["outcome"] == "stored"
    assert flags(client) == (["victim"], [])


def test_a_trailing_finish_key_is_read_as_the_key_before_it():
    keys = {"1": "raiseHand", "0": "callOperator"}
    assert effect_for(keys, "1#") == "raiseHand" and effect_for(keys, "0*") == "callOperator"
    assert effect_for(keys, "#") is None and effect_for(keys, "11#") is None and effect_for(keys, "2#") is None


def test_get_and_form_posts_are_read_too(client):
    seat(client, "c1")
    seat(client, "c2")
    assert client.get(KEYS, query_string={"room": ROOM, "Digits": "1", "CallId": "c1"}).get_json()["outcome"] == \
        "stored"
    assert client.post(KEYS, query_string={"room": ROOM}, data={"Digits": "0", "CallSid": "c2"}).get_json()[
        "outcome"] == "stored"
    assert flags(client) == (["c1"], ["c2"])


def test_a_huge_body_is_refused_with_json(client):
    response = client.post(KEYS, query_string={"room": ROOM}, data=b"Digits=1&x=" + b"a" * 70_000,
                           content_type="application/x-www-form-urlencoded")
    assert response.status_code == 413 and response.get_json()["error"]["code"] == "request.too_large"


def test_a_store_that_cannot_write_gets_503_so_the_platform_retries(client, store):
    seat(client, "c1")
    shell = sqlite3.connect(store.path, isolation_level=None)
    shell.execute("BEGIN IMMEDIATE")  # an operator's shell holding the write lock
    try:
        response = press(client, "1", "c1")
        assert response.status_code == 503 and response.get_json()["error"]["code"] == "store.unavailable"
    finally:
        shell.execute("ROLLBACK")
        shell.close()
    time.sleep(0.2)  # past the store's probe spacing (PROBE_EVERY)
    assert press(client, "1", "c1").get_json()["outcome"] == "stored"  # the retry is stored, once


class TestSignatures:
    SECRET = b"keys-secret"

    @pytest.fixture
    def signed(self, rooms_table, store):
        settings = Settings(public_url="https://r.example.com", signing_secret=self.SECRET, admin_token="admin-token")
        return create_app(rooms_table, store=store, settings=settings).test_client()

    def seat(self, client, call):
        body = f"CallId={call}".encode()
        response = client.post("/townhall/join?room=99", data=body, content_type="application/x-www-form-urlencoded",
                               headers={"X-Sautikit-Signature": sign(self.SECRET, body)})
        return response.get_json()["actions"][-1]["conference"]

    def test_the_emitted_url_carries_the_rooms_token(self, signed):
        url = self.seat(signed, "c1")["digitsCallbackUrl"]
        assert url == f"https://r.example.com{KEYS}?room={ROOM}&k={events_token(self.SECRET, ROOM)}"

    def test_unsigned_posts_need_their_rooms_token_and_speak_for_that_room_only(self, signed, store):
        self.seat(signed, "c1")
        body = b'{"Digits": "1", "CallId": "c1"}'
        plain = {"content_type": "application/json"}
        assert signed.post(f"{KEYS}?room={ROOM}", data=body, **plain).status_code == 403
        # Without a token, a body that names another room than the URL is refused too, not merely ignored.
        assert signed.post(f"{KEYS}?room={ROOM}", data=b'{"Digits": "1", "CallId": "c1", "ConferenceName": "x"}',
                           **plain).status_code == 403
        wrong = events_token(self.SECRET, "townhall-55")
        assert signed.post(f"{KEYS}?room={ROOM}&k={wrong}", data=body, **plain).status_code == 403
        # A token for room 55 does not make a body that names room 99 believable either.
        assert signed.post(f"{KEYS}?room=townhall-55&k={wrong}", data=b'{"Digits": "1", "CallId": "c1", '
                           b'"ConferenceName": "townhall-99"}', **plain).get_json()["outcome"] == "ignored"
        good = events_token(self.SECRET, ROOM)
        assert signed.post(f"{KEYS}?room={ROOM}&k={good}", data=body, **plain).get_json()["outcome"] == "stored"
        assert store.count_events() == 1

    def test_signed_posts_are_bound_to_their_request(self, signed):
        self.seat(signed, "c1")
        body = b'{"Digits": "1", "CallId": "c1"}'
        headers = {"X-Sautikit-Signature": sign(self.SECRET, body)}
        ok = signed.post(f"{KEYS}?room={ROOM}", data=body, content_type="application/json", headers=headers)
        assert ok.get_json()["outcome"] == "stored"
        again = signed.post(f"{KEYS}?room={ROOM}", data=body, content_type="application/json", headers=headers)
        assert again.get_json()["outcome"] == "duplicate"  # an exact retry
        elsewhere = signed.post(f"{KEYS}?room=townhall-55", data=body, content_type="application/json",
                                headers=headers)
        assert elsewhere.status_code == 403  # the same signature on another query is a replay
        forged = signed.post(f"{KEYS}?room={ROOM}", data=body.replace(b"1", b"0"), content_type="application/json",
                             headers=headers)
        assert forged.status_code == 403


@hsettings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(order=st.permutations(range(6)))
def test_hands_converge_whatever_the_delivery_order(rooms_table, tmp_path_factory, order):
    from roomc.runtime.store import SQLiteStore

    presses = [("c1", "1", 10), ("c1", "2", 20), ("c2", "1", 15), ("c2", "0", 16), ("c1", "1", 30),
               ("c2", "2", 40)]
    with SQLiteStore(str(tmp_path_factory.mktemp("keys") / "roomc.db")) as store:
        client = create_app(rooms_table, store=store, settings=Settings(
            public_url="https://rooms.example.com", admin_token="admin-token")).test_client()
        seat(client, "c1")
        seat(client, "c2")
        base = int(time.time()) - 100
        for index in order:
            call, digits, at = presses[index]
            assert press(client, None, json={"Digits": digits, "CallId": call, "Timestamp": base + at}).status_code \
                == 200
        assert flags(client) == (["c1"], ["c2"])


def test_a_failure_inside_the_route_is_json_and_asks_for_a_retry(client, monkeypatch):
    from roomc.runtime import keys

    seat(client, "c1")

    def broken(*_args, **_kwargs):
        raise RuntimeError("a bug")
    monkeypatch.setattr(keys.normalise, "call_fields", broken)
    response = press(client, "1", "c1")
    assert response.status_code == 503 and response.get_json()["error"]["code"] == "server.error"


def test_a_caller_mashing_keys_does_not_slow_the_room_view(client, store):
    """100,000 stored presses by one caller (a stuck key, a hostile caller): GET /rooms/<name> reads the
    latest press per call and effect from the index, not every press (it took seconds reading each row)."""
    seat(client, "c1")
    client.post("/townhall/events", json={"ConferenceName": ROOM, "StatusCallbackEvent": "join", "CallId": "c1"})
    base = time.time() - 1000
    with store._write() as db:
        db.executemany("INSERT INTO events (dedupe, room, kind, call_id, at, received_at, readable, body) "
                       "VALUES (?, ?, ?, 'c1', ?, ?, 1, x'7b7d')",
                       ((f"mash{i}", ROOM, "lowerHand" if i % 2 else "raiseHand", base + i * 0.005, base + i * 0.005)
                        for i in range(100_000)))
    client.get(f"/rooms/{ROOM}", headers=ADMIN)  # warm
    started = time.perf_counter()
    view = client.get(f"/rooms/{ROOM}", headers=ADMIN).get_json()
    elapsed = time.perf_counter() - started
    assert [h["callId"] for h in view["handsRaised"]] == []  # the last press (99,999) lowered it
    assert elapsed < 1.5, f"GET /rooms took {elapsed:.2f} s"  # generous: a loaded machine; before, 3 s or more
