"""The store conformance suite: one behaviour, two stores. Every test taking `store` or `location`
runs against the SQLite store and against a real PostgreSQL (tests/pg.py): exact seats, expiry,
restarts, idempotent events and state that never depends on delivery order or concurrency.
SQLite's own mechanics (its WAL, its checkpoint thread) are tested at the end."""
import dataclasses
import sqlite3
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from roomc.runtime import normalise
from roomc.runtime.storage import copy, describe, open_store, status, upgrade
from roomc.runtime.store import ACTIVE, SCHEMA_VERSION, SchemaMismatch, SQLiteStore, StoreTimeout, Unstorable

NOW = 1_800_000_000.0


def event(fields, headers=None, now=None):
    """An event read as if it arrived when it says it happened (else at NOW): timestamps far from
    the arrival time are set aside."""
    stamp = fields.get("Timestamp", fields.get("timestamp"))
    return normalise.event(fields, headers, now=now if now is not None else float(stamp or NOW))


@pytest.fixture(params=["sqlite", "postgresql"])
def location(request, tmp_path):
    """Where a new, empty store lives: a SQLite path or a PostgreSQL database URL."""
    if request.param == "sqlite":
        return str(tmp_path / "roomc.db")
    return request.getfixturevalue("pg_url")


@pytest.fixture
def store(location):
    with open_store(location) as opened:
        yield opened


def wipe(store) -> None:
    """Empty every roomc table but the schema version (hypothesis reuses one store per test)."""
    if isinstance(store, SQLiteStore):
        db = store._connection()
        for (table,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name != 'roomc_schema'")\
                .fetchall():
            db.execute(f"DELETE FROM {table}")
        return
    with store._conn() as conn:
        tables = [t for (t,) in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = current_schema() "
                                              "AND tablename != 'roomc_schema'").fetchall()]
        conn.execute(f"TRUNCATE {', '.join(tables)}")


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


def test_restart_loses_nothing(location):
    first = open_store(location)
    reserve(first, "a")
    first.record(event({"ConferenceName": "r", "StatusCallbackEvent": "join", "CallId": "a", "Timestamp": NOW}))
    first.record(event({"ConferenceName": "r", "StatusCallbackEvent": "end", "Timestamp": NOW + 5,
                        "RecordingUrl": "https://rec/x.mp3"}))
    first.close()
    with open_store(location) as second:
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
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_final_state_does_not_depend_on_delivery_order(store, events, data):
    delivered = data.draw(st.permutations(events + data.draw(st.lists(st.sampled_from(events), max_size=5))))
    states = []
    for order in (events, delivered):
        wipe(store)
        for kind, call, at in order:
            store.record(event(_fields(kind, call, at)))
        states.append((store.room("room-1"), store.live_rooms(now=NOW + 100), store.count_events()))
    assert states[0] == states[1]


@given(events=st.lists(EVENTS, min_size=2, max_size=12, unique=True))
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_concurrent_deliveries_converge_to_the_serial_state(location, store, events):
    # Several connections (threads here; instances in production) record one room's events at
    # once. Each derivation must see every event committed before it, or a join and its leave
    # delivered together could each overwrite the other's effect.
    wipe(store)
    for kind, call, at in events:
        store.record(event(_fields(kind, call, at)))
    serial = (store.room("room-1"), store.live_rooms(now=NOW + 100))
    wipe(store)
    others = [open_store(location) for _ in range(4)]
    try:
        start = threading.Barrier(len(events))

        def deliver(i):
            start.wait()
            return others[i % len(others)].record(event(_fields(*events[i])))

        with ThreadPoolExecutor(max_workers=len(events)) as pool:
            assert set(pool.map(deliver, range(len(events)))) == {"stored"}
    finally:
        for other in others:
            other.close()
    assert (store.room("room-1"), store.live_rooms(now=NOW + 100)) == serial


def test_concurrent_reservations_are_exact(location, store):
    # 400 callers through 8 separate store objects (separate connections, as separate worker
    # processes or instances have) at a room of 10: exactly 10 seats, each call at most one.
    others = [open_store(location) for _ in range(8)]
    try:
        start = threading.Barrier(32)

        def caller(i):
            if i < 32:
                start.wait()
            return others[i % len(others)].reserve("rush", f"c{i % 200}", "member", counted=True, limit=10,
                                                   ttl=60, muted=False, now=NOW)

        with ThreadPoolExecutor(max_workers=32) as pool:
            admissions = list(pool.map(caller, range(400)))
    finally:
        for other in others:
            other.close()
    admitted_calls = {f"c{i % 200}" for i, a in enumerate(admissions) if a.admitted}
    assert len(admitted_calls) == 10
    assert sum(a.admitted and not a.again for a in admissions) == 10
    assert store.live_rooms(now=NOW)[0]["seatsTaken"] == 10


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
        # At least 1.5 s (many checkpoint rounds) and at least 3,000 writes, however loaded the machine:
        # counting writes in a fixed time made this fail on a busy CI runner, not on a growing WAL.
        while time.monotonic() < deadline or writes < 3000:
            store.reserve(f"room-{writes // 5}", f"call-{writes}", "participant", counted=True, limit=10, ttl=60,
                          muted=False)
            writes += 1
        wal = (tmp_path / "busy.db-wal").stat().st_size  # before close(), which folds it in and deletes it
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


def test_change_marker_moves_on_every_commit_from_any_connection(location):
    # The live page's stream polls this instead of re-reading rooms: it must see a write
    # made by another process's connection, and must not move when nothing was written.
    with open_store(location) as reader, open_store(location) as writer:
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


# --- Hostile deliveries (issue 9): ids shared by rooms, impossible clocks, reordering, replays ---

def test_an_event_id_shared_by_two_rooms_stores_both(store):
    for room in ("A", "B"):
        fields = {"ConferenceName": room, "StatusCallbackEvent": "join", "CallId": "c1", "SequenceNumber": "1"}
        assert store.record(event(fields)) == "stored"
    header = {"X-Sautikit-Event-Id": "evt-1"}
    for room in ("A", "B"):
        fields = {"ConferenceName": room, "StatusCallbackEvent": "leave", "CallId": "c1"}
        assert store.record(event(fields, header)) == "stored"
    assert store.record(event({"ConferenceName": "B", "StatusCallbackEvent": "leave", "CallId": "c1"},
                              header)) == "duplicate"
    assert [p["leftAt"] is not None for p in store.room("B")["participants"]] == [True]
    assert store.count_events() == 4


@pytest.mark.parametrize("stamp", ["1e400", "-1e400", "nan", "inf", "-inf", 1e308, "9" * 5000, 10 ** 30, -5,
                                   "2999-01-01T00:00:00Z", "0001-01-01", "not a date", [1], {"t": 1}, True, ""])
def test_impossible_timestamps_become_the_arrival_time(store, stamp):
    fields = {"ConferenceName": "r", "StatusCallbackEvent": "join", "CallId": "a", "Timestamp": stamp}
    read = normalise.event(fields, now=NOW)
    assert read.at == NOW and not read.timed
    assert store.record(read) == "stored"
    assert store.room("r")["participants"][0]["joinedAt"].startswith("2027-01-15T08:00:00")
    assert store.live_rooms(now=NOW + 1)[0]["participants"] == 1


