"""Per-call flow state under the platform's readings, as an attacker found it failing (issue 10):
a fallback seat given back when a later answer seats the call elsewhere, a PIN delivered twice,
a leftover step that must not capture in-room keys, participant numbers reused by a new session."""
import pytest

from roomc.runtime import Settings, create_app
from roomc.runtime.app import _public_url

from ..conftest import table_for

MENU = """
roomc: 1
server: {publicUrl: "https://r.example.com"}
rooms:
  general: {name: general, maxParticipants: 2, roles: {member: {say: "General."}}}
  sales: {name: sales, maxParticipants: 5, roles: {member: {say: "Sales."}}}
flows:
  menu:
    actions:
      - getDigits: {numDigits: 1, timeout: 5, nested: [{say: "Press 1 for sales."}]}
      - join: general
    onDigits:
      - digits: "1"
        actions: [{join: sales}]
routes:
  /menu: {flow: menu}
  /events: events
"""


@pytest.fixture
def menu(tmp_path, store):
    app = create_app(table_for(tmp_path, MENU), store=store, settings=Settings(public_url="https://r.example.com"))
    return app.test_client()


def test_a_fallback_seat_is_given_back_when_the_caller_is_seated_elsewhere(menu, store):
    for call in ("a", "b"):
        first = menu.post("/menu", data={"CallId": call}).get_json()["actions"]
        assert first[-1]["conference"]["name"] == "general"  # reserved by the fallback join
        second = menu.post("/menu", data={"CallId": call, "Digits": "1"}).get_json()["actions"]
        assert second[-1]["conference"]["name"] == "sales"
    # Both callers are in sales: general's two seats are free at once, not after the reservation TTL.
    third = menu.post("/menu", data={"CallId": "c"}).get_json()["actions"]
    assert third[-1]["conference"]["name"] == "general"


def test_the_same_digits_delivered_twice_get_the_same_answer(menu, store):
    menu.post("/menu", data={"CallId": "a"})
    once = menu.post("/menu", data={"CallId": "a", "Digits": "1"}).get_json()
    twice = menu.post("/menu", data={"CallId": "a", "Digits": "1"}).get_json()
    assert once == twice
    assert [p["callId"] for p in store.room("sales")["participants"]] == ["a"]


def test_a_step_left_waiting_is_dropped_when_the_caller_joins_a_room(menu, store):
    menu.post("/menu", data={"CallId": "a"})  # the prompt times out: the platform plays the fallback join
    menu.post("/events", json={"ConferenceName": "general", "StatusCallbackEvent": "join", "CallId": "a"})
    from roomc.runtime import calls
    assert calls.pending_step(store, "a") is None


def test_a_reused_participant_number_is_not_taken_for_the_last_session_s_caller(rooms_table, store, settings):
    client = create_app(rooms_table, store=store, settings=settings).test_client()
    for call, caller in (("c1", "+254700000001"), ("c2", "+254700000002")):
        client.post("/conference/join?room=m1", data={"CallId": call, "From": caller})
    events = "/conference/events"
    # Session one: participant 1 is c1; it leaves. Session two numbers its first participant 1 again.
    client.post(events, json={"conferenceName": "meeting-m1", "event": "join", "participant_id": "1",
                              "caller": "+254700000001"})
    client.post(events, json={"conferenceName": "meeting-m1", "event": "leave", "participant_id": "1",
                              "caller": "+254700000001"})
    client.post(events, json={"conferenceName": "meeting-m1", "event": "join", "participant_id": "1",
                              "caller": "+254700000002"})
    people = {p["callId"]: p for p in store.room("meeting-m1")["participants"]}
    assert people["c2"]["joinedAt"] is not None and people["c1"]["leftAt"] is not None


@pytest.mark.parametrize("value", ["yourapp.example.com", "/", "ftp://x", "https://", "https://h/?q=1"])
def test_a_public_url_that_is_not_absolute_http_is_refused(value):
    with pytest.raises(ValueError, match="absolute http"):
        _public_url(value)
    assert _public_url("https://rooms.example.com/roomc") == "https://rooms.example.com/roomc"


def test_a_pin_delivered_twice_to_the_number_s_url_is_not_read_as_a_meeting_number(client, store):
    # The SDK's reading: every Digits post goes to the number's URL (/lobby), whichever step asked.
    client.post("/lobby", data={"CallId": "h1"})
    client.post("/lobby", data={"CallId": "h1", "Digits": "123456"})  # the meeting number; /pin asks next
    once = client.post("/lobby", data={"CallId": "h1", "Digits": "4321"}).get_json()["actions"]
    assert once[-1]["conference"]["name"] == "bridge-123456"
    twice = client.post("/lobby", data={"CallId": "h1", "Digits": "4321"}).get_json()["actions"]
    assert twice == once
    assert [(p["callId"], p["role"]) for p in store.room("bridge-123456")["participants"]] == [("h1", "host")]
