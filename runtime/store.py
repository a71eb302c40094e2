"""The store: seats, participants, room sessions and every status event, in SQLite (WAL).

Each worker process opens its own connections (one a thread). Every write is one SQL
statement, atomic by itself: a seat check and its reservation are one INSERT ... SELECT,
and an event's effects are triggers on its INSERT. Writers take turns through a flock.
The state of a participant or a room is re-derived from the stored events each time one
arrives, so the result never depends on the order or number of deliveries.
"""
from __future__ import annotations

import errno
import fcntl
import hashlib
import math
import os
import sqlite3
import threading
import time
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from functools import partial
from typing import Callable, Iterable, Iterator, Mapping, Protocol, Sequence, TypeVar, cast

import orjson

from .normalise import Event

T = TypeVar("T")

SCHEMA = """
CREATE TABLE IF NOT EXISTS seats (
    room TEXT NOT NULL, call_id TEXT NOT NULL, role TEXT, counted INTEGER NOT NULL DEFAULT 1,
    muted0 INTEGER NOT NULL DEFAULT 0, reserved_at REAL, expires_at REAL,
    joined_at REAL, left_at REAL, muted INTEGER, caller TEXT, pool TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (room, call_id)
) WITHOUT ROWID;
-- Keyed by the idempotency key itself, with one secondary index: every B-tree an event
-- touches is another page in each commit, and the events route must keep up with bursts.
CREATE TABLE IF NOT EXISTS events (
    dedupe TEXT PRIMARY KEY, room TEXT, kind TEXT, call_id TEXT,
    at REAL NOT NULL, received_at REAL NOT NULL, recording TEXT, readable INTEGER NOT NULL, body BLOB NOT NULL,
    timed INTEGER NOT NULL DEFAULT 1, clock TEXT
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS events_by_room ON events (room, call_id, kind, at);
CREATE TABLE IF NOT EXISTS rooms (
    room TEXT PRIMARY KEY, started_at REAL, ended_at REAL, recording_url TEXT
);
-- Each verified signature and the one request it was first seen on: Sautikit's signature covers
-- only the body and `t`, so within its window the same signature on another method, path or query
-- is a replay (docs/runtime.md, "Signatures").
-- Rows keyed `redirect:<call id>` record where roomc itself redirected a call: the platform may post
-- one of that call's bodies again (so the same signature) there, which is no replay.
CREATE TABLE IF NOT EXISTS signature_uses (
    signature TEXT NOT NULL, request TEXT NOT NULL, expires_at REAL NOT NULL,
    PRIMARY KEY (signature, request)
) WITHOUT ROWID;

"""
TRIGGERS = """
DROP TRIGGER IF EXISTS derive_participant;
DROP TRIGGER IF EXISTS end_releases;
DROP TRIGGER IF EXISTS derive_room;
DROP TRIGGER IF EXISTS seat_pool_v1_insert;
DROP TRIGGER IF EXISTS seat_pool_v1_update;

-- A roomc of schema version 1 keeps serving while `roomc db upgrade` runs, until it is restarted
-- (docs/deploy.md), and writes seats without a pool: `counted` alone says which is theirs. This
-- roomc writes `counted = 1` exactly for the room's own pool, so a row where the two disagree
-- came from the old one, and its pool follows `counted` (else its supervisors took participants' seats).
CREATE TRIGGER seat_pool_v1_insert AFTER INSERT ON seats
WHEN (NEW.counted = 1) != (NEW.pool = '')
BEGIN
    UPDATE seats SET pool = CASE WHEN NEW.counted = 1 THEN '' ELSE '~extra' END
     WHERE room = NEW.room AND call_id = NEW.call_id;
END;
CREATE TRIGGER seat_pool_v1_update AFTER UPDATE OF counted ON seats
WHEN (NEW.counted = 1) != (NEW.pool = '')
BEGIN
    UPDATE seats SET pool = CASE WHEN NEW.counted = 1 THEN '' ELSE '~extra' END
     WHERE room = NEW.room AND call_id = NEW.call_id;
END;

-- A participant from the set of its events, whatever order they came in: the latest join;
-- the first leave (or room end, once joined) at or after it; the latest mute/unmute, where
-- at equal times unmute wins, so a caller is heard rather than silenced. Untimed events carry
-- their arrival time, which says nothing about order: an untimed leave (or a leave of an
-- untimed join) ends the participant whichever arrived first, so a reordered pair frees the seat.
CREATE TRIGGER derive_participant AFTER INSERT ON events
WHEN NEW.readable = 1 AND NEW.call_id IS NOT NULL AND NEW.kind IN ('join', 'leave', 'mute', 'unmute')
BEGIN
    INSERT INTO seats (room, call_id, counted, joined_at, left_at, muted)
    SELECT NEW.room, NEW.call_id, 1, j.joined,
        (SELECT MIN(CASE WHEN kind = 'leave' AND (timed = 0 OR j.untimed) THEN MAX(at, COALESCE(j.joined, at)) ELSE at END)
           FROM events
          WHERE room = NEW.room
            AND ((call_id = NEW.call_id AND kind = 'leave' AND (at >= COALESCE(j.joined, -1e300) OR timed = 0 OR j.untimed))
                 OR (kind = 'end' AND j.joined IS NOT NULL AND (at >= j.joined OR (j.untimed AND NOT EXISTS (
                        SELECT 1 FROM events AS s WHERE s.room = NEW.room AND s.kind = 'start' AND s.at > events.at)))))),
        (SELECT kind = 'mute' FROM events
          WHERE room = NEW.room AND call_id = NEW.call_id AND kind IN ('mute', 'unmute')
          ORDER BY at DESC, kind = 'unmute' DESC LIMIT 1)
    FROM (SELECT MAX(at) AS joined, MIN(timed) = 0 AS untimed FROM events
          WHERE room = NEW.room AND call_id = NEW.call_id AND kind = 'join') AS j
    WHERE true
    ON CONFLICT (room, call_id) DO UPDATE SET joined_at = excluded.joined_at, left_at = excluded.left_at,
        muted = excluded.muted;
END;

-- A room end releases everyone joined before it (their first exit at or after their join, by
-- the same rule as above). An untimed join cannot be placed before or after an end, so any end
-- not followed by a later start releases it: a join retried after its room ended never holds a
-- seat forever.
CREATE TRIGGER end_releases AFTER INSERT ON events
WHEN NEW.readable = 1 AND NEW.kind = 'end'
BEGIN
    UPDATE seats SET left_at = (
        SELECT MIN(CASE WHEN (e.kind = 'leave' AND (e.timed = 0 OR u.untimed)) OR (e.kind = 'end' AND u.untimed)
                        THEN MAX(e.at, seats.joined_at) ELSE e.at END)
          FROM events AS e,
               (SELECT MIN(timed) = 0 AS untimed FROM events AS j
                 WHERE j.room = seats.room AND j.call_id = seats.call_id AND j.kind = 'join') AS u
         WHERE e.room = seats.room
           AND ((e.call_id = seats.call_id AND e.kind = 'leave' AND (e.at >= seats.joined_at OR e.timed = 0 OR u.untimed))
                OR (e.kind = 'end' AND (e.at >= seats.joined_at OR (u.untimed AND NOT EXISTS (
                    SELECT 1 FROM events AS s WHERE s.room = seats.room AND s.kind = 'start' AND s.at > e.at))))))
     WHERE room = NEW.room AND joined_at IS NOT NULL;
END;

-- A room session: the latest start and end, and the recording of the latest end that has one.
CREATE TRIGGER derive_room AFTER INSERT ON events
WHEN NEW.readable = 1 AND NEW.kind IN ('start', 'end')
BEGIN
    INSERT INTO rooms (room, started_at, ended_at, recording_url)
    SELECT NEW.room,
        (SELECT MAX(at) FROM events WHERE room = NEW.room AND kind = 'start'),
        (SELECT MAX(at) FROM events WHERE room = NEW.room AND kind = 'end'),
        (SELECT recording FROM events WHERE room = NEW.room AND kind = 'end' AND recording IS NOT NULL
          ORDER BY at DESC, dedupe DESC LIMIT 1)
    WHERE true
    ON CONFLICT (room) DO UPDATE SET started_at = excluded.started_at, ended_at = excluded.ended_at,
        recording_url = excluded.recording_url;
END;
"""
# How many digit entries a call has made at a flow with `tries` (runtime/calls.py, docs/runtime.md
# "PIN tries"): kept in the store so that no URL a caller can edit resets it. `last_digits` is a
# hash of the last counted entry (never the digits), so the same digits delivered again within
# the repeat window are not counted twice.
DIGIT_TRIES = """
CREATE TABLE IF NOT EXISTS digit_tries (
    call_id TEXT NOT NULL, flow TEXT NOT NULL, tries INTEGER NOT NULL, last_digits TEXT NOT NULL,
    last_at REAL NOT NULL, expires_at REAL NOT NULL,
    PRIMARY KEY (call_id, flow)
);
CREATE INDEX IF NOT EXISTS digit_tries_expiry ON digit_tries (expires_at);
"""
SCHEMA += DIGIT_TRIES
# One statement: a counted try, or the same entry again within the window (a platform retry),
# which keeps the count; an expired row starts afresh. Every SET reads the row as it was.
_SAME_ENTRY = ("digit_tries.expires_at > :now AND digit_tries.last_digits = excluded.last_digits "
               "AND excluded.last_at - digit_tries.last_at < :window")