def test_plausible_timestamps_are_kept_in_seconds_milliseconds_and_iso():
    for stamp in (NOW - 3600, (NOW - 3600) * 1000, (NOW - 3600) * 1e6, "2027-01-15T07:00:00Z"):
        read = normalise.event({"room": "r", "event": "join", "callId": "a", "timestamp": stamp}, now=NOW)
        assert read.timed and read.at == pytest.approx(NOW - 3600), stamp


@pytest.mark.parametrize("field,value", [("ConferenceName", {"a": 1}), ("ConferenceName", "x" * 5000),
                                         ("CallId", ["a"]), ("CallId", "a\r\nb"), ("StatusCallbackEvent", {"k": 1})])
def test_unusable_identifiers_make_the_event_unreadable_not_half_read(store, field, value):
    fields = {"ConferenceName": "r", "StatusCallbackEvent": "join", "CallId": "a", field: value}
    assert store.record(event(fields)) == "unreadable"
    assert store.record(event(fields)) == "duplicate"  # a replayed unreadable body is kept once
    assert store.room("r") is None


def test_untimed_leave_before_join_frees_the_seat(store):
    reserve(store, "a", limit=1)
    leave = {"ConferenceName": "r", "StatusCallbackEvent": "leave", "CallId": "a"}
    assert store.record(event(leave, now=NOW + 1)) == "stored"
    assert store.record(event({**leave, "StatusCallbackEvent": "join"}, now=NOW + 2)) == "stored"
    assert store.record(event(leave, now=NOW + 3)) == "duplicate"
    person = store.room("r")["participants"][0]
    assert person["joinedAt"] and person["leftAt"] and person["leftAt"] >= person["joinedAt"]
    assert reserve(store, "b", limit=1, now=NOW + 4).admitted
    assert store.live_rooms(now=NOW + 5) == [{"name": "r", "participants": 0, "reserved": 1, "seatsTaken": 1,
                                             "started": False}]


def test_a_timed_join_and_an_untimed_leave_in_either_order_free_the_seat(store):
    join = {"ConferenceName": "r", "StatusCallbackEvent": "join", "CallId": "a", "Timestamp": NOW + 10}
    store.record(event({"ConferenceName": "r", "StatusCallbackEvent": "leave", "CallId": "a"}, now=NOW + 1))
    store.record(event(join, now=NOW + 11))
    assert store.live_rooms(now=NOW + 12) == []


def test_a_signature_is_good_for_one_request(store):
    bind = store.bind_signature
    assert bind("t=1,v1=aa", "POST /join?room=a", expires_at=NOW + 300, now=NOW)
    assert bind("t=1,v1=aa", "POST /join?room=a", expires_at=NOW + 300, now=NOW + 1)  # an exact retry
    assert not bind("t=1,v1=aa", "POST /join?room=a&host=1", expires_at=NOW + 300, now=NOW + 2)
    assert not bind("t=1,v1=aa", "POST /other?room=a", expires_at=NOW + 300, now=NOW + 2)
    assert not bind("t=1,v1=aa", "GET /join?room=a", expires_at=NOW + 300, now=NOW + 2)
    assert bind("t=1,v1=aa", "GET /join?room=b", expires_at=NOW + 900, now=NOW + 301)  # expired: taken afresh
    assert store.forget_expired_signatures(now=NOW + 901) == 2


def test_a_signed_reservation_binds_and_seats_together_and_a_replay_takes_no_seat(store):
    from roomc.runtime.store import Binding, SignatureReused

    def signed(call, request, now=NOW, room="r", grant=None):
        return store.reserve(room, call, "member", counted=True, limit=2, ttl=60, muted=False, now=now,
                             bind=Binding("t=1,v1=bb", request, NOW + 300, grant))

    assert signed("a", "POST /join?room=r").admitted
    assert signed("a", "POST /join?room=r", now=NOW + 1).again  # an exact retry keeps its seat
    with pytest.raises(SignatureReused):
        signed("b", "POST /join?room=r&host=1", now=NOW + 2)  # the same signature elsewhere: a replay
    with pytest.raises(SignatureReused):
        signed("c", "POST /join?room=other", room="other", now=NOW + 2)
    assert [p["callId"] for p in store.room("r")["participants"]] == ["a"] and store.room("other") is None
    store.grant_redirect("redirect:a", "POST /pin?room=r", expires_at=NOW + 300)
    assert signed("a", "POST /pin?room=r", now=NOW + 3, grant="redirect:a").again  # its own redirect
    assert not store.bind_signature("t=1,v1=bb", "POST /x", expires_at=NOW + 300, now=NOW + 4)  # still bound


def test_bindings_hold_across_processes_sharing_the_file(location):
    with open_store(location) as one, open_store(location) as two:
        assert one.bind_signature("s", "POST /a?", expires_at=NOW + 300, now=NOW)
        assert not two.bind_signature("s", "POST /b?", expires_at=NOW + 300, now=NOW)


def test_a_store_locked_from_outside_answers_within_the_deadline(tmp_path):
    path = str(tmp_path / "db.sqlite")
    with SQLiteStore(path) as store:
        reserve(store, "warm")
        outsider = sqlite3.connect(path, isolation_level=None)
        outsider.execute("BEGIN IMMEDIATE")  # an operator's sqlite3 shell holding the write lock
        try:
            started = time.monotonic()
            with pytest.raises(StoreTimeout):
                store.reserve("r", "a", "m", counted=True, limit=5, ttl=60, muted=False,
                              deadline=time.monotonic() + 0.5)
            assert time.monotonic() - started < 1.0
            assert store.health()["store"] == "degraded"
            # Callers queued behind it get a short try, not the whole deadline each.
            started = time.monotonic()
            for call in ("b", "c", "d"):
                with pytest.raises(StoreTimeout):
                    store.record(event({"room": "r", "event": "join", "callId": call}),
                                 deadline=time.monotonic() + 2.0)
            assert time.monotonic() - started < 1.0
        finally:
            outsider.execute("ROLLBACK")
            outsider.close()
        time.sleep(0.15)  # one write per 0.1 s probes a struggling store; the next one finds it free
        assert store.reserve("r", "a", "m", counted=True, limit=5, ttl=60, muted=False,
                             deadline=time.monotonic() + 2.0).admitted
        assert store.health()["store"] == "ok"


def test_another_worker_holding_the_lock_is_waited_for_only_until_the_deadline(tmp_path):
    path = str(tmp_path / "db.sqlite")
    with SQLiteStore(path) as store:
        reserve(store, "warm")
        import fcntl
        import os
        holder = os.open(path + ".lock", os.O_RDWR)
        fcntl.flock(holder, fcntl.LOCK_EX)  # what a stuck worker process would hold
        try:
            started = time.monotonic()
            with pytest.raises(StoreTimeout):
                store.reserve("r", "a", "m", counted=True, limit=5, ttl=60, muted=False,
                              deadline=time.monotonic() + 0.3)
            assert 0.25 < time.monotonic() - started < 1.0
        finally:
            os.close(holder)
        assert reserve(store, "a", room="r").admitted


