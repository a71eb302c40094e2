"""The SQLite store: exact seats, expiry, restarts, and state that never depends on delivery order."""
import sqlite3
import threading
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from roomc.runtime.normalise import event
from roomc.runtime.store import SQLiteStore

NOW = 1_800_000_000.0


def reserve(store, call, room="r", limit=2, counted=True, now=NOW):
    return store.reserve(room, call, "member", counted=counted, limit=limit, ttl=60, muted=False, now=now)


def test_reservation_is_exact_and_idempotent(store):
    assert reserve(store, "a").admitted and reserve(store, "b").admitted
    assert not reserve(store, "c").admitted
    again = reserve(store, "a")
    assert again.admitted and again.again and again.taken == 2


def test_unconfirmed_reservations_expire(store):
    reserve(store, "a")
    reserve(store, "b")
    assert not reserve(store, "c", now=NOW + 59).admitted
    assert reserve(store, "c", now=NOW + 61).admitted


def test_joined_seats_do_not_expire_and_leave_frees_them(store):
    reserve(store, "a")
    reserve(store, "b")
    store.record(event({"ConferenceName": "r", "StatusCallbackEvent": "join", "CallId": "a", "Timestamp": NOW + 1}))
    assert reserve(store, "c", now=NOW + 3600).admitted  # b expired, a still seated
    assert not reserve(store, "d", now=NOW + 3600).admitted
    store.record(event({"ConferenceName": "r", "StatusCallbackEvent": "leave", "CallId": "a", "Timestamp": NOW + 3601}))
    assert reserve(store, "d", now=NOW + 3602).admitted


def test_pools_are_counted_separately(store):
    assert reserve(store, "a", limit=1).admitted
    assert reserve(store, "sup", limit=1, counted=False).admitted
    assert not reserve(store, "sup2", limit=1, counted=False).admitted


def test_restart_loses_nothing(tmp_path):
    path = str(tmp_path / "db.sqlite")
    first = SQLiteStore(path)
    reserve(first, "a")
    first.record(event({"ConferenceName": "r", "StatusCallbackEvent": "join", "CallId": "a", "Timestamp": NOW}))
    first.record(event({"ConferenceName": "r", "StatusCallbackEvent": "end", "Timestamp": NOW + 5,
                        "RecordingUrl": "https://rec/x.mp3"}))
    first.close()
    second = SQLiteStore(path)
    assert second.room("r")["recordingUrl"] == "https://rec/x.mp3"
    assert second.room("r")["participants"][0]["leftAt"] is not None
    assert second.count_events() == 2


def test_leave_before_join_and_end_before_leave(store):
    store.record(event({"room": "r", "event": "leave", "callId": "a", "timestamp": NOW + 10}))
    store.record(event({"room": "r", "event": "join", "callId": "a", "timestamp": NOW + 1}))
    store.record(event({"room": "r", "event": "end", "timestamp": NOW + 20}))
    store.record(event({"room": "r", "event": "join", "callId": "b", "timestamp": NOW + 2}))
    people = {p["callId"]: p for p in store.room("r")["participants"]}
    assert people["a"]["leftAt"].startswith("2027-01-15T08:00:10")
    assert people["b"]["leftAt"].startswith("2027-01-15T08:00:20")
    assert store.live_rooms(now=NOW + 30) == []


CALLS = st.sampled_from(["c1", "c2", "c3"])
EVENTS = st.one_of(
    st.tuples(st.sampled_from(["join", "leave", "mute", "unmute"]), CALLS, st.integers(0, 20)),
    st.tuples(st.sampled_from(["start", "end"]), st.none(), st.integers(0, 20)),
)


def _fields(kind, call, at):
    fields = {"ConferenceName": "room-1", "StatusCallbackEvent": kind, "Timestamp": NOW + at}
    if call:
        fields["CallId"] = call
    if kind == "end":
        fields["RecordingUrl"] = f"https://rec/{at}.mp3"
    return fields


@given(events=st.lists(EVENTS, min_size=1, max_size=12, unique=True), data=st.data())
@settings(max_examples=60, deadline=None)
def test_final_state_does_not_depend_on_delivery_order(tmp_path_factory, events, data):
    delivered = data.draw(st.permutations(events + data.draw(st.lists(st.sampled_from(events), max_size=5))))
    states = []
    for order in (events, delivered):
        with SQLiteStore(str(tmp_path_factory.mktemp("s") / "db.sqlite")) as store:
            for kind, call, at in order:
                store.record(event(_fields(kind, call, at)))
            states.append((store.room("room-1"), store.live_rooms(now=NOW + 100), store.count_events()))
    assert states[0] == states[1]