COUNT_TRY = f"""
INSERT INTO digit_tries (call_id, flow, tries, last_digits, last_at, expires_at)
VALUES (:call, :flow, 1, :tag, :now, :expires)
ON CONFLICT (call_id, flow) DO UPDATE SET
    tries = CASE WHEN digit_tries.expires_at <= :now THEN 1 WHEN {_SAME_ENTRY} THEN digit_tries.tries
                 ELSE digit_tries.tries + 1 END,
    last_at = CASE WHEN {_SAME_ENTRY} THEN digit_tries.last_at ELSE excluded.last_at END,
    last_digits = excluded.last_digits, expires_at = excluded.expires_at
RETURNING tries
"""

# The schema this roomc reads and writes, for both stores. Bump it with every change to SCHEMA
# (or to runtime/postgres.py's): `roomc db upgrade` takes a store from any older version to this
# one, and a store at another version is refused (docs/runtime.md, "Schema versions").
SCHEMA_VERSION = 4
VERSION_TABLE = """
CREATE TABLE IF NOT EXISTS roomc_schema (
    id INTEGER PRIMARY KEY CHECK (id = 1), version INTEGER NOT NULL, upgraded_at REAL NOT NULL
);
"""

# A seat is taken by a joined caller who has not left, or by a fresh reservation.
ACTIVE = ("((left_at IS NULL AND (joined_at IS NOT NULL OR expires_at > :now)) "
          "OR (left_at IS NOT NULL AND reserved_at > left_at AND expires_at > :now "
          "AND (joined_at IS NULL OR joined_at <= left_at)))")

# Seat pools (docs/language.md, "Seats"): a seat row's `pool` is '' for the room's own seats
# (`maxParticipants`; also every seat a join event creates without a reservation), EXTRA_POOL for
# the seats of roles with `countsTowardCapacity: false` (the deprecated `extraSeats`), or a named pool.
MAIN_POOL = ""
EXTRA_POOL = "~extra"
# The taken seats of the caller's pool, besides the caller's own.
_OTHERS = f"room=:room AND pool=:pool AND call_id != :call AND {ACTIVE}"

# The seat is taken if the role's pool has room besides this call, unless the call already holds
# one under this very role (a retry keeps it). A call holding a seat under another role (a flow's
# fallback join, then the PIN) is moved to the new role's pool, within that pool's limit.
# Held seats (`:held`, JSON {role: seats}, NULL when the pool holds none): a role that starts the
# room has seats kept back from everyone else until its callers fill them. Each held role h other
# than the caller's adds max(0, held_h - present_h) to the count (the caller's own role is never
# kept out of its own held seats); all in this one statement, so no other join can slip in between
# the count and the write.
RESERVE = f"""
INSERT INTO seats (room, call_id, role, counted, pool, muted0, reserved_at, expires_at, caller)
SELECT :room, :call, :role, :counted, :pool, :muted, :now, :expires, :caller
WHERE (SELECT COUNT(*) FROM seats WHERE {_OTHERS})
      + COALESCE((SELECT SUM(MAX(0, h.value - (SELECT COUNT(*) FROM seats WHERE {_OTHERS} AND role = h.key)))
                    FROM json_each(:held) AS h WHERE h.key != :role), 0) < :limit
  AND NOT EXISTS (SELECT 1 FROM seats WHERE room=:room AND call_id=:call AND role IS :role AND {ACTIVE})
ON CONFLICT (room, call_id) DO UPDATE SET role=excluded.role, counted=excluded.counted, pool=excluded.pool,
    muted0=excluded.muted0, reserved_at=excluded.reserved_at, expires_at=excluded.expires_at,
    caller=COALESCE(excluded.caller, seats.caller)
"""


def pool_of(counted: bool, pool: str | None) -> str:
    """The store's pool key for a seat: the named pool, else the room's own or the uncounted roles'."""
    if pool is not None:
        return pool
    return MAIN_POOL if counted else EXTRA_POOL


def held_json(held: Mapping[str, int] | None) -> str | None:
    """Held seats as the reserve statement's parameter (None when the pool holds none, the common case)."""
    held = {role: int(n) for role, n in (held or {}).items() if int(n) > 0}
    return orjson.dumps(held, option=orjson.OPT_SORT_KEYS).decode() if held else None
# What roomc remembers about a call between its requests (runtime/calls.py), one small
# key-value table with expiry: `step:<call>` is the flow step awaiting the call's digits,
# `participant:<room>:<id>` the call a PBX participant id was matched to.
CALL_NOTES = """
CREATE TABLE IF NOT EXISTS call_notes (
    key TEXT PRIMARY KEY, value TEXT NOT NULL, expires_at REAL NOT NULL
) WITHOUT ROWID;
"""


# Calls the sweeper may ask about (runtime/calls.py Sweeper): not a stand-in id, not claimed lately
# (an unexpired `asked:` note), holding a reservation about to lapse or only joined seats not yet left.
CLAIMABLE = """
SELECT s.call_id, MIN(s.joined_at IS NOT NULL) AS joined FROM seats s
LEFT JOIN call_notes n ON n.key = 'asked:' || s.call_id
WHERE s.left_at IS NULL AND (s.joined_at IS NOT NULL OR (s.expires_at > :now AND s.expires_at <= :horizon))
  AND (n.expires_at IS NULL OR n.expires_at <= :now)
  AND s.call_id NOT LIKE 'anonymous-%' AND s.call_id NOT LIKE 'participant:%' AND s.call_id NOT LIKE 'caller:%'
GROUP BY s.call_id ORDER BY MAX(n.expires_at) IS NOT NULL, MAX(n.expires_at), MIN(s.expires_at) LIMIT :limit
"""


# After a write times out, later writes in this process get this long a try until one succeeds,
# so callers queued behind a locked store are answered quickly rather than one deadline each.
STRUGGLING_SECONDS = 5.0
# The app runs on the worker's event loop, so a write that waits blocks every other request of
# that worker (/healthz included): one write waits at most STORE_WAIT for the lock, whatever the
# request's own deadline; while the store is struggling, one write per PROBE_EVERY gets a PROBE_WAIT
# try and the rest are refused at once, so a queue of callers drains in milliseconds.
STORE_WAIT = 0.25
PROBE_EVERY = 0.1
PROBE_WAIT = 0.05


def _gil_holding_flock() -> Callable[[int, int], bool] | None:
    """libc's flock called without releasing the GIL (ctypes.PyDLL), for the non-blocking tries only.

    fcntl.flock lets go of the GIL around every call, even one that cannot block; on the event
    loop's thread each let-go is a chance for granian's I/O thread to take the GIL, and the
    request then waits to get it back (two per write). A LOCK_NB try returns at once either way.
    """
    if os.environ.get("ROOMC_FLOCK_FAST", "1") == "0":
        return None
    try:
        import ctypes

        flock = ctypes.PyDLL(None, use_errno=True).flock
    except (OSError, AttributeError):
        return None
    flock.argtypes, flock.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int

    def try_flock(fd: int, operation: int) -> bool:
        if flock(fd, operation) == 0:
            return True
        error = ctypes.get_errno()
        if error in (errno.EWOULDBLOCK, errno.EINTR):
            return False
        raise OSError(error, os.strerror(error))
    return try_flock