ROOM_NAMES = st.sampled_from(["A", "B", "C"])
SHARED_IDS = st.sampled_from(["1", "2", "3"])  # ids and sequence numbers that collide across rooms
TIMED_EVENTS = st.tuples(st.sampled_from(["join", "leave", "mute", "unmute", "start", "end"]), ROOM_NAMES,
                         CALLS, st.integers(0, 50), SHARED_IDS)


def _timed_fields(kind, room, call, at, seq):
    fields = {"ConferenceName": room, "StatusCallbackEvent": kind, "Timestamp": NOW + at, "SequenceNumber": seq}
    if kind not in ("start", "end"):
        fields["CallId"] = call
    return fields


def _key(generated):
    kind, room, call, _at, seq = generated
    return (kind, room, None if kind in ("start", "end") else call, seq)


@given(events=st.lists(TIMED_EVENTS, min_size=1, max_size=20, unique_by=_key), data=st.data())
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_every_acknowledged_event_is_stored_once_whatever_the_interleaving(store, events, data):
    retries = data.draw(st.lists(st.sampled_from(events), max_size=8))
    delivered = data.draw(st.permutations(events + retries))
    states = []
    for order in (events, delivered):
        wipe(store)
        outcomes = [store.record(event(_timed_fields(*e), now=NOW + 60)) for e in order]
        assert outcomes.count("stored") == len(events)
        states.append(([store.room(r) for r in "ABC"], store.live_rooms(now=NOW + 100), store.count_events()))
    assert states[0] == states[1]


UNTIMED = st.tuples(st.sampled_from(["join", "leave"]), ROOM_NAMES, CALLS)


@given(events=st.lists(UNTIMED, min_size=1, max_size=12, unique=True), data=st.data())
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_untimed_events_converge_whatever_their_order(store, events, data):
    delivered = data.draw(st.permutations(events + data.draw(st.lists(st.sampled_from(events), max_size=5))))
    states = []
    for order in (events, delivered):
        wipe(store)
        for at, (kind, room, call) in enumerate(order):
            store.record(event({"room": room, "event": kind, "callId": call}, now=NOW + at))
        states.append({(r["name"], r["participants"]) for r in store.live_rooms(now=NOW + 100)})
    assert states[0] == states[1]


def test_a_call_may_follow_its_own_redirect_with_the_same_signature_but_go_nowhere_else(store):
    assert store.bind_signature("s", "POST /lobby?", expires_at=NOW + 300, now=NOW, grant="redirect:c1")
    store.grant_redirect("redirect:c1", "POST /pin?meeting=123456", expires_at=NOW + 300)
    assert store.bind_signature("s", "POST /pin?meeting=123456", expires_at=NOW + 300, now=NOW + 1, grant="redirect:c1")
    assert not store.bind_signature("s", "POST /pin?meeting=123456&host=1", expires_at=NOW + 300, now=NOW + 1,
                                    grant="redirect:c1")
    assert not store.bind_signature("s", "POST /pin?meeting=123456", expires_at=NOW + 300, now=NOW + 1,
                                    grant="redirect:c2")  # another call's grant opens nothing for this body
    assert store.bind_signature("s", "POST /lobby?", expires_at=NOW + 300, now=NOW + 2, grant="redirect:c1")


def _set_version(store, version):
    """Stamp the store as another roomc would have left it (None: drop the version table, as before versions)."""
    if isinstance(store, SQLiteStore):
        db = store._connection()
        if version is None:
            db.execute("DROP TABLE roomc_schema")
        else:
            db.execute("UPDATE roomc_schema SET version = ?", (version,))
        return
    with store._conn() as conn:
        if version is None:
            conn.execute("DROP TABLE roomc_schema")
        else:
            conn.execute("UPDATE roomc_schema SET version = %s", (version,))


@pytest.mark.parametrize("version", [None, SCHEMA_VERSION - 1, SCHEMA_VERSION + 1])
def test_a_store_at_another_schema_version_is_refused_with_the_fix(location, version):
    with open_store(location) as first:
        reserve(first, "a")
        _set_version(first, version)
    with pytest.raises(SchemaMismatch) as refused:
        open_store(location)
    if version is not None and version > SCHEMA_VERSION:
        assert "newer than this roomc understands" in str(refused.value)
        with pytest.raises(SchemaMismatch):
            upgrade(location)  # never downgraded
    else:
        assert f"roomc db upgrade --db {describe(location)}" in str(refused.value)
        assert upgrade(location) == (version or 0, SCHEMA_VERSION)
        with open_store(location) as upgraded:
            assert reserve(upgraded, "a").again  # the data survived the upgrade
            assert reserve(upgraded, "c").admitted and not reserve(upgraded, "d").admitted


def test_a_version_1_store_gets_the_tries_table_on_upgrade_and_keeps_its_seats(location):
    with open_store(location) as first:
        reserve(first, "a")
        _set_version(first, 1)
        if isinstance(first, SQLiteStore):
            first._connection().execute("DROP TABLE digit_tries")
        else:
            with first._conn() as conn:
                conn.execute("DROP TABLE digit_tries")
    with pytest.raises(SchemaMismatch, match="roomc db upgrade"):
        open_store(location)
    assert upgrade(location) == (1, SCHEMA_VERSION)
    with open_store(location) as upgraded:
        assert reserve(upgraded, "a").again
        assert upgraded.count_try("a", "pin", "t", window=30, ttl=60, now=NOW) == 1


def test_an_empty_store_is_created_at_the_current_version_and_upgrade_is_idempotent(location):
    assert status(location)["state"] == "empty"
    assert upgrade(location) == (None, SCHEMA_VERSION)
    assert status(location)["state"] == "current" and status(location)["version"] == SCHEMA_VERSION
    assert upgrade(location) == (SCHEMA_VERSION, SCHEMA_VERSION)