def test_untimed_retries_of_a_join_do_not_seat_a_caller_who_left(store):
    reserve(store, "a", limit=1)
    join = {"ConferenceName": "r", "StatusCallbackEvent": "join", "CallId": "a"}
    assert store.record(event(join, now=NOW + 1)) == "stored"
    assert store.record(event({**join, "StatusCallbackEvent": "leave"}, now=NOW + 5)) == "stored"
    # The platform retries the join (at least once delivery); it arrives later, with no timestamp.
    assert store.record(event(join, now=NOW + 30)) == "duplicate"
    assert reserve(store, "b", limit=1, now=NOW + 31).admitted


def test_the_wal_stays_small_under_sustained_writes(tmp_path):
    # A checkpoint beside busy writers never completes, and the WAL only starts over after one
    # that does: it used to grow by every write (380 MB after 160,000 seats).
    path = tmp_path / "busy.db"
    frame = 1024 + 24  # a page and its header: a WAL that never starts over holds one or more per write
    writes, deadline = 0, time.monotonic() + 1.5
    with SQLiteStore(str(path), checkpoint_every=0.1, wal_limit_frames=100) as store:
        while time.monotonic() < deadline:
            store.reserve(f"room-{writes // 5}", f"call-{writes}", "participant", counted=True, limit=10, ttl=60,
                          muted=False)
            writes += 1
        wal = (tmp_path / "busy.db-wal").stat().st_size  # before close(), which folds it in and deletes it
    assert writes > 2000
    assert wal < writes * frame, f"WAL {wal:,} bytes after {writes:,} writes"


def test_close_stops_the_checkpoint_thread(tmp_path):
    def checkpointers() -> int:
        return sum(t.name == "roomc-checkpoint" for t in threading.enumerate())

    before = checkpointers()
    store = SQLiteStore(str(tmp_path / "db.sqlite"), checkpoint_every=0.05)
    reserve(store, "a")  # the first write starts it
    assert checkpointers() == before + 1
    store.close()
    assert checkpointers() == before
    with pytest.raises(sqlite3.ProgrammingError, match="closed"):
        reserve(store, "b")
    with pytest.raises(sqlite3.ProgrammingError, match="closed"):
        store.room("r")


def test_change_marker_moves_on_every_commit_from_any_connection(tmp_path):
    # The live page's stream polls this instead of re-reading rooms: it must see a write
    # made by another process's connection, and must not move when nothing was written.
    with SQLiteStore(str(tmp_path / "m.db")) as reader, SQLiteStore(str(tmp_path / "m.db")) as writer:
        first = reader.change_marker()
        reader.live_rooms()
        assert reader.change_marker() == first, "a read is not a change"
        writer.record(event({"ConferenceName": "r", "StatusCallbackEvent": "join", "CallId": "a"}))
        second = reader.change_marker()
        assert second != first
        reader.record(event({"ConferenceName": "r", "StatusCallbackEvent": "mute", "CallId": "a"}))
        assert reader.change_marker() != second, "its own writes count too"
        writer.record(event({"ConferenceName": "r", "StatusCallbackEvent": "mute", "CallId": "a"}))  # duplicate
        third = reader.change_marker()
        assert reader.change_marker() == third


def test_recent_events_and_ended_rooms(store):
    for i, kind in enumerate(["start", "join", "mute", "leave", "end"]):
        store.record(event({"ConferenceName": "r", "StatusCallbackEvent": kind, "CallId": "a",
                            "RecordingUrl": "https://rec.example/r.mp3" if kind == "end" else None,
                            "Timestamp": NOW + i}))
    store.record(event({"garbage": True}))
    recent = store.recent_events("r", limit=3)
    assert [e["event"] for e in recent] == ["end", "leave", "mute"]
    assert recent[0]["at"].startswith("2027-01-15T08:00:04")
    assert store.ended_rooms() == [{"name": "r", "started": "2027-01-15T08:00:00.000Z",
                                    "ended": "2027-01-15T08:00:04.000Z", "recordingUrl": "https://rec.example/r.mp3"}]
    store.record(event({"ConferenceName": "r", "StatusCallbackEvent": "start", "Timestamp": NOW + 10}))
    assert store.ended_rooms() == [], "a room started again is live, not ended"