_try_flock = _gil_holding_flock()


def _flock_now(lock: int, operation: int) -> bool:
    """One non-blocking flock (operation includes LOCK_NB, or is LOCK_UN): True if it took effect."""
    if _try_flock is not None:
        return _try_flock(lock, operation)  # False: held elsewhere, or interrupted (the caller tries again)
    try:
        fcntl.flock(lock, operation)
        return True
    except BlockingIOError:
        return False


def _flock_until(lock: int, deadline: float) -> None:
    """flock with a deadline: try at once, then poll in short, growing steps."""
    # Another worker holds it for one write, about 0.1 ms: poll finely (30 us, growing to 0.5 ms).
    # Polling in steps of 0.1 ms doubling to 2 ms left a waiting worker, whose event loop waits
    # with it, asleep long after the lock was free: two workers answered 10-30 % fewer events and
    # joins (bench: events 2,264-2,684/s against 2,636-3,174 with the finer steps, alternating).
    pause = 0.00003
    while not _flock_now(lock, fcntl.LOCK_EX | fcntl.LOCK_NB):
        left = deadline - time.monotonic()
        if left <= 0:
            raise StoreTimeout("another worker held the store past the deadline")
        time.sleep(min(pause, left))
        pause = min(pause * 1.3, 0.0005)


def _add_missing_columns(db: sqlite3.Connection) -> None:
    """Columns added since a store file was created (CREATE TABLE IF NOT EXISTS leaves old tables as they were)."""
    have = {row[1] for row in db.execute("PRAGMA table_info(events)")}
    for column, declaration in (("timed", "INTEGER NOT NULL DEFAULT 1"), ("clock", "TEXT")):
        if column not in have:
            db.execute(f"ALTER TABLE events ADD COLUMN {column} {declaration}")
    seats = {row[1] for row in db.execute("PRAGMA table_info(seats)")}
    if "caller" not in seats:
        db.execute("ALTER TABLE seats ADD COLUMN caller TEXT")
    if "pool" not in seats:
        # Version 2: seats are counted per pool. Before, an uncounted seat was `counted = 0`.
        db.execute("ALTER TABLE seats ADD COLUMN pool TEXT NOT NULL DEFAULT ''")
        db.execute(f"UPDATE seats SET pool = '{EXTRA_POOL}' WHERE counted = 0")


class SchemaMismatch(Exception):
    """A store whose recorded schema version is not the one this roomc understands."""

    def __init__(self, location: str, found: int):
        self.location, self.found = location, found
        if found > SCHEMA_VERSION:
            message = (f"the store {location} has schema version {found}, newer than this roomc understands "
                       f"({SCHEMA_VERSION}): run a newer roomc against it")
        else:
            what = "has no schema version (created before versions were recorded)" if found == 0 else \
                f"has schema version {found}"
            message = (f"the store {location} {what}; this roomc needs version {SCHEMA_VERSION}: "
                       f"run `roomc db upgrade --db {location}` (back it up first)")
        super().__init__(message)


class ForeignTables(SchemaMismatch):
    """A store holding tables of roomc's names that roomc did not make (another application's)."""

    def __init__(self, location: str, problems: list[str]):
        self.location, self.found, self.problems = location, 0, problems
        Exception.__init__(self, f"the store {location} holds tables that are not roomc's ({'; '.join(problems)}): "
                           "roomc changes nothing in it; give roomc a database of its own (or point --db at the right one)")


# Every table roomc makes and its columns; those in OPTIONAL_COLUMNS were added by later
# versions (an older roomc's table lacks them). A table of one of these names whose columns are
# not these is another application's, and `roomc db upgrade` must not adopt it.
TABLE_COLUMNS = {
    "seats": {"room", "call_id", "role", "counted", "muted0", "reserved_at", "expires_at", "joined_at", "left_at",
              "muted", "caller", "pool"},
    "events": {"dedupe", "room", "kind", "call_id", "at", "received_at", "recording", "readable", "body", "timed",
               "clock"},
    "rooms": {"room", "started_at", "ended_at", "recording_url"},
    "signature_uses": {"signature", "request", "expires_at"},
    "call_notes": {"key", "value", "expires_at"},
    "dialled_calls": {"call_id", "room", "role", "session_id", "dialled_to", "dialled_at"},
    "digit_tries": {"call_id", "flow", "tries", "last_digits", "last_at", "expires_at"},
    "roomc_schema": {"id", "version", "upgraded_at"},
}
OPTIONAL_COLUMNS = {"seats": {"caller", "pool"}, "events": {"timed", "clock"}}


def foreign_tables(found: Mapping[str, Iterable[str]]) -> list[str]:
    """Why each table in `found` (name -> its columns) is not roomc's; empty when all are.

    Checked where no version is recorded: a recorded one (a newer roomc's columns included) is trusted.
    """
    problems = []
    for table, columns in sorted(found.items()):
        have, want = set(columns), TABLE_COLUMNS[table]
        missing = want - OPTIONAL_COLUMNS.get(table, set()) - have
        if have - want or missing:
            extra = ", ".join(sorted(have - want)) or "none"
            problems.append(f"table {table} has columns roomc's does not ({extra})"
                            + (f" and lacks {', '.join(sorted(missing))}" if missing else ""))
    return problems


@dataclass(frozen=True)
class Admission:
    admitted: bool
    taken: int | None  # seats taken in the caller's pool (None: not counted, to keep the hot path short)
    limit: int
    again: bool = False  # a retried webhook for a call that already holds its seat


class StoreTimeout(Exception):
    """The store could not be reached before the request's deadline (locked, slow or failing)."""


class RoomBusy(StoreTimeout):
    """One room's lock stayed taken past the wait allowed for it (another session holds it): that room's
    writes fail, not the database's. A batch that meets it is stored again without that room (runtime/batch.py)."""


# The deadline of the webhook request being served (runtime/app.py sets it around each route): a write
# made for it without a deadline of its own (a call-end's leaves, a flow's notes) keeps to it, so no
# write on a request's behalf waits out SQLite's busy timeout while the worker's loop waits with it.
REQUEST_DEADLINE: ContextVar[float | None] = ContextVar("roomc_request_deadline", default=None)


class Unstorable(ValueError):
    """The store refuses this item for what it holds (a value out of range, a key past a size limit):
    retrying cannot help, so the events route answers 422, not 503."""


@dataclass(frozen=True)
class Binding:
    """A verified signature to bind to the request it came with (see Store.bind_signature), passed
    to `reserve` so a signed join binds and takes its seat in one store operation."""

    signature: str
    request: str
    expires_at: float
    grant: str | None = None


class SignatureReused(Exception):
    """`reserve(bind=...)`: the signature is bound to another request (a replay); no seat was taken."""


@dataclass(frozen=True, slots=True)
class SeatRequest:
    """One `reserve` call's arguments, so that several can reach the store as one batch (`reserve_many`)."""

    room: str
    call_id: str
    role: str
    counted: bool
    limit: int
    ttl: float
    muted: bool
    now: float | None = None
    caller: str | None = None
    bind: Binding | None = None
    pool: str | None = None
    held: Mapping[str, int] | None = None


@dataclass(frozen=True, slots=True)
class EventRequest:
    """One `record` call's arguments, for `record_many`."""

    event: Event
    now: float | None = None


@dataclass(frozen=True, slots=True)
class JoinFactsRequest:
    """One `after_join_facts` call's arguments, for `after_join_facts_many`."""

    call_id: str
    room: str
    step_key: str
    now: float | None = None


def only(outcomes: list) -> object:
    """The one outcome of a batch of one: raised if it is an exception (a `*_many` result), else returned."""
    outcome = outcomes[0]
    if isinstance(outcome, BaseException):
        raise outcome
    return outcome