def test_copy_moves_everything_and_refuses_a_store_with_data(tmp_path, pg_url):
    source = str(tmp_path / "old.db")
    with open_store(source) as old:
        reserve(old, "a")
        reserve(old, "b")
        reserve(old, "x", room="solo", limit=1)
        old.record(event({"ConferenceName": "r", "StatusCallbackEvent": "start", "Timestamp": NOW}))
        old.record(event({"ConferenceName": "r", "StatusCallbackEvent": "join", "CallId": "a", "Timestamp": NOW + 1}))
        old.record(event({"ConferenceName": "r", "StatusCallbackEvent": "mute", "CallId": "a", "Timestamp": NOW + 2}))
        old.record(event({"ConferenceName": "r", "junk": "\x00"}))  # unreadable, kept raw
        old.record(normalise.Event("raiseHand", "r", "a", None, NOW + 3, None, "k1", {"Digits": "1"}))  # in-room key
        old.bind_signature("t=1,v1=aa", "POST /join?room=r", expires_at=NOW + 300, now=NOW)
        old.note("step:a", "/pin", ttl=60, now=NOW)
        old.record_dialled_call("r", "a", role="host", at=NOW)
        for tag in ("t1", "t2"):  # two PIN tries: a copy must not give the caller a fresh count
            old.count_try("a", "pin", tag, window=30, ttl=3600, now=NOW)
        expected = (old.room("r"), old.room("solo"), old.live_rooms(now=NOW + 5), old.count_events(),
                    old.dialled_calls("r"), old.noted("step:a", now=NOW + 1))
    assert expected[0]["handsRaised"][0]["callId"] == "a"
    assert copy(source, pg_url) == {"events": 5, "seats": 3, "rooms": 1, "signature_uses": 1, "call_notes": 1,
                                    "dialled_calls": 1, "digit_tries": 1}
    with open_store(pg_url) as new:
        assert (new.room("r"), new.room("solo"), new.live_rooms(now=NOW + 5), new.count_events(),
                new.dialled_calls("r"), new.noted("step:a", now=NOW + 1)) == expected
        assert not new.bind_signature("t=1,v1=aa", "POST /join?room=other", expires_at=NOW + 300, now=NOW + 1)
        assert not reserve(new, "c", now=NOW + 5).admitted and reserve(new, "a", now=NOW + 5).again
        assert new.count_try("a", "pin", "t2", window=30, ttl=3600, now=NOW + 1) == 2  # the same entry again
    with pytest.raises(ValueError, match="empty store"):
        copy(source, pg_url)
    back = str(tmp_path / "back.db")  # and back again, PostgreSQL into SQLite
    copy(pg_url, back)
    with open_store(back) as again:
        assert (again.room("r"), again.room("solo"), again.live_rooms(now=NOW + 5), again.count_events(),
                again.dialled_calls("r"), again.noted("step:a", now=NOW + 1)) == expected
        assert again.count_try("a", "pin", "t3", window=30, ttl=3600, now=NOW + 2) == 3


def test_hostile_text_is_stored_not_refused(store):
    # PostgreSQL text cannot hold NUL; a call id or event field with one must still work.
    assert reserve(store, "a\x00b").admitted and reserve(store, "a\x00b").again
    assert store.record(event({"ConferenceName": "r", "StatusCallbackEvent": "join", "CallId": "ab",
                               "Timestamp": NOW, "note": "\x00\ud7ff\u2028"})) == "stored"
    odd = {"ConferenceName": "r", "StatusCallbackEvent": "join", "CallId": "a\x00b", "Timestamp": NOW}
    assert store.record(event(odd)) == "unreadable" and store.record(event(odd)) == "duplicate"
    assert len(store.room("r")["participants"]) == 2 and store.count_events() == 2


def test_dialled_calls_are_kept_per_room(store):
    store.record_dialled_call("m-1", "call-b", role="guest", session_id="HD_2", to="+254700000002", at=NOW + 1)
    store.record_dialled_call("m-1", "call-a", role="host", session_id="HD_1", to="+254700000001", at=NOW)
    store.record_dialled_call("m-1", "call-a", role="other", at=NOW + 5)  # recorded once
    store.record_dialled_call("m-2", "call-c", at=NOW)
    assert [(c["callId"], c["role"], c["dialledAt"]) for c in store.dialled_calls("m-1")] == [
        ("call-a", "host", "2027-01-15T08:00:00.000Z"), ("call-b", "guest", "2027-01-15T08:00:01.000Z")]
    assert store.dialled_calls("none") == []


@pytest.mark.parametrize("order", ["join-end", "end-join", "untimed-end-first"])
def test_an_untimed_join_around_a_room_end_never_holds_a_seat(store, order):
    join = {"ConferenceName": "r", "StatusCallbackEvent": "join", "CallId": "a"}
    end = {"ConferenceName": "r", "StatusCallbackEvent": "end", "Timestamp": NOW + 5}
    if order == "join-end":
        store.record(event(join, now=NOW + 1))
        store.record(event(end, now=NOW + 6))
    elif order == "end-join":
        store.record(event(end, now=NOW + 6))
        store.record(event(join, now=NOW + 7))  # a join retried after its room ended
    else:
        store.record(event({"ConferenceName": "r", "StatusCallbackEvent": "end"}, now=NOW + 1))
        store.record(event(join, now=NOW + 2))
    assert store.live_rooms(now=NOW + 10) == []


def test_an_untimed_join_after_the_room_started_again_is_kept(store):
    store.record(event({"ConferenceName": "r", "StatusCallbackEvent": "end", "Timestamp": NOW}))
    store.record(event({"ConferenceName": "r", "StatusCallbackEvent": "start", "Timestamp": NOW + 10}))
    store.record(event({"ConferenceName": "r", "StatusCallbackEvent": "join", "CallId": "a"}, now=NOW + 20))
    assert store.live_rooms(now=NOW + 21)[0]["participants"] == 1


def test_rows_an_older_version_wrote_with_impossible_times_still_read(tmp_path):
    # Only SQLite files predate checked times; PostgreSQL stores began with them.
    store = SQLiteStore(str(tmp_path / "old.db"))
    store.record(event({"ConferenceName": "old", "StatusCallbackEvent": "join", "CallId": "a"}))
    db = store._connection()
    db.execute("UPDATE seats SET joined_at = 1e999, left_at = 9e15 WHERE room = 'old'")
    db.execute("INSERT INTO rooms (room, started_at, ended_at) VALUES ('old', -1e999, 1e300)")
    person = store.room("old")["participants"][0]
    assert person["joinedAt"] is None and person["leftAt"] is None
    assert store.room("old")["started"] is None
    store.live_rooms()
    store.close()


@pytest.mark.parametrize("stamp,expected", [("2027-01-15T07:00:00", NOW - 3600), ("2027-01-15", None),
                                            ("2027-01-15T10:00:00+03:00", NOW - 3600)])
def test_iso_times_without_a_zone_are_utc_and_dates_alone_are_not_times(stamp, expected):
    read = normalise.event({"room": "r", "event": "join", "callId": "a", "timestamp": stamp}, now=NOW)
    assert (read.at if read.timed else None) == (pytest.approx(expected) if expected else None)


def test_a_separator_inside_an_id_cannot_make_two_keys_collide(store):
    one = {"ConferenceName": "r|join|a", "StatusCallbackEvent": "join", "CallId": "b", "EventId": "1"}
    two = {"ConferenceName": "r", "StatusCallbackEvent": "join", "CallId": "a|join|b", "EventId": "1"}
    assert store.record(event(one)) == "stored" and store.record(event(two)) == "stored"


def test_a_reservation_given_back_frees_its_seat_but_a_joined_seat_stays(store):
    reserve(store, "a", room="g", limit=1)
    assert store.live_rooms_of_call("a", now=NOW) == ["g"]
    assert store.release_reservation("g", "a", now=NOW + 1)
    assert store.live_rooms_of_call("a", now=NOW + 1) == []
    assert reserve(store, "b", room="g", limit=1, now=NOW + 2).admitted
    store.record(event({"ConferenceName": "g", "StatusCallbackEvent": "join", "CallId": "b", "Timestamp": NOW + 3}))
    assert not store.release_reservation("g", "b", now=NOW + 4)  # in the room: not a reservation to give back
    assert store.live_rooms_of_call("b", now=NOW + 5) == ["g"]


