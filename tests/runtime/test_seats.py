"""Seat pools and held seats through the app (issue 13): a host is never sent to an overflow room,
pools are counted apart with their own whenFull, overflow loops end, and tables compiled before
pools existed are served as before. A real SQLite store, Flask's test client."""
import copy

import pytest

from roomc.runtime import Settings, create_app
from roomc.runtime.store import SQLiteStore

from ..conftest import table_for

POLICY = """
roomc: 1
server: {publicUrl: "https://rooms.example.com"}
rooms:
  bridge:
    name: "bridge-{{ query.m }}"
    maxParticipants: 3
    whenFull:
      - say: "The bridge is full; joining the overflow."
      - join: overflow
    roles:
      host: {when: "query.host == '1'", startOnEnter: true}
      participant: {startOnEnter: false}
  overflow:
    name: "overflow-{{ query.m }}"
    maxParticipants: 1
    whenFull:
      - join: bridge
    roles:
      guest: {startOnEnter: true}
  webinar:
    name: "webinar-{{ query.m }}"
    maxParticipants: 2
    whenFull: [{say: "The webinar is full."}, {hangup: {}}]
    pools:
      speakers:
        seats: 1
        whenFull:
          - say: "The speaker seat is taken; you will listen."
          - join: {room: webinar, role: listener}
    roles:
      moderator: {when: "query.mod == '1'", startOnEnter: true, reservedSeats: 1}
      speaker: {when: "query.s == '1'", pool: speakers, whenFull: [{say: "No speaker seat."}, {join: {room: webinar, role: listener}}]}
      listener: {muted: true}
routes:
  /bridge: {join: bridge}
  /overflow: {join: overflow}
  /webinar: {join: webinar}
  /events: events
"""


@pytest.fixture
def seats_table(tmp_path):
    return table_for(tmp_path, POLICY)


def client_for(table, tmp_path):
    store = SQLiteStore(str(tmp_path / "seats.db"))
    store.store_wait = 5.0  # a loaded machine must not turn a seat into a store timeout (the fallback) here
    app = create_app(table, store=store, settings=Settings(signing_secret=None))
    app.config["TESTING"] = True
    return app.test_client(), store


def post(client, path, query, call):
    response = client.post(path, query_string=query, data={"CallId": call})
    assert response.status_code == 200 and response.mimetype == "application/json"
    return response.get_json()["actions"]


def said(actions):
    return [a["say"]["text"] for a in actions if "say" in a]


def conference(actions):
    return actions[-1].get("conference") if actions else None


def test_participants_overflow_but_the_host_never_does(seats_table, tmp_path):
    client, store = client_for(seats_table, tmp_path)
    try:
        assert conference(post(client, "/bridge", {"m": "1"}, "p1"))["name"] == "bridge-1"
        assert conference(post(client, "/bridge", {"m": "1"}, "p2"))["name"] == "bridge-1"
        third = post(client, "/bridge", {"m": "1"}, "p3")  # the third seat is the host's: overflow
        assert said(third)[0] == "The bridge is full; joining the overflow." and conference(third)["name"] == "overflow-1"
        host = post(client, "/bridge", {"m": "1", "host": "1"}, "h1")
        assert conference(host)["name"] == "bridge-1" and conference(host)["startOnEnter"] is True
        # A second host finds no seat: the built-in message, never the overflow room it would not start.
        second = post(client, "/bridge", {"m": "1", "host": "1"}, "h2")
        assert second == [{"say": {"text": "Sorry, this meeting is full. Please try again later."}}, {"hangup": {}}]
        # The host retrying keeps its seat.
        assert conference(post(client, "/bridge", {"m": "1", "host": "1"}, "h1"))["name"] == "bridge-1"
    finally:
        store.close()


def test_an_overflow_chain_that_comes_back_ends_with_the_full_message(seats_table, tmp_path):
    client, store = client_for(seats_table, tmp_path)
    try:
        for call in ("p1", "p2", "o1"):
            post(client, "/bridge" if call != "o1" else "/overflow", {"m": "2"}, call)
        # bridge (full for participants) -> overflow (full) -> bridge again: found full once, not looped.
        looped = post(client, "/bridge", {"m": "2"}, "p9")
        assert looped[-2:] == [{"say": {"text": "Sorry, this meeting is full. Please try again later."}},
                               {"hangup": {}}]
        assert not any("conference" in a for a in looped)
    finally:
        store.close()


def test_a_pool_has_its_own_seats_and_its_role_its_own_whenfull(seats_table, tmp_path):
    client, store = client_for(seats_table, tmp_path)
    try:
        speaker = conference(post(client, "/webinar", {"m": "3", "s": "1"}, "s1"))
        assert speaker["maxParticipants"] == 3 and not speaker.get("muted")  # 2 of the room's + 1 speaker seat
        second = post(client, "/webinar", {"m": "3", "s": "1"}, "s2")
        assert said(second)[0] == "No speaker seat." and conference(second)["muted"] is True  # the role's own whenFull
        # The listener seat s2 took was the last one not held for the moderator.
        full = post(client, "/webinar", {"m": "3"}, "l1")
        assert said(full) == ["The webinar is full."]
        assert conference(post(client, "/webinar", {"m": "3", "mod": "1"}, "m1"))["startOnEnter"] is True
        seats = {p["callId"]: p["role"] for p in store.room("webinar-3")["participants"]}
        assert seats == {"s1": "speaker", "s2": "listener", "m1": "moderator"}
    finally:
        store.close()


def test_a_table_compiled_before_pools_is_served_as_before(tmp_path):
    """No `pools` in the table (an older roomc's): the room's seats and the uncounted roles' pool, nothing held."""
    table = table_for(tmp_path, POLICY)
    old = copy.deepcopy(table)
    for room in old["rooms"].values():
        room.pop("pools", None)
        for role in room["roles"]:
            role.pop("pool", None)
            role.pop("whenFull", None)
    client, store = client_for(old, tmp_path)
    try:
        assert all(conference(post(client, "/bridge", {"m": "4"}, f"p{i}")) for i in range(3))
        assert said(post(client, "/bridge", {"m": "4", "host": "1"}, "h"))[0] == "The bridge is full; joining the overflow."
    finally:
        store.close()