class Store(Protocol):
    """What the runtime needs from a store; SQLite now, a networked one later.

    Writes take an optional `deadline` (a time.monotonic() value): past it they raise
    StoreTimeout instead of waiting, so a caller is never kept waiting on a locked store.
    """

    def reserve(self, room: str, call_id: str, role: str, *, counted: bool, limit: int, ttl: float,
                muted: bool, now: float | None = None, deadline: float | None = None,
                caller: str | None = None, bind: Binding | None = None, pool: str | None = None,
                held: Mapping[str, int] | None = None) -> Admission: ...

    def record(self, event: Event, *, now: float | None = None, deadline: float | None = None) -> str: ...

    # Several seats or events in one transaction (runtime/batch.py): each outcome is what the single
    # call would return, or the exception it would raise for that item alone; a whole batch's failure raises.
    def reserve_many(self, seats: Sequence[SeatRequest], *,
                     deadline: float | None = None) -> list[Admission | SignatureReused]: ...

    def record_many(self, events: Sequence[EventRequest], *, deadline: float | None = None) -> list[str]: ...

    def bind_signature(self, signature: str, request: str, *, expires_at: float, now: float | None = None,
                       deadline: float | None = None, grant: str | None = None) -> bool: ...

    def grant_redirect(self, grant: str, request: str, *, expires_at: float,
                       deadline: float | None = None) -> None: ...

    def health(self) -> dict: ...

    def live_rooms(self, now: float | None = None) -> list[dict]: ...

    def room(self, name: str) -> dict | None: ...

    def recent_events(self, room: str, limit: int = 10) -> list[dict]: ...

    def ended_rooms(self, limit: int = 10) -> list[dict]: ...

    def change_marker(self) -> object: ...

    # What roomc remembers about a call between requests (runtime/calls.py).
    def note(self, key: str, value: str, *, ttl: float, now: float | None = None) -> None: ...

    def noted(self, key: str, now: float | None = None) -> str | None: ...

    def forget(self, key: str, now: float | None = None) -> None: ...

    def call_by_caller(self, room: str, caller: str, kind: str, now: float | None = None) -> str | None: ...

    def count_try(self, call_id: str, flow: str, tag: str, *, window: float, ttl: float, now: float | None = None,
                  deadline: float | None = None) -> int: ...

    def rooms_of_call(self, call_id: str) -> list[str]: ...

    def live_rooms_of_call(self, call_id: str, now: float | None = None) -> list[str]: ...

    def release_reservation(self, room: str, call_id: str, *, now: float | None = None,
                            deadline: float | None = None) -> bool: ...

    def after_join_facts(self, call_id: str, room: str, step_key: str, now: float | None = None) \
            -> tuple[bool, float | None]: ...

    def after_join_facts_many(self, requests: Sequence[JoinFactsRequest], *,
                              deadline: float | None = None) -> list[tuple[bool, float | None]]: ...

    def claim_calls_to_confirm(self, *, within: float, limit: int, hold: float, hold_joined: float,
                               now: float | None = None) -> list[dict]: ...

    def extend_reservations(self, call_id: str, *, until: float, now: float | None = None) -> int: ...