# -- the sweeper's claims: every live seat gets asked about, by one worker at a time -------------
def test_claims_page_through_every_seat_and_never_hand_one_call_to_two_workers(location, store):
    """600 reservations about to lapse and 120 joined seats: batches of 50 must reach all of them
    (the old query took the same first 50 every round), and a second store on the same location
    (another worker) is never handed a call the first one has claimed."""
    for i in range(600):
        assert store.reserve("big", f"res-{i}", "member", counted=True, limit=1000, ttl=10, muted=False,
                             now=NOW - 5).admitted
    for i in range(120):
        reserve(store, f"joined-{i}", room="hall", limit=200)
        store.record(event({"ConferenceName": "hall", "StatusCallbackEvent": "join", "CallId": f"joined-{i}",
                            "Timestamp": NOW}))
    reserve(store, "anonymous-1", room="hall", limit=200)  # a stand-in id the platform cannot know
    claimed: list[str] = []
    with open_store(location) as other:
        for turn in range(40):
            batch = (store if turn % 2 else other).claim_calls_to_confirm(
                within=8, limit=50, hold=4, hold_joined=30, now=NOW)
            if not batch:
                break
            assert len(batch) <= 50
            claimed += [row["call_id"] for row in batch]
    assert len(claimed) == len(set(claimed)) == 720
    assert {c for c in claimed if c.startswith("joined-")} == {f"joined-{i}" for i in range(120)}
    # Asked 4.5 s ago: the reservations (held 4 s) are due again, soonest to lapse first; joined ones not yet.
    again = store.claim_calls_to_confirm(within=8, limit=1000, hold=4, hold_joined=30, now=NOW + 4.6)
    assert {row["call_id"] for row in again} <= {f"res-{i}" for i in range(600)}
    later = store.claim_calls_to_confirm(within=8, limit=1000, hold=4, hold_joined=30, now=NOW + 31)
    assert {row["call_id"] for row in later if row["joined"]} == {f"joined-{i}" for i in range(120)}
# The schema each version means. A change to either store's schema must bump SCHEMA_VERSION
# (so `roomc db upgrade` reaches existing stores and serve refuses stale ones), be made in
# both stores (runtime/store.py and runtime/postgres.py), and be recorded here.
SCHEMA_DIGESTS = {1: ("42937cee2959d3b0", "dbea9be233c78fc1"), 2: ("a54e1335ba92024f", "1cee7a8d5affb0b0"),
                  3: ("240dc0697159476f", "6ac43f1c27b8b4b2"),  # digit_tries (PIN tries, issue 13)
                  4: ("95e0f3c7eb4113cc", "297aeec59743aee4")}  # a version-1 instance's seats, during an upgrade


def test_a_schema_change_comes_with_a_new_version():
    import hashlib
    import re

    from roomc.runtime import postgres, store as sqlite_store

    def digest(text: str) -> str:
        return hashlib.sha256(re.sub(r"\s+", " ", text).strip().encode()).hexdigest()[:16]

    now = (digest(sqlite_store.SCHEMA + sqlite_store.TRIGGERS + sqlite_store.CALL_NOTES + sqlite_store.DIALLED_SCHEMA),
           digest(postgres.SCHEMA))
    assert SCHEMA_DIGESTS.get(SCHEMA_VERSION) == now, (
        f"the store schema changed ({now}) but SCHEMA_VERSION is still {SCHEMA_VERSION}: bump it, make the change in "
        "both runtime/store.py and runtime/postgres.py, and record the new digests in SCHEMA_DIGESTS")


def key(kind, call, at, event_id=None, room="r"):
    return normalise.Event(kind, room, call, None, at, None, event_id, {"Digits": "1", "CallId": call})


def test_in_room_keys_are_room_events_read_in_the_senders_order(store):
    for call in ("a", "b", "c"):
        reserve(store, call, limit=5)
        store.record(event({"ConferenceName": "r", "StatusCallbackEvent": "join", "CallId": call, "Timestamp": NOW}))
    assert store.record(key("raiseHand", "a", NOW + 5)) == "stored"
    assert store.record(key("raiseHand", "a", NOW + 5)) == "duplicate"  # a retry, keyed by its time
    store.record(key("lowerHand", "a", NOW + 4))  # delivered late, but pressed before the raise
    store.record(key("callOperator", "b", NOW + 6, "e1"))
    store.record(key("raiseHand", "c", NOW + 3))
    store.record(key("callOperator", "zz", NOW + 3))  # never seated: never listed
    room = store.room("r")
    assert [(h["callId"], h["role"]) for h in room["handsRaised"]] == [("c", "member"), ("a", "member")]  # oldest first
    assert [o["callId"] for o in room["operatorRequested"]] == ["b"]
    assert room["handsRaised"][1]["at"] == "2027-01-15T08:00:05.000Z"
    store.record(key("lowerHand", "a", NOW + 7))
    store.record(key("cancelOperator", "b", NOW + 6))  # a tie: the request wins
    store.record(event({"ConferenceName": "r", "StatusCallbackEvent": "leave", "CallId": "c", "Timestamp": NOW + 8}))
    room = store.room("r")
    assert room["handsRaised"] == [] and [o["callId"] for o in room["operatorRequested"]] == ["b"]
    # Status events never read as key effects, and keys never move seats or sessions.
    assert store.record(event({"ConferenceName": "r", "StatusCallbackEvent": "raiseHand", "CallId": "a",
                               "Timestamp": NOW + 9})) == "unreadable"
    assert [p["leftAt"] is None for p in room["participants"]] == [True, True, False]
    assert store.room("nobody") is None


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(order=st.permutations(range(7)))
def test_in_room_keys_converge_whatever_the_delivery_order(store, order):
    wipe(store)
    for call in ("a", "b"):
        reserve(store, call, limit=5)
    presses = [key("raiseHand", "a", NOW + 1), key("lowerHand", "a", NOW + 2), key("raiseHand", "a", NOW + 3),
               key("raiseHand", "b", NOW + 1), key("callOperator", "b", NOW + 2), key("lowerHand", "b", NOW + 4),
               key("cancelOperator", "a", NOW + 1)]
    for index in order:
        store.record(presses[index])
        store.record(presses[index])  # every press delivered twice
    room = store.room("r")
    assert [h["callId"] for h in room["handsRaised"]] == ["a"]
    assert [o["callId"] for o in room["operatorRequested"]] == ["b"]


def test_a_hand_raised_before_leaving_stays_down_when_the_call_comes_back(store):
    reserve(store, "a", limit=5)
    store.record(event({"ConferenceName": "r", "StatusCallbackEvent": "join", "CallId": "a", "Timestamp": NOW}))
    store.record(key("raiseHand", "a", NOW + 5))
    store.record(key("callOperator", "a", NOW + 6))
    store.record(event({"ConferenceName": "r", "StatusCallbackEvent": "leave", "CallId": "a", "Timestamp": NOW + 10}))
    # The same call is sent back into the room (a redirect): leaving lowered its hand and withdrew its request.
    store.record(event({"ConferenceName": "r", "StatusCallbackEvent": "join", "CallId": "a", "Timestamp": NOW + 20}))
    room = store.room("r")
    assert room["participants"][0]["leftAt"] is None
    assert room["handsRaised"] == [] and room["operatorRequested"] == []
    store.record(key("raiseHand", "a", NOW + 25))  # a press after coming back counts
    assert [h["callId"] for h in store.room("r")["handsRaised"]] == ["a"]
    # A room end lowers every hand raised before it, as each caller's leave would.
    store.record(event({"ConferenceName": "r", "StatusCallbackEvent": "end", "Timestamp": NOW + 30}))
    store.record(event({"ConferenceName": "r", "StatusCallbackEvent": "join", "CallId": "a", "Timestamp": NOW + 40}))
    assert store.room("r")["handsRaised"] == []


def test_a_key_press_named_by_number_finds_only_the_one_call_in_the_room_with_it(store):
    store.reserve("r", "a", "member", counted=True, limit=5, ttl=60, muted=False, now=NOW, caller="+1")
    assert store.call_by_caller("r", "+1", "keys", now=NOW + 1) == "a"
    store.reserve("r", "b", "member", counted=True, limit=5, ttl=60, muted=False, now=NOW, caller="+1")
    assert store.call_by_caller("r", "+1", "keys", now=NOW + 1) is None  # two calls, one number: neither
    assert store.call_by_caller("r", "+1", "leave", now=NOW + 1) in ("a", "b")  # status events keep their reading
    store.record(event({"ConferenceName": "r", "StatusCallbackEvent": "leave", "CallId": "b", "Timestamp": NOW + 2}))
    assert store.call_by_caller("r", "+1", "keys", now=NOW + 3) == "a"
    assert store.call_by_caller("r", "+1", "keys", now=NOW + 120) is None  # a's reservation lapsed, never joined
    assert store.call_by_caller("r", "+2", "keys", now=NOW + 1) is None


# -- seat pools and held seats (issue 13: hosts always get in, seats per role) -------------------
def seat(store, call, role="member", *, pool=None, limit=3, held=None, room="w", now=NOW, counted=True):
    return store.reserve(room, call, role, counted=counted, limit=limit, ttl=60, muted=False, now=now,
                         pool=pool, held=held)


def test_a_held_seat_is_kept_for_the_host_until_the_host_fills_it(store):
    held = {"host": 1}
    assert seat(store, "p1", held=held).admitted and seat(store, "p2", held=held).admitted
    assert not seat(store, "p3", held=held).admitted  # the third seat is the host's
    host = seat(store, "h1", "host", held=held)
    assert host.admitted and not host.again
    retry = seat(store, "h1", "host", held=held)  # a retried webhook keeps its one seat
    assert retry.admitted and retry.again and retry.taken == 3
    assert not seat(store, "h2", "host", held=held).admitted  # a second host competes like anyone: full
    # The host leaves: the seat is held again, not given to the next participant.
    store.record(event({"ConferenceName": "w", "StatusCallbackEvent": "join", "CallId": "h1", "Timestamp": NOW + 1}))
    store.record(event({"ConferenceName": "w", "StatusCallbackEvent": "leave", "CallId": "h1", "Timestamp": NOW + 2}))
    assert not seat(store, "p4", held=held, now=NOW + 3).admitted
    assert seat(store, "h2", "host", held=held, now=NOW + 3).admitted


def test_several_held_roles_and_a_held_count_above_one(store):
    held = {"host": 2, "interpreter": 1}
    assert seat(store, "p1", limit=5, held=held).admitted and seat(store, "p2", limit=5, held=held).admitted
    assert not seat(store, "p3", limit=5, held=held).admitted
    assert seat(store, "i1", "interpreter", limit=5, held=held).admitted
    assert not seat(store, "i2", "interpreter", limit=5, held=held).admitted  # the rest is the hosts'
    assert seat(store, "h1", "host", limit=5, held=held).admitted
    assert seat(store, "h2", "host", limit=5, held=held).admitted
    assert not seat(store, "h3", "host", limit=5, held=held).admitted


def test_a_pool_that_cannot_hold_its_held_seats_refuses_others_and_still_seats_the_host(store):
    # Lint refuses this (RC240); the store must still never over-admit.
    assert not seat(store, "p1", limit=1, held={"host": 2}).admitted
    assert seat(store, "h1", "host", limit=1, held={"host": 2}).admitted
    assert not seat(store, "h2", "host", limit=1, held={"host": 2}).admitted  # no seat left at all


def test_named_pools_are_counted_apart_and_a_moved_call_changes_pool(store):
    assert seat(store, "s1", "speaker", pool="speakers", limit=1).admitted
    assert not seat(store, "s2", "speaker", pool="speakers", limit=1).admitted
    assert seat(store, "l1", "listener", limit=1).admitted  # the room's own pool is another count
    assert not seat(store, "l2", "listener", limit=1).admitted
    # s2, refused as a speaker, joins as a listener: refused too (the room's pool is full), and a
    # listener moved to the speakers' pool frees the room's seat it held.
    assert seat(store, "s1", "listener", limit=2).admitted  # moved: speakers now has room
    assert seat(store, "s2", "speaker", pool="speakers", limit=1).admitted
    assert store.live_rooms(now=NOW)[0]["seatsTaken"] == 2  # the room's own pool: l1 and s1


def test_the_uncounted_roles_pool_is_the_extra_pool(store):
    assert seat(store, "sup1", "supervisor", counted=False, limit=1).admitted
    assert not seat(store, "sup2", "supervisor", pool="~extra", limit=1).admitted
    assert seat(store, "p1", limit=1).admitted


def test_hostile_limits_never_admit_past_zero(store):
    assert not seat(store, "a", limit=0).admitted
    assert not seat(store, "b", limit=-5).admitted
    assert not seat(store, "h", "host", limit=0, held={"host": 1}).admitted
    assert seat(store, "c", limit=2**31 - 1, held={"host": 2**31 - 1}).admitted is False
    assert seat(store, "h", "host", limit=2**31 - 1, held={"host": 5, "x": 0}).admitted


@given(st.data())
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_concurrent_joins_across_pools_never_exceed_a_pool_and_the_host_gets_its_seat(location, store, data):
    """Callers of a host role (1 or 2 seats held), participants, and speakers in a pool of their own,
    all at once through 4 separate store objects (as separate workers or instances), some retrying:
    no pool ever holds more than its limit, participants never take a held seat, and every held
    seat goes to a host when hosts call."""
    wipe(store)
    main_limit = data.draw(st.integers(1, 6), label="main")
    speakers = data.draw(st.integers(0, 3), label="speakers")
    hosts_held = data.draw(st.integers(1, min(2, main_limit)), label="held")
    callers = data.draw(st.lists(st.sampled_from(["participant", "host", "speaker"]), min_size=1, max_size=24),
                        label="callers")
    held = {"host": hosts_held}
    jobs = [(f"c{i}", role) for i, role in enumerate(callers)]
    jobs += [(call, role) for call, role in jobs if data.draw(st.booleans(), label=f"retry {call}")]
    others = [open_store(location) for _ in range(4)]
    try:
        start = threading.Barrier(min(len(jobs), 16))

        def caller(index):
            call, role = jobs[index]
            if index < 16:
                start.wait()
            target = others[index % len(others)]
            if role == "speaker":
                return call, role, seat(target, call, role, pool="speakers", limit=speakers, room="race")
            return call, role, seat(target, call, role, limit=main_limit, held=held, room="race")

        with ThreadPoolExecutor(max_workers=16) as pool:
            results = list(pool.map(caller, range(len(jobs))))
    finally:
        for other in others:
            other.close()
    admitted = {(call, role) for call, role, a in results if a.admitted}
    by_role = {r: sum(1 for _, role in admitted if role == r) for r in ("participant", "host", "speaker")}
    assert by_role["speaker"] <= speakers
    assert by_role["participant"] + by_role["host"] <= main_limit
    assert by_role["participant"] <= main_limit - hosts_held
    asked_hosts = len({call for call, role in jobs if role == "host"})
    assert by_role["host"] >= min(hosts_held, asked_hosts)
    assert sum(r["seatsTaken"] for r in store.live_rooms(now=NOW)) == by_role["participant"] + by_role["host"]