class SQLiteStore:
    """The embedded store: a SQLite file in WAL mode, safe across threads and processes."""

    def __init__(self, path: str = "roomc.db", busy_timeout_ms: int = 10_000, checkpoint_every: float = 1.0,
                 wal_limit_frames: int = 65_536, upgrade: bool = False):
        self.path = path
        self.busy_timeout_ms = busy_timeout_ms
        self.checkpoint_every = checkpoint_every
        self.wal_limit_frames = wal_limit_frames  # 65,536 frames of 1 KiB pages: about 68 MB on disk
        self._local = threading.local()
        self._thread_lock = threading.Lock()
        self._lock_path = path + ".lock"
        self._lock_file: int | None = None
        self._lock_pid = -1
        self._closed = threading.Event()
        self._checkpointer: threading.Thread | None = None
        self._connections: list[sqlite3.Connection] = []  # every thread's, so close() reaches them all
        self._struggling_until = 0.0  # monotonic time until which writes get only a short try
        self._last_probe = 0.0
        self.store_wait = STORE_WAIT
        self._last_trouble: float | None = None
        db = self._connection()
        # Workers start together; switching to WAL needs a moment alone with the file, so retry briefly.
        for attempt in range(100):
            try:
                # Before anything is set or made: another application's file is refused untouched.
                found = sqlite_schema_version(db, path)
                # Small pages: each commit copies every page it touched into the WAL, and an event
                # touches four or five (measured: 200 -> 170 us an event). Only new files take it.
                db.execute("PRAGMA page_size=1024")
                db.execute("PRAGMA journal_mode=WAL")
                if found is None or (upgrade and found != SCHEMA_VERSION):
                    _upgrade(db, path)  # an empty file is given the schema; an older one only when asked
                elif found != SCHEMA_VERSION:
                    raise SchemaMismatch(path, found)
                break
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or attempt == 99:
                    raise
                time.sleep(0.05)
        self._add_call_notes(db)

    def _connection(self) -> sqlite3.Connection:
        if self._closed.is_set():
            raise sqlite3.ProgrammingError(f"the store {self.path} is closed")
        db = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(self.path, timeout=self.busy_timeout_ms / 1000, isolation_level=None,
                                 check_same_thread=False)
            db.execute(f"PRAGMA busy_timeout={self.busy_timeout_ms}")
            # NORMAL in WAL mode is durable against process crashes; only a power cut can lose the last commits.
            db.execute("PRAGMA synchronous=NORMAL")
            # Checkpoints (and their fsyncs) run on a background thread, not inside a request's commit.
            db.execute("PRAGMA wal_autocheckpoint=0")
            db.row_factory = sqlite3.Row
            self._local.db = db
            self._connections.append(db)
        return db

    def _process_lock(self) -> int:
        # One descriptor per process: flock excludes other processes, the thread lock our own threads.
        if self._lock_pid != os.getpid():
            self._lock_file = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o600)
            self._lock_pid = os.getpid()
            self._checkpointer = threading.Thread(target=self._checkpoint_forever, name="roomc-checkpoint", daemon=True)
            self._checkpointer.start()
        assert self._lock_file is not None
        return self._lock_file

    def _checkpoint_forever(self) -> None:
        """Fold the WAL back into the database every second, beside the writers.

        Only a checkpoint that completes lets the next write start the WAL over, and one that
        runs beside busy writers never does: under sustained load the WAL grew without bound
        (380 MB after 160,000 seats) and every write slowed as it grew. So once the WAL passes
        `wal_limit_frames`, the frames written during the copy are folded in with the writers'
        lock held. That holds every writer for 7-9 ms under load (mostly two fsyncs), so it waits
        for a large WAL rather than running each second (measured: p99 rose by a few ms when it did).
        """
        db = sqlite3.connect(self.path, timeout=self.busy_timeout_ms / 1000, isolation_level=None)
        next_prune = time.monotonic() + 60
        while not self._closed.wait(self.checkpoint_every):
            try:
                if time.monotonic() >= next_prune:
                    next_prune = time.monotonic() + 60
                    self.forget_expired_signatures()
                _busy, frames, _copied = db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                if frames >= self.wal_limit_frames:
                    # Catch up on what piled up during the first copy, so the locked one is short
                    # (measured under load: held 11-14 ms without this pass, 7-9 ms with it).
                    db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                    with self._exclusive():
                        db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            except sqlite3.Error:
                pass  # busy or closing; the next round catches up
        db.close()

    def close(self) -> None:
        """Stop the checkpoint thread and close every connection (later use raises
        sqlite3.ProgrammingError); a server process never needs to."""
        self._closed.set()
        if self._checkpointer is not None and self._lock_pid == os.getpid():
            self._checkpointer.join(timeout=self.busy_timeout_ms / 1000)
        for db in self._connections:
            db.close()
        self._connections.clear()
        if self._lock_file is not None and self._lock_pid == os.getpid():
            os.close(self._lock_file)
            self._lock_file, self._lock_pid = None, -1

    def __enter__(self) -> "SQLiteStore":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @contextmanager
    def _exclusive(self, deadline: float | None = None) -> Iterator[None]:
        """One writer at a time across threads and processes, waiting at most until `deadline`.

        The first flock attempt almost always succeeds (a write holds it for ~0.1 ms); only when
        another process holds it does the writer poll, in steps of 30 us to 0.5 ms, so a bounded wait
        costs the common case nothing and SQLite's own coarse busy sleeps (1, 2, 5 ... 100 ms) are
        never reached between our own writers.
        """
        if deadline is None:
            acquired = self._thread_lock.acquire()
        else:
            acquired = self._thread_lock.acquire(timeout=max(0.0, deadline - time.monotonic()))
        if not acquired:
            raise StoreTimeout("another thread of this worker held the store past the deadline")
        try:
            lock = self._process_lock()
            if deadline is None:
                fcntl.flock(lock, fcntl.LOCK_EX)
            else:
                _flock_until(lock, deadline)
            try:
                yield
            finally:
                if not _flock_now(lock, fcntl.LOCK_UN):
                    fcntl.flock(lock, fcntl.LOCK_UN)  # interrupted: unlock for certain, the GIL let go or not
        finally:
            self._thread_lock.release()

    @contextmanager
    def _write(self, deadline: float | None = None) -> Iterator[sqlite3.Connection]:
        """This thread's connection with the writers' lock held. Every write is one statement
        (triggers included), which SQLite makes atomic by itself.

        With a deadline, SQLite's own wait for a lock held outside roomc (an operator's shell,
        a backup) is bounded by what is left of it and by STORE_WAIT, and a store that has just
        timed out is probed by one write at a time until one succeeds, so a queue of callers
        drains quickly instead of each waiting in turn.
        """
        db = self._connection()
        if deadline is None:
            deadline = REQUEST_DEADLINE.get()
        if deadline is not None:
            now = time.monotonic()
            if now < self._struggling_until:
                if now - self._last_probe < PROBE_EVERY:
                    raise StoreTimeout("the store is not answering (another request is probing it)")
                self._last_probe = now
                deadline = min(deadline, now + PROBE_WAIT)
            else:
                deadline = min(deadline, now + self.store_wait)
        try:
            with self._exclusive(deadline):
                if deadline is not None:
                    self._bound_busy_wait(db, deadline)
                elif getattr(self._local, "busy_ms", self.busy_timeout_ms) != self.busy_timeout_ms:
                    db.execute(f"PRAGMA busy_timeout={self.busy_timeout_ms}")
                    self._local.busy_ms = self.busy_timeout_ms
                yield db
        except StoreTimeout:
            self._note_trouble()
            raise
        except sqlite3.OperationalError as exc:
            if deadline is not None and "locked" in str(exc):
                self._note_trouble()
                raise StoreTimeout(f"store locked past the deadline: {exc}") from exc
            raise
        self._struggling_until = 0.0

    def _bound_busy_wait(self, db: sqlite3.Connection, deadline: float) -> None:
        remaining_ms = int((deadline - time.monotonic()) * 1000)
        if remaining_ms <= 0:
            raise StoreTimeout("deadline passed while waiting for the writers' lock")
        bucket = max(1, remaining_ms // 50 * 50)  # re-set the pragma only when it moves by 50 ms
        if getattr(self._local, "busy_ms", None) != bucket:
            db.execute(f"PRAGMA busy_timeout={bucket}")
            self._local.busy_ms = bucket

    def _note_trouble(self) -> None:
        self._struggling_until = time.monotonic() + STRUGGLING_SECONDS
        self._last_trouble = time.time()

    def health(self) -> dict:
        """Whether writes have been timing out lately; never waits on the store."""
        degraded = time.monotonic() < self._struggling_until
        return {"store": "degraded" if degraded else "ok",
                **({"lastTimeout": _iso(self._last_trouble)} if self._last_trouble else {})}

    def reserve(self, room: str, call_id: str, role: str, *, counted: bool, limit: int, ttl: float,
                muted: bool, now: float | None = None, deadline: float | None = None,
                caller: str | None = None, bind: Binding | None = None, pool: str | None = None,
                held: Mapping[str, int] | None = None) -> Admission:
        """Take a seat for this call if its pool has one free; a call that holds one under this role keeps it,
        one under another role is moved to this role's pool if it has room (`caller` finds the call again
        from events that name only the caller). With `bind`, the signature is bound first (SignatureReused,
        and no seat, if it belongs to another request). `pool` names the pool (default: the room's own, or
        the uncounted roles' when not `counted`); `held` the seats kept back in it for roles that start the room."""
        return cast(Admission, only(self.reserve_many(
            [SeatRequest(room, call_id, role, counted, limit, ttl, muted, now, caller, bind, pool, held)],
            deadline=deadline)))

    def reserve_many(self, seats: Sequence[SeatRequest], *,
                     deadline: float | None = None) -> list[Admission | SignatureReused]:
        """Each seat as `reserve` takes it, in order, under one writers' lock and in one transaction (one
        commit for them all: half the cost of a seat on its own, measured)."""
        with self._write(deadline) as db:
            return self._in_one_transaction(db, [partial(self._take_seat, db, seat) for seat in seats])

    def _take_seat(self, db: sqlite3.Connection, seat: SeatRequest) -> Admission | SignatureReused:
        now = time.time() if seat.now is None else seat.now
        bind = seat.bind
        if bind is not None and not self._bind(db, bind.signature, bind.request, bind.expires_at, now, bind.grant):
            return SignatureReused(bind.request)
        pool = pool_of(seat.counted, seat.pool)
        # `counted` marks the room's own seats (what /rooms shows as seatsTaken).
        values = {"room": seat.room, "call": seat.call_id, "role": seat.role, "counted": int(pool == MAIN_POOL),
                  "muted": int(seat.muted), "now": now, "expires": now + seat.ttl, "limit": seat.limit,
                  "caller": seat.caller or None, "pool": pool, "held": held_json(seat.held)}
        # One statement: the seat is taken only if the pool has room and the call holds none under this role.
        if db.execute(RESERVE, values).rowcount == 1:
            return Admission(True, None, seat.limit)
        mine, count = db.execute(
            f"SELECT (SELECT {ACTIVE} AND role IS :role FROM seats WHERE room=:room AND call_id=:call), "
            f"(SELECT COUNT(*) FROM seats WHERE room=:room AND pool=:pool AND {ACTIVE})", values).fetchone()
        if not mine:
            # Refused under the new role: a reservation it held under another one (not yet in the
            # room) is let go, or it would hold a seat for a caller who was just sent elsewhere.
            db.execute("UPDATE seats SET expires_at = MIN(expires_at, :now) "
                       "WHERE room=:room AND call_id=:call AND joined_at IS NULL", values)
        return Admission(bool(mine), count, seat.limit, again=bool(mine))

    @staticmethod
    def _in_one_transaction(db: sqlite3.Connection, steps: list[Callable[[], T]]) -> list[T]:
        """Run each step; more than one inside one explicit transaction, rolled back whole on any error."""
        if len(steps) == 1:
            return [steps[0]()]  # one statement (or two): autocommit makes each atomic by itself
        db.execute("BEGIN IMMEDIATE")
        try:
            outcomes = [step() for step in steps]
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        return outcomes

    def record(self, event: Event, *, now: float | None = None, deadline: float | None = None) -> str:
        """Store one status event; `stored`, `duplicate` or `unreadable` (kept raw, never dropped).

        One INSERT: the triggers re-derive the participant and room from the stored events
        inside the same statement, so a crash can never leave the two out of step. An
        unreadable body is keyed by its bytes (and event id), so a replay is not stored again.
        """
        return cast(str, only(self.record_many([EventRequest(event, now)], deadline=deadline)))

    def record_many(self, events: Sequence[EventRequest], *, deadline: float | None = None) -> list[str]:
        """Each event as `record` stores it, in order, in one transaction (one commit for them all)."""
        with self._write(deadline) as db:
            return self._in_one_transaction(db, [partial(self._store_event, db, item) for item in events])

    @staticmethod
    def _store_event(db: sqlite3.Connection, item: EventRequest) -> str:
        event = item.event
        now = time.time() if item.now is None else item.now
        body = _raw_json(event.raw)
        full = full_dedupe(event, body)
        dedupe = short_dedupe(full)
        if dedupe != full and db.execute("SELECT 1 FROM events WHERE dedupe = ?", (full,)).fetchone():
            return "duplicate"  # stored before keys this long were shortened (a redelivery after an upgrade)
        cursor = db.execute(
            "INSERT INTO events (dedupe, room, kind, call_id, at, received_at, recording, readable, body, timed, clock) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (dedupe) DO NOTHING",
            (dedupe, event.room, event.kind, event.call, event.at, now, event.recording, int(event.readable), body,
             int(event.timed), event.clock))
        if cursor.rowcount == 0:
            return "duplicate"
        return "stored" if event.readable else "unreadable"

    def bind_signature(self, signature: str, request: str, *, expires_at: float, now: float | None = None,
                       deadline: float | None = None, grant: str | None = None) -> bool:
        """Bind a verified signature to the request it came with; False if it is already bound to
        another request (a replay on another method, path or query). An exact retry is True, and so
        is a request that `grant` (see grant_redirect) was given for."""
        now = time.time() if now is None else now
        with self._write(deadline) as db:
            return self._bind(db, signature, request, expires_at, now, grant)

    @staticmethod
    def _bind(db: sqlite3.Connection, signature: str, request: str, expires_at: float, now: float,
              grant: str | None) -> bool:
        # One statement: the first use binds, unless a live binding of this signature exists.
        if db.execute(
                "INSERT INTO signature_uses (signature, request, expires_at) SELECT ?, ?, ? "
                "WHERE NOT EXISTS (SELECT 1 FROM signature_uses WHERE signature = ? AND expires_at >= ?) "
                "ON CONFLICT (signature, request) DO UPDATE SET expires_at = excluded.expires_at",
                (signature, request, expires_at, signature, now)).rowcount == 1:
            return True
        row = db.execute("SELECT 1 FROM signature_uses WHERE signature IN (?, ?) AND request = ? AND expires_at >= ?",
                         (signature, grant or signature, request, now)).fetchone()
        return row is not None

    def grant_redirect(self, grant: str, request: str, *, expires_at: float, deadline: float | None = None) -> None:
        """Record that roomc itself redirected a call to `request`: that call's signed bodies may be
        posted there too (the platform may repeat a body, so its signature, on the redirect)."""
        with self._write(deadline) as db:
            db.execute("INSERT INTO signature_uses (signature, request, expires_at) VALUES (?, ?, ?) "
                       "ON CONFLICT (signature, request) DO UPDATE SET expires_at = MAX(expires_at, excluded.expires_at)",
                       (grant, request, expires_at))

    def forget_expired_signatures(self, now: float | None = None) -> int:
        """Delete signature bindings past their window; the checkpoint thread calls it each minute."""
        now = time.time() if now is None else now
        with self._write() as db:
            return db.execute("DELETE FROM signature_uses WHERE expires_at < ?", (now,)).rowcount

    def live_rooms(self, now: float | None = None) -> list[dict]:
        """Rooms with a taken seat, or started and not yet ended, with their counts."""
        now = time.time() if now is None else now
        db = self._connection()
        rows = db.execute(
            f"SELECT s.room AS room, SUM(CASE WHEN {ACTIVE} AND s.joined_at IS NOT NULL THEN 1 ELSE 0 END) AS joined, "
            f"SUM(CASE WHEN {ACTIVE} AND s.joined_at IS NULL THEN 1 ELSE 0 END) AS reserved, "
            f"SUM(CASE WHEN {ACTIVE} AND s.counted THEN 1 ELSE 0 END) AS counted FROM seats s GROUP BY s.room",
            {"now": now}).fetchall()
        return live_room_views(rows, {r["room"]: r for r in db.execute("SELECT * FROM rooms")})

    def room(self, name: str) -> dict | None:
        """One room as operators read it: session times, participants and the recording URL."""
        db = self._connection()
        session = db.execute("SELECT * FROM rooms WHERE room=?", (name,)).fetchone()
        seats = db.execute("SELECT * FROM seats WHERE room=? ORDER BY reserved_at IS NULL, reserved_at, joined_at, call_id",
                           (name,)).fetchall()
        keys = db.execute(_KEYS_QUERY_SQLITE, (name,)).fetchall() if seats else ()
        return room_view(name, session, seats, keys)

    def recent_events(self, room: str, limit: int = 10) -> list[dict]:
        """The room's last `limit` readable events, newest first (the live page's event list)."""
        rows = self._connection().execute(
            "SELECT kind, call_id, at, received_at FROM events WHERE room=? AND readable=1 "
            "ORDER BY at DESC, received_at DESC LIMIT ?", (room, limit)).fetchall()
        return [{"event": r["kind"], "callId": r["call_id"], "at": _iso(r["at"]), "receivedAt": _iso(r["received_at"])}
                for r in rows]

    def ended_rooms(self, limit: int = 10) -> list[dict]:
        """The `limit` most recently ended room sessions with their recordings, newest first."""
        rows = self._connection().execute(
            "SELECT room, started_at, ended_at, recording_url FROM rooms WHERE ended_at IS NOT NULL "
            "AND (started_at IS NULL OR ended_at >= started_at) ORDER BY ended_at DESC LIMIT ?", (limit,)).fetchall()
        return [{"name": r["room"], "started": _iso(r["started_at"]), "ended": _iso(r["ended_at"]),
                 "recordingUrl": r["recording_url"]} for r in rows]

    def change_marker(self) -> object:
        """A value that changes whenever anyone commits a write, for cheap polling (the live page's stream).

        Comparable only between calls on the same thread: `data_version` moves when another
        connection (any process) commits, `total_changes` when this one does. No table is read.
        """
        db = self._connection()
        return (db.execute("PRAGMA data_version").fetchone()[0], db.total_changes)

    # -- what roomc remembers about a call between requests (runtime/calls.py) ----------------
    def _add_call_notes(self, db: sqlite3.Connection) -> None:
        """The call_notes table, and the seats.caller column on a store file created before it."""
        db.executescript(CALL_NOTES)
        if "caller" not in {row[1] for row in db.execute("PRAGMA table_info(seats)")}:
            try:
                db.execute("ALTER TABLE seats ADD COLUMN caller TEXT")
            except sqlite3.OperationalError as exc:  # another worker added it first
                if "duplicate column" not in str(exc):
                    raise

    def note(self, key: str, value: str, *, ttl: float, now: float | None = None) -> None:
        """Remember `value` under `key` for `ttl` seconds (replacing what was there)."""
        now = time.time() if now is None else now
        with self._write() as db:
            db.execute("INSERT INTO call_notes (key, value, expires_at) VALUES (?, ?, ?) ON CONFLICT (key) "
                       "DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at", (key, value, now + ttl))

    def noted(self, key: str, now: float | None = None) -> str | None:
        """What is remembered under `key`, unless it has expired."""
        now = time.time() if now is None else now
        row = self._connection().execute("SELECT value FROM call_notes WHERE key = ? AND expires_at > ?",
                                         (key, now)).fetchone()
        return None if row is None else row[0]

    def forget(self, key: str, now: float | None = None) -> None:
        """Drop what is remembered under `key`, and every note that has expired."""
        now = time.time() if now is None else now
        with self._write() as db:
            db.execute("DELETE FROM call_notes WHERE key = ? OR expires_at <= ?", (key, now))

    def count_try(self, call_id: str, flow: str, tag: str, *, window: float, ttl: float, now: float | None = None,
                  deadline: float | None = None) -> int:
        """Count one digit entry of this call at `flow` and return the count so far: atomic, so concurrent
        posts each get their own number; an entry with the same `tag` within `window` seconds of the last
        counted one is the same entry delivered again and is not counted. Expires `ttl` after the last."""
        now = time.time() if now is None else now
        with self._write(deadline) as db:
            row = db.execute(COUNT_TRY, {"call": call_id, "flow": flow, "tag": tag, "now": now,
                                         "expires": now + ttl, "window": window}).fetchone()
            db.execute("DELETE FROM digit_tries WHERE expires_at <= ?", (now,))
        return int(row[0])

    def call_by_caller(self, room: str, caller: str, kind: str, now: float | None = None) -> str | None:
        """The call a participant event names only by its caller's number: for a `join`, the newest
        seat not yet in the room; otherwise the earliest-joined one still in it; else the newest.
        For `keys` (an in-room key press), the one call in the room now with that number, else None:
        caller ids are easily spoofed, and a stranger's press must not land on someone else's call."""
        now = time.time() if now is None else now
        db = self._connection()
        if kind == "keys":
            rows = db.execute("SELECT call_id FROM seats WHERE room = ? AND caller = ? AND left_at IS NULL "
                              "AND (joined_at IS NOT NULL OR expires_at > ?) LIMIT 2", (room, caller, now)).fetchall()
            return rows[0][0] if len(rows) == 1 else None
        order = ("joined_at IS NOT NULL, reserved_at DESC" if kind == "join"
                 else "(joined_at IS NULL OR left_at IS NOT NULL), joined_at, reserved_at DESC")
        row = db.execute(f"SELECT call_id FROM seats WHERE room = ? AND caller = ? ORDER BY {order} LIMIT 1",
                         (room, caller)).fetchone()
        return None if row is None else row[0]

    def live_rooms_of_call(self, call_id: str, now: float | None = None) -> list[str]:
        """Every room where this call holds a seat now (joined, or freshly reserved)."""
        now = time.time() if now is None else now
        return [row[0] for row in self._connection().execute(
            f"SELECT room FROM seats WHERE call_id = :call AND {ACTIVE} ORDER BY room", {"call": call_id, "now": now})]

    def release_reservation(self, room: str, call_id: str, *, now: float | None = None,
                            deadline: float | None = None) -> bool:
        """Give back a seat this call only reserved (never joined): a later answer seated it elsewhere."""
        now = time.time() if now is None else now
        with self._write(deadline) as db:
            return db.execute(
                "UPDATE seats SET expires_at = :now WHERE room = :room AND call_id = :call AND joined_at IS NULL "
                "AND left_at IS NULL AND expires_at > :now", {"room": room, "call": call_id, "now": now}).rowcount == 1

    def rooms_of_call(self, call_id: str) -> list[str]:
        """Every room where this call holds or held a seat."""
        return [row[0] for row in self._connection().execute(
            "SELECT room FROM seats WHERE call_id = ? ORDER BY room", (call_id,))]

    def after_join_facts(self, call_id: str, room: str, step_key: str, now: float | None = None) \
            -> tuple[bool, float | None]:
        """What a stored join event must act on, in one read: whether a flow step still waits under
        `step_key`, and when (if ever) a call-completed/failed event said the call ended (one that spoke for
        `room` alone, an unsigned event believed for its room's token, counts only there)."""
        now = time.time() if now is None else now
        waiting, ended = self._connection().execute(
            "SELECT EXISTS (SELECT 1 FROM call_notes WHERE key = ? AND expires_at > ?), "
            "(SELECT MIN(at) FROM events WHERE call_id = ? AND kind = 'callend' AND (room = '' OR room = ?))",
            (step_key, now, call_id, room)).fetchone()
        return bool(waiting), ended

    def after_join_facts_many(self, requests: Sequence[JoinFactsRequest], *,
                              deadline: float | None = None) -> list[tuple[bool, float | None]]:
        """`after_join_facts` for each request (reads from the file: nothing to gain from one statement)."""
        return [self.after_join_facts(r.call_id, r.room, r.step_key, r.now) for r in requests]

    def claim_calls_to_confirm(self, *, within: float, limit: int, hold: float, hold_joined: float,
                               now: float | None = None) -> list[dict]:
        """Claim up to `limit` calls the calls API should vouch for, for this worker alone: calls with a
        reservation lapsing within `within` seconds (their join may never be readable) or only joined
        seats not yet left (their leave may be lost), not asked about in the last `hold` (reservations)
        or `hold_joined` (joined) seconds. Least recently asked first, then soonest to lapse.

        The claim is an `asked:<call>` note, so every worker sees it and successive claims page
        through every such call instead of returning the same first `limit`."""
        now = time.time() if now is None else now
        with self._write() as db:
            rows = db.execute(CLAIMABLE, {"now": now, "horizon": now + within, "limit": limit}).fetchall()
            db.executemany("INSERT INTO call_notes (key, value, expires_at) VALUES (?, '', ?) ON CONFLICT (key) "
                           "DO UPDATE SET expires_at = excluded.expires_at",
                           [("asked:" + row[0], now + (hold_joined if row[1] else hold)) for row in rows])
        return [{"call_id": row[0], "joined": bool(row[1])} for row in rows]

    def extend_reservations(self, call_id: str, *, until: float, now: float | None = None) -> int:
        """Hold a live call's reservations (not yet joined) until `until`; how many were held."""
        now = time.time() if now is None else now
        with self._write() as db:
            return db.execute("UPDATE seats SET expires_at = MAX(expires_at, ?) WHERE call_id = ? "
                              "AND joined_at IS NULL AND left_at IS NULL AND expires_at > ?",
                              (until, call_id, now)).rowcount

    def count_events(self) -> int:
        """How many events are stored (benchmarks check nothing was lost)."""
        return self._connection().execute("SELECT COUNT(*) FROM events").fetchone()[0]

    def record_dialled_call(self, room: str, call_id: str, *, role: str | None = None,
                            session_id: str | None = None, to: str | None = None, at: float | None = None) -> None:
        """Remember a call `roomc dial` placed into `room`: the calls API cannot find calls by room."""
        with self._write() as db:
            db.execute(DIALLED_SCHEMA)
            db.execute("INSERT INTO dialled_calls (call_id, room, role, session_id, dialled_to, dialled_at) "
                       "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (call_id) DO NOTHING",
                       (call_id, room, role, session_id, to, time.time() if at is None else at))

    def dialled_calls(self, room: str) -> list[dict]:
        """The calls `roomc dial` placed into `room`, oldest first."""
        with self._write() as db:  # the table may not exist yet in a store that never dialled
            db.execute(DIALLED_SCHEMA)
        rows = self._connection().execute(
            "SELECT * FROM dialled_calls WHERE room=? ORDER BY dialled_at, call_id", (room,)).fetchall()
        return [{"callId": r["call_id"], "room": r["room"], "role": r["role"], "sessionId": r["session_id"],
                 "to": r["dialled_to"], "dialledAt": _iso(r["dialled_at"])} for r in rows]


# Kept apart from SCHEMA and created on first use: only `roomc dial` and `roomc calls` touch it.
DIALLED_SCHEMA = """CREATE TABLE IF NOT EXISTS dialled_calls (
    call_id TEXT PRIMARY KEY, room TEXT NOT NULL, role TEXT, session_id TEXT, dialled_to TEXT, dialled_at REAL NOT NULL
)"""


def live_room_views(counts: Iterable[Mapping], sessions: Mapping[str, Mapping]) -> list[dict]:
    """GET /rooms's list from per-room seat counts and room sessions (the same for every store)."""
    out = []
    for row in counts:
        session = sessions.get(row["room"])
        started = session is not None and session["started_at"] is not None
        ended = session is not None and session["ended_at"] is not None and (
            not started or session["ended_at"] >= session["started_at"])
        if row["joined"] + row["reserved"] or (started and not ended):
            out.append({"name": row["room"], "participants": int(row["joined"]), "reserved": int(row["reserved"]),
                        "seatsTaken": int(row["counted"]), "started": started and not ended})
    return sorted(out, key=lambda r: r["name"])


# In-room key effects (runtime/keys.py), stored as room events of these kinds: a status event can
# never carry them (an unknown event name is unreadable), so only the keys route writes them.
KEY_EFFECTS = ("raiseHand", "lowerHand", "callOperator", "cancelOperator")
KEY_KINDS_SQL = "('" + "', '".join(KEY_EFFECTS) + "')"
# What the room view reads of them: the latest of each effect per call, and of each leave and room end
# (which lower hands raised before them). Only columns of events_by_room, so a caller who pressed
# keys 100,000 times costs an index scan, not 100,000 row reads. Key kinds are only ever stored
# readable (an unreadable event has no kind), so `readable` need not be read.
KEYS_QUERY = ("SELECT call_id, kind, MAX(at) AS at FROM events WHERE room = %s "
              "AND kind IN " + KEY_KINDS_SQL[:-1] + ", 'leave', 'end') GROUP BY call_id, kind")
_KEYS_QUERY_SQLITE = KEYS_QUERY.replace("%s", "?")


def _present(seat: Mapping, now: float) -> bool:
    """Whether a seat's caller is in the room now: joined and not left, or freshly reserved. Unlike
    ACTIVE, a caller who left and holds only a new reservation is not (yet) back: their old hand
    stays down until their next `join` arrives."""
    return seat["left_at"] is None and (seat["joined_at"] is not None or (seat["expires_at"] or 0) > now)


def key_flags(seats: list[Mapping], keys: Iterable[Mapping], now: float | None = None) -> dict:
    """`handsRaised` and `operatorRequested` from the room's key events, whatever order they came in.

    Per call, the latest of raise/lower (and of call/cancel) by the sender's time decides; at equal
    times the raise (the request) wins, so a question is never lost to a tie. Only callers still in
    the room are listed, and leaving (or the room's end) lowers a hand and withdraws a request: one
    raised before it stays down when the same call comes back. Oldest first (who asked first).
    `keys` may hold every key, leave and end event or only the latest of each per call (KEYS_QUERY).
    """
    now = time.time() if now is None else now
    present = {s["call_id"]: s for s in seats if _present(s, now)}
    latest: dict[tuple[str, str], tuple[float, bool]] = {}
    gone: dict[str | None, float] = {}  # each call's latest leave; None: the room's latest end
    for row in keys:
        call, kind, at = row["call_id"], row["kind"], float(row["at"])
        if kind in ("leave", "end"):
            who = None if kind == "end" else call
            gone[who] = max(at, gone.get(who, at))
            continue
        if call not in present:
            continue
        flag = "hand" if kind in ("raiseHand", "lowerHand") else "operator"
        candidate = (at, kind in ("raiseHand", "callOperator"))
        current = latest.get((flag, call))
        if current is None or candidate > current:
            latest[(flag, call)] = candidate
    out: dict[str, list] = {"handsRaised": [], "operatorRequested": []}
    for (flag, call), (at, up) in sorted(latest.items(), key=lambda item: (item[1][0], item[0][1])):
        # A leave at the very time of a press wins: the caller left, whichever came first within the tick.
        if up and at > max(gone.get(call, -math.inf), gone.get(None, -math.inf)):
            out["handsRaised" if flag == "hand" else "operatorRequested"].append(
                {"callId": call, "role": present[call]["role"], "at": _iso(at)})
    return out


def room_view(name: str, session: Mapping | None, seats: Iterable[Mapping], keys: Iterable[Mapping] = ()) -> dict | None:
    """GET /rooms/<name>'s shape from a room session row, its seat rows and its key events (the same for every
    store)."""
    seats = list(seats)
    if session is None and not seats:
        return None
    return {
        "name": name,
        "started": _iso(session["started_at"]) if session else None,
        "ended": _iso(session["ended_at"]) if session else None,
        "participants": [{
            "callId": s["call_id"], "role": s["role"],
            "muted": bool(s["muted0"] if s["muted"] is None else s["muted"]),
            "joinedAt": _iso(s["joined_at"]), "leftAt": _iso(s["left_at"]),
            "reservedAt": _iso(s["reserved_at"]),
        } for s in seats],
        "recordingUrl": session["recording_url"] if session else None,
        **key_flags(seats, keys),
    }


# PostgreSQL's btree refuses an index entry past about 2,700 bytes, and an event's fields are each
# capped at 256 characters of up to 4 bytes: a longer key is kept as its digest, in both stores alike,
# so such an event is stored (and deduplicated) rather than refused on every retry. ASCII ids reach
# about 800 bytes; roomc's own room names are ASCII and at most 64 characters.
DEDUPE_MAX_BYTES = 2000


def short_dedupe(key: str) -> str:
    """An events key as stored: itself, or its digest past DEDUPE_MAX_BYTES (`roomc db copy` applies it too)."""
    if len(key) * 4 <= DEDUPE_MAX_BYTES:
        return key  # short enough in any encoding: the common case encodes nothing
    encoded = key.encode("utf-8", "surrogatepass")
    if len(encoded) > DEDUPE_MAX_BYTES:
        return f"sha256:{hashlib.sha256(encoded).hexdigest()}"
    return key


def full_dedupe(event: Event, body: bytes) -> str:
    """An event's key before shortening: its own (Event.dedupe_key) if readable, else its bytes' digest."""
    if event.readable:
        return event.dedupe_key()
    return f"raw:{hashlib.sha256(body).hexdigest()}:{event.event_id or ''}"


def _raw_json(raw: object) -> bytes:
    """An event's fields as JSON, whatever they hold (integers past 64 bits included): never lost for it."""
    try:
        return orjson.dumps(raw, default=str, option=orjson.OPT_NON_STR_KEYS)
    except (TypeError, ValueError):
        return orjson.dumps(_jsonable(raw), option=orjson.OPT_NON_STR_KEYS)


def _jsonable(value: object, depth: int = 0) -> object:
    if depth > 50:
        return "<nested too deep>"
    if isinstance(value, dict):
        return {str(k): _jsonable(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v, depth + 1) for v in value]
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 2 ** 63:
        return f"<integer of {value.bit_length()} bits>"
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return repr(value)[:1000]


def sqlite_schema_version(db: sqlite3.Connection, location: str = "") -> int | None:
    """The recorded schema version: None for a file without roomc's tables, 0 for tables without a version.

    Raises ForeignTables when a table of roomc's names is another application's (its columns say so).
    """
    tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    columns = {t: [c[1] for c in db.execute(f'PRAGMA table_info("{t}")')] for t in tables & TABLE_COLUMNS.keys()}
    if "roomc_schema" in tables and not foreign_tables({"roomc_schema": columns["roomc_schema"]}):
        row = db.execute("SELECT version FROM roomc_schema WHERE id = 1").fetchone()
        if row is not None:
            return int(row[0])  # recorded by a roomc: its tables are what that version makes
    problems = foreign_tables(columns)
    if problems:
        raise ForeignTables(location, problems)
    return 0 if tables & {"seats", "events", "rooms"} else None


def _upgrade(db: sqlite3.Connection, path: str) -> None:
    """Create or upgrade the schema to SCHEMA_VERSION, in one transaction.

    Tables and indexes are created if missing; triggers hold no data, so they are dropped and
    created afresh (a changed trigger reaches old files too). A file a newer roomc has upgraded
    is refused.
    """
    db.execute("BEGIN IMMEDIATE")
    try:
        found = sqlite_schema_version(db, path)
        if found is not None and found > SCHEMA_VERSION:
            raise SchemaMismatch(path, found)
        for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'").fetchall():
            db.execute(f'DROP TRIGGER "{name}"')
        for statement in _statements(SCHEMA + VERSION_TABLE):
            db.execute(statement)
        _add_missing_columns(db)
        for statement in _statements(TRIGGERS):
            db.execute(statement)
        db.execute("INSERT INTO roomc_schema (id, version, upgraded_at) VALUES (1, ?, ?) ON CONFLICT (id) "
                   "DO UPDATE SET version = excluded.version, upgraded_at = excluded.upgraded_at",
                   (SCHEMA_VERSION, time.time()))
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise


def _statements(script: str) -> list[str]:
    """A script split into complete statements (executescript would commit the open transaction)."""
    out, current = [], ""
    for line in script.splitlines(keepends=True):
        current += line
        if sqlite3.complete_statement(current):
            out.append(current.strip())
            current = ""
    return [s for s in out if s.rstrip(";").strip()]


def _iso(timestamp: float | None) -> str | None:
    # Rows written before times were checked may hold inf, nan or years past 9999: shown as unknown.
    if timestamp is None or not math.isfinite(timestamp) or not -62135596800 < timestamp < 253402300800:
        return None
    from datetime import datetime, timezone

    return datetime.fromtimestamp(timestamp, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