def test_an_old_store_is_upgraded_with_its_uncounted_seats_in_their_pool(location):
    """A version-1 store (no `pool` column; an uncounted seat was `counted = 0`) upgraded to version 2
    keeps every seat in the pool it was counted in."""
    with open_store(location) as old:
        seat(old, "sup", "supervisor", counted=False, limit=1)
        seat(old, "p1", limit=1)
        if isinstance(old, SQLiteStore):
            db = old._connection()
            for trigger in ("seat_pool_v1_insert", "seat_pool_v1_update"):  # version 4's, which read the column
                db.execute(f"DROP TRIGGER {trigger}")
            db.execute("ALTER TABLE seats DROP COLUMN pool")
        else:
            with old._conn() as conn:
                conn.execute("ALTER TABLE seats DROP COLUMN pool")
        _set_version(old, 1)
    assert upgrade(location) == (1, SCHEMA_VERSION)
    with open_store(location) as new:
        assert not seat(new, "sup2", "supervisor", counted=False, limit=1).admitted
        assert not seat(new, "p2", limit=1).admitted
        assert seat(new, "sup", "supervisor", counted=False, limit=1).again


# What a roomc of schema version 1 still running during `roomc db upgrade` sends for a seat
# (docs/deploy.md: instances keep serving while the upgrade runs, then restart one at a time).
V1_SQLITE_RESERVE = f"""
INSERT INTO seats (room, call_id, role, counted, muted0, reserved_at, expires_at, caller)
SELECT :room, :call, :role, :counted, 0, :now, :now + 60, NULL
WHERE (SELECT COUNT(*) FROM seats WHERE room=:room AND counted=:counted AND call_id != :call AND {ACTIVE}) < :limit
  AND NOT EXISTS (SELECT 1 FROM seats WHERE room=:room AND call_id=:call AND role IS :role AND {ACTIVE})
ON CONFLICT (room, call_id) DO UPDATE SET role=excluded.role, counted=excluded.counted, muted0=excluded.muted0,
    reserved_at=excluded.reserved_at, expires_at=excluded.expires_at, caller=COALESCE(excluded.caller, seats.caller)
"""
V1_PG_RESERVE = ("SELECT admitted FROM roomc_reserve(%(room)s, %(call)s, %(role)s, %(counted)s::smallint, "
                 "0::smallint, %(now)s::float8, %(now)s::float8 + 60, %(limit)s::integer, NULL)")


def _v1_reserve(store, call, role, counted, limit, room="w"):
    """Take a seat as a schema-1 roomc would, on a store already upgraded under it."""
    values = {"room": room, "call": call, "role": role, "counted": int(counted), "limit": limit, "now": NOW}
    if isinstance(store, SQLiteStore):
        with store._write(None) as db:
            return db.execute(V1_SQLITE_RESERVE, values).rowcount == 1
    with store._conn() as conn:
        return conn.execute(V1_PG_RESERVE, values).fetchone()[0]


def test_an_instance_still_on_schema_1_keeps_serving_after_the_upgrade_and_its_seats_count_in_their_pools(location):
    # PostgreSQL: the upgrade dropped the 9-argument roomc_reserve, so every join on an instance not
    # yet restarted answered the fallback. SQLite: its uncounted seats landed in the room's own pool.
    with open_store(location) as store:
        assert _v1_reserve(store, "sup", "supervisor", False, 1)
        assert _v1_reserve(store, "p1", "member", True, 2)
        assert _v1_reserve(store, "moved", "supervisor", False, 5, room="x")
        assert _v1_reserve(store, "moved", "member", True, 5, room="x")  # a fallback join, then its PIN
        assert not seat(store, "sup2", "supervisor", counted=False, limit=1).admitted
        assert seat(store, "p2", limit=2).admitted and not seat(store, "p3", limit=2).admitted
        assert not seat(store, "other-sup", "supervisor", counted=False, limit=0, room="x").admitted
        assert seat(store, "other-sup", "supervisor", counted=False, limit=1, room="x").admitted
        assert not seat(store, "x2", limit=1, room="x").admitted  # `moved` holds the room's one seat
        assert [r["seatsTaken"] for r in store.live_rooms(now=NOW)] == [2, 1]


def test_copy_carries_each_seats_pool(tmp_path, pg_url):
    source = str(tmp_path / "pools.db")
    with open_store(source) as old:
        seat(old, "s1", "speaker", pool="speakers", limit=1)
        seat(old, "h1", "host", limit=2, held={"host": 1})
    copy(source, pg_url)
    with open_store(pg_url) as new:
        assert not seat(new, "s2", "speaker", pool="speakers", limit=1).admitted
        assert seat(new, "p1", limit=2, held={"host": 1}).admitted
        assert not seat(new, "p2", limit=2, held={"host": 1}).admitted


def test_after_join_facts_read_the_waiting_step_and_the_calls_end_in_one_go(store):
    # A stored join acts on two facts (runtime/calls.py after_join): a flow step still waiting for
    # the call's digits, and a call-end that arrived before the join. Both come from one read.
    assert store.after_join_facts("CA1", "r", "step:CA1", now=NOW) == (False, None)
    store.note("step:CA1", "waiting", ttl=30, now=NOW)
    assert store.after_join_facts("CA1", "r", "step:CA1", now=NOW + 1) == (True, None)
    assert store.after_join_facts("CA1", "r", "step:CA1", now=NOW + 31) == (False, None)  # the note expired
    # An end that spoke for another room alone does not end the call here; one for every room does.
    store.record(normalise.Event("callend", "other", "CA1", None, NOW + 5, None, "end-other", {"CallId": "CA1"}))
    assert store.after_join_facts("CA1", "r", "step:CA1", now=NOW + 1) == (True, None)
    store.record(normalise.Event("callend", "", "CA1", None, NOW + 7, None, "end-all", {"CallId": "CA1"}))
    assert store.after_join_facts("CA1", "r", "step:CA1", now=NOW + 1) == (True, NOW + 7)
    assert store.after_join_facts("CA2", "r", "step:CA2", now=NOW + 1) == (False, None)


# Batches (runtime/batch.py): reserve_many and record_many must give each item what the single
# call would have, in the same order, and leave the same state behind.
BATCH_SEATS = st.builds(
    lambda room, call, role, limit, counted, signed: ("seat", room, call, role, limit, counted, signed),
    st.sampled_from(["A", "B"]), st.sampled_from(["c1", "c2", "c3", "c4"]), st.sampled_from(["member", "host"]),
    st.integers(1, 3), st.booleans(),
    st.one_of(st.none(), st.tuples(st.sampled_from(["s1", "s2", "s3"]), st.sampled_from(["POST /j?a", "POST /j?b"]))))
BATCH_EVENTS = st.builds(
    lambda kind, room, call, at: ("event", kind, room, call, at),
    st.sampled_from(["join", "leave", "end"]), st.sampled_from(["A", "B"]), st.sampled_from(["c1", "c2", "c3"]),
    st.integers(0, 5))


def _request(op, at):
    from roomc.runtime.store import Binding, EventRequest, SeatRequest

    if op[0] == "seat":
        _, room, call, role, limit, counted, signed = op
        bind = Binding(f"t=1,v1={signed[0]}", signed[1], NOW + 300) if signed else None
        return SeatRequest(room, call, role, counted, limit, 60, False, NOW + at, None, bind)
    _, kind, room, call, stamp = op
    fields = {"ConferenceName": room, "StatusCallbackEvent": kind, "Timestamp": NOW + stamp}
    if kind != "end":
        fields["CallId"] = call
    return EventRequest(event(fields, now=NOW + 10), NOW + at)


def _outcome(outcome):
    return (type(outcome).__name__, str(outcome)) if isinstance(outcome, Exception) else outcome


@given(ops=st.lists(st.one_of(BATCH_SEATS, BATCH_EVENTS), min_size=1, max_size=24), data=st.data())
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_a_batch_gives_each_item_what_it_would_get_alone(store, ops, data):
    from roomc.runtime.store import SeatRequest, SignatureReused

    # Cut into the turns a worker might see; within a turn, BatchingStore stores seats before events.
    cuts = sorted(data.draw(st.sets(st.integers(1, max(1, len(ops) - 1)), max_size=6)))
    turns = [ops[a:b] for a, b in zip([0, *cuts], [*cuts, len(ops)], strict=True) if ops[a:b]]
    turns = [[op for op in turn if op[0] == "seat"] + [op for op in turn if op[0] == "event"] for turn in turns]
    requests = [[_request(op, at) for at, op in enumerate(turn)] for turn in turns]
    results = []
    for batched in (False, True):
        wipe(store)
        outcomes = []
        for turn in requests:
            seats = [r for r in turn if isinstance(r, SeatRequest)]
            events = [r for r in turn if not isinstance(r, SeatRequest)]
            if batched:
                outcomes += (store.reserve_many(seats) if seats else []) + (store.record_many(events) if events else [])
                continue
            for seat in seats:
                try:
                    outcomes.append(store.reserve(seat.room, seat.call_id, seat.role, counted=seat.counted,
                                                  limit=seat.limit, ttl=seat.ttl, muted=seat.muted, now=seat.now,
                                                  bind=seat.bind))
                except SignatureReused as refused:
                    outcomes.append(refused)
            outcomes += [store.record(item.event, now=item.now) for item in events]
        results.append(([_outcome(o) for o in outcomes], [store.room(r) for r in "AB"],
                        store.live_rooms(now=NOW + 30), store.count_events()))
    assert results[1] == results[0]


def test_a_batch_that_fails_stores_none_of_it(store):
    """One transaction: a statement failing part-way leaves nothing of the batch behind, so the
    retry item by item (runtime/batch.py) cannot store anything twice."""
    from roomc.runtime.store import EventRequest, SeatRequest

    first = SeatRequest("A", "c1", "member", True, 5, 60, False, NOW)
    out_of_range = SeatRequest("A", "c2", "member", True, 2 ** 70, 60, False, NOW)  # refused by the database
    with pytest.raises((OverflowError, Unstorable)):  # as the same seat alone raises
        store.reserve_many([first, out_of_range])
    assert store.room("A") is None
    join = EventRequest(event({"ConferenceName": "A", "StatusCallbackEvent": "join", "CallId": "c1", "Timestamp": NOW}))
    assert store.record_many([join, join]) == ["stored", "duplicate"]
    first_again = store.reserve_many([first, first])
    assert [(r.admitted, r.again) for r in first_again] == [(True, False), (True, True)]
    assert [p["callId"] for p in store.room("A")["participants"]] == ["c1"]


def test_two_instances_batches_over_the_same_rooms_in_opposite_orders_never_deadlock(pg_url):
    """Each batch takes its locks in one global order first (runtime/postgres.py _LOCK_ROOMS), so two
    instances storing the same rooms' seats and events, listed in opposite orders, both finish."""
    from roomc.runtime.store import Binding, EventRequest, SeatRequest

    rooms = [f"room-{i}" for i in range(12)]
    errors: list[BaseException] = []

    def instance(name, order):
        with open_store(pg_url) as store:
            for round_ in range(25):
                try:
                    store.reserve_many([SeatRequest(room, f"{name}-{round_}", "member", True, 1000, 60, False,
                                                    bind=Binding(f"sig-{room}-{round_ % 3}", f"{name} {room}",
                                                                 time.time() + 300))
                                        for room in order])
                    store.record_many([EventRequest(event({"ConferenceName": room, "StatusCallbackEvent": "join",
                                                           "CallId": f"{name}-{round_}", "Timestamp": NOW + round_}))
                                       for room in order])
                except BaseException as error:  # noqa: BLE001 - a deadlock is what this test looks for
                    errors.append(error)
                    return

    threads = [threading.Thread(target=instance, args=("one", rooms)),
               threading.Thread(target=instance, args=("two", rooms[::-1]))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    with open_store(pg_url) as store:
        assert store.count_events() == 2 * 25 * len(rooms)


def test_after_join_facts_in_a_batch_are_each_what_they_are_alone(store):
    from roomc.runtime.store import JoinFactsRequest

    store.note("step:a", "waiting", ttl=60, now=NOW)
    ended = event({"room": "x", "event": "join", "callId": "b", "timestamp": NOW + 5})
    store.record(dataclasses.replace(ended, kind="callend", room=""))  # as runtime/calls.py stores a call's end
    requests = [JoinFactsRequest(call, "r", f"step:{call}", NOW + 1) for call in ("a", "b", "c", "a")]
    alone = [store.after_join_facts(r.call_id, r.room, r.step_key, r.now) for r in requests]
    assert store.after_join_facts_many(requests) == alone
    assert alone == [(True, None), (False, NOW + 5), (False, None), (True, None)]


def test_an_event_with_the_widest_fields_is_stored_and_deduplicated(store):
    """256 four-byte characters in room, call and event id made a key past PostgreSQL's btree limit:
    such a key is kept as its digest (runtime/store.py short_dedupe), alike in both stores."""
    wide = "".join(chr(0x20000 + i * 7919 % 0xA6D0) for i in range(255))  # varied: PostgreSQL would compress repeats
    delivered = event({"ConferenceName": wide + "r", "StatusCallbackEvent": "join", "CallId": wide + "c",
                       "EventId": wide + "e", "Timestamp": NOW})
    assert store.record(delivered) == "stored" and store.record(delivered) == "duplicate"
    assert store.count_events() == 1
