"""The shared store: the same tables and the same behaviour as the SQLite store, in PostgreSQL.

Several `roomc serve` instances (each with its worker processes) share one database. Every
operation is one statement, one round trip, on an autocommit connection from a psycopg pool:

- a seat is `SELECT * FROM roomc_reserve(...)`. Under READ COMMITTED each statement reads
  from a snapshot taken when it starts, so a plain `INSERT ... SELECT ... WHERE count < limit`
  lets two concurrent callers both see a free seat, and a lock taken inside that same statement
  does not help: the snapshot predates the wait. The function takes a per-room advisory lock
  (held until commit) first, and its later statements each read a fresh snapshot (a VOLATILE
  function's statements do), which then includes every seat committed by the previous holder;
- an event is one INSERT whose effects come from an AFTER INSERT trigger (as in SQLite) that
  takes the same per-room lock before re-deriving the participant and room from the stored
  events, so concurrent deliveries for one room converge to what any serial order gives.
"""
from __future__ import annotations

import itertools
import logging
import os
import socket
import threading
import time
import weakref
from contextlib import contextmanager
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence, TypeVar, cast

import psycopg
from psycopg import pq
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool, PoolTimeout

from .batch import in_flusher, wait_readable
from .normalise import Event
from .store import (ACTIVE, EXTRA_POOL, KEYS_QUERY, MAIN_POOL, REQUEST_DEADLINE, SCHEMA_VERSION, TABLE_COLUMNS, Admission, Binding,
                    EventRequest, ForeignTables, JoinFactsRequest, RoomBusy, SchemaMismatch, SeatRequest, SignatureReused,
                    StoreTimeout, Unstorable, _iso, _raw_json, foreign_tables, full_dedupe, held_json,
                    live_room_views, only, pool_of, room_view, short_dedupe)

# The classid half of every roomc advisory lock (the other half is the room's hash), so roomc's
# locks never collide with another application's in a shared database. 'room' as an int4.
LOCK_CLASS = 0x726F6F6D
SIGNATURE_CLASS = 0x7369676E  # 'sign': per signature
UPGRADE_LOCK = 0x75706772  # 'upgr': one `roomc db upgrade` at a time
# After an operation fails for want of the database, later ones get this long a try until one
# succeeds, so callers queued behind a dead database hear the fallback at once, not after a timeout each.
STRUGGLING_SECONDS = 5.0
PROBE_SECONDS = 0.1
PRUNE_EVERY = 60.0
# /healthz never waits on the database: each worker's maintenance thread asks it `SELECT 1` once a
# second when no statement has succeeded for that long, within HEALTH_WAIT, and /healthz reports that.
HEALTH_EVERY = 1.0
HEALTH_WAIT = 0.5

T = TypeVar("T")
log = logging.getLogger("roomc")

# ACTIVE is the SQLite store's definition of a taken seat, shared so the two cannot drift.
_ACTIVE = ACTIVE.replace(":now", "p_now")

SCHEMA = f"""
CREATE TABLE IF NOT EXISTS seats (
    room TEXT NOT NULL, call_id TEXT NOT NULL, role TEXT, counted SMALLINT NOT NULL DEFAULT 1,
    muted0 SMALLINT NOT NULL DEFAULT 0, reserved_at DOUBLE PRECISION, expires_at DOUBLE PRECISION,
    joined_at DOUBLE PRECISION, left_at DOUBLE PRECISION, muted SMALLINT, caller TEXT,
    PRIMARY KEY (room, call_id)
);
ALTER TABLE seats ADD COLUMN IF NOT EXISTS caller TEXT;
-- Version 2: seats are counted per pool (runtime/store.py MAIN_POOL, EXTRA_POOL); an uncounted seat
-- of version 1 (`counted = 0`, always with the pool '') belongs to the uncounted roles' pool.
ALTER TABLE seats ADD COLUMN IF NOT EXISTS pool TEXT NOT NULL DEFAULT '';
UPDATE seats SET pool = '{EXTRA_POOL}' WHERE counted = 0 AND pool = '';
-- rooms_of_call and the calls-API sweeper look seats up by call alone.
CREATE INDEX IF NOT EXISTS seats_by_call ON seats (call_id);
-- `body` is json, not jsonb: json keeps the text as sent and accepts \\u0000, which jsonb refuses.
CREATE TABLE IF NOT EXISTS events (
    dedupe TEXT PRIMARY KEY, room TEXT, kind TEXT, call_id TEXT,
    at DOUBLE PRECISION NOT NULL, received_at DOUBLE PRECISION NOT NULL, recording TEXT,
    readable SMALLINT NOT NULL, body JSON NOT NULL, timed SMALLINT NOT NULL DEFAULT 1, clock TEXT
);
CREATE INDEX IF NOT EXISTS events_by_room ON events (room, call_id, kind, at);
CREATE INDEX IF NOT EXISTS events_call_ends ON events (call_id, at) WHERE kind = 'callend';
CREATE TABLE IF NOT EXISTS rooms (
    room TEXT PRIMARY KEY, started_at DOUBLE PRECISION, ended_at DOUBLE PRECISION, recording_url TEXT
);
-- Each verified signature and the one request it was first seen on (runtime/store.py says why);
-- rows keyed `redirect:<call id>` are where roomc itself redirected a call.
CREATE TABLE IF NOT EXISTS signature_uses (
    signature TEXT NOT NULL, request TEXT NOT NULL, expires_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (signature, request)
);
-- What roomc remembers about a call between its requests (runtime/calls.py), with expiry.
CREATE TABLE IF NOT EXISTS call_notes (
    key TEXT PRIMARY KEY, value TEXT NOT NULL, expires_at DOUBLE PRECISION NOT NULL
);
-- Digit entries per call at a flow with `tries` (runtime/store.py DIGIT_TRIES says why).
CREATE TABLE IF NOT EXISTS digit_tries (
    call_id TEXT NOT NULL, flow TEXT NOT NULL, tries INTEGER NOT NULL, last_digits TEXT NOT NULL,
    last_at DOUBLE PRECISION NOT NULL, expires_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (call_id, flow)
);
CREATE INDEX IF NOT EXISTS digit_tries_expiry ON digit_tries (expires_at);
-- Calls `roomc dial` placed (the calls API cannot find calls by room).
CREATE TABLE IF NOT EXISTS dialled_calls (
    call_id TEXT PRIMARY KEY, room TEXT NOT NULL, role TEXT, session_id TEXT, dialled_to TEXT,
    dialled_at DOUBLE PRECISION NOT NULL
);

-- A seat in one round trip: lock the room, then read (fresh snapshot) and write. Same rule as
-- the SQLite store's RESERVE: a call holding a live seat under this role keeps it; otherwise it
-- is seated (or moved from another role's seat) if the pool has room besides itself; refused,
-- a reservation it held under another role is let go.
-- Held seats (p_held, JSON {{role: seats}}, NULL when the pool holds none) count as taken for everyone
-- but their own role's callers, until those fill them: the same sum as the SQLite RESERVE.
DROP FUNCTION IF EXISTS roomc_reserve(TEXT, TEXT, TEXT, SMALLINT, SMALLINT, DOUBLE PRECISION, DOUBLE PRECISION,
    INTEGER);
CREATE OR REPLACE FUNCTION roomc_reserve(p_room TEXT, p_call TEXT, p_role TEXT, p_counted SMALLINT,
    p_muted SMALLINT, p_now DOUBLE PRECISION, p_expires DOUBLE PRECISION, p_limit INTEGER, p_caller TEXT,
    p_pool TEXT, p_held TEXT, OUT admitted BOOLEAN, OUT again BOOLEAN, OUT taken INTEGER)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE mine BOOLEAN; others INTEGER; v_held INTEGER;
BEGIN
    -- A seat's commit does not wait for its WAL flush (an event's does): a database crash can lose
    -- the last fraction of a second of reservations, holds that expire within a minute anyway,
    -- never an acknowledged event. Measured: 216 -> 902 joins/s for one worker.
    PERFORM set_config('synchronous_commit', 'off', true);
    PERFORM pg_advisory_xact_lock({LOCK_CLASS}, hashtext(p_room));
    SELECT {_ACTIVE} AND role IS NOT DISTINCT FROM p_role INTO mine FROM seats WHERE room = p_room AND call_id = p_call;
    IF COALESCE(mine, false) THEN
        SELECT COUNT(*) INTO taken FROM seats WHERE room = p_room AND pool = p_pool AND {_ACTIVE};
        admitted := true; again := true;
        RETURN;
    END IF;
    again := false;
    SELECT COUNT(*) INTO others FROM seats
     WHERE room = p_room AND pool = p_pool AND call_id <> p_call AND {_ACTIVE};
    IF p_held IS NOT NULL THEN
        SELECT COALESCE(SUM(GREATEST(0, h.value::INTEGER
                 - (SELECT COUNT(*) FROM seats WHERE room = p_room AND pool = p_pool AND call_id <> p_call
                       AND role = h.key AND {_ACTIVE}))), 0)
          INTO v_held FROM jsonb_each_text(p_held::JSONB) AS h WHERE h.key IS DISTINCT FROM p_role;
        others := others + v_held;
    END IF;
    IF others < p_limit THEN
        INSERT INTO seats (room, call_id, role, counted, pool, muted0, reserved_at, expires_at, caller)
        VALUES (p_room, p_call, p_role, p_counted, p_pool, p_muted, p_now, p_expires, p_caller)
        ON CONFLICT (room, call_id) DO UPDATE SET role = EXCLUDED.role, counted = EXCLUDED.counted, pool = EXCLUDED.pool,
            muted0 = EXCLUDED.muted0, reserved_at = EXCLUDED.reserved_at, expires_at = EXCLUDED.expires_at,
            caller = COALESCE(EXCLUDED.caller, seats.caller);
        admitted := true; taken := NULL;  -- as the SQLite store: not counted on the hot path
        RETURN;
    END IF;
    SELECT COUNT(*) INTO taken FROM seats WHERE room = p_room AND pool = p_pool AND {_ACTIVE};
    UPDATE seats SET expires_at = CASE WHEN expires_at IS NULL THEN NULL ELSE LEAST(expires_at, p_now) END
     WHERE room = p_room AND call_id = p_call AND joined_at IS NULL;
    admitted := false;
END $$;
-- The form a roomc of schema version 1 calls: such an instance keeps serving while `roomc db upgrade`
-- runs, until it is restarted (docs/deploy.md), so it stays, seating in the pool its `counted` names
-- (it knows no named pools and no held seats). Dropped, every join on it answered the fallback.
CREATE OR REPLACE FUNCTION roomc_reserve(p_room TEXT, p_call TEXT, p_role TEXT, p_counted SMALLINT,
    p_muted SMALLINT, p_now DOUBLE PRECISION, p_expires DOUBLE PRECISION, p_limit INTEGER, p_caller TEXT,
    OUT admitted BOOLEAN, OUT again BOOLEAN, OUT taken INTEGER)
LANGUAGE sql VOLATILE AS $$
    SELECT r.admitted, r.again, r.taken FROM roomc_reserve(p_room, p_call, p_role, p_counted, p_muted, p_now,
        p_expires, p_limit, p_caller, CASE WHEN p_counted = 1 THEN '{MAIN_POOL}' ELSE '{EXTRA_POOL}' END, NULL) AS r
$$;

-- The SQLite store's three triggers, in one function so the room is locked once. Same rules:
-- a participant is the latest join; the first leave (or room end, once joined) at or after it,
-- where an untimed leave (or any leave of an untimed join) ends it whichever arrived first, and
-- an untimed join is ended by any room end not followed by a later start;
-- the latest mute/unmute, unmute winning a tie. A room end releases everyone joined before it.
-- A room session is the latest start and end, and the recording of the latest end that has one.
CREATE OR REPLACE FUNCTION roomc_derive() RETURNS trigger
LANGUAGE plpgsql VOLATILE AS $$
DECLARE joined DOUBLE PRECISION; untimed BOOLEAN;
BEGIN
    PERFORM pg_advisory_xact_lock({LOCK_CLASS}, hashtext(NEW.room));
    IF NEW.call_id IS NOT NULL AND NEW.kind IN ('join', 'leave', 'mute', 'unmute') THEN
        SELECT MAX(at), MIN(timed) = 0 INTO joined, untimed FROM events
         WHERE room = NEW.room AND call_id = NEW.call_id AND kind = 'join';
        INSERT INTO seats (room, call_id, counted, joined_at, left_at, muted)
        VALUES (NEW.room, NEW.call_id, 1, joined,
            (SELECT MIN(CASE WHEN (kind = 'leave' AND (timed = 0 OR untimed)) OR (kind = 'end' AND untimed)
                             THEN GREATEST(at, COALESCE(joined, at)) ELSE at END)
               FROM events
              WHERE room = NEW.room
                AND ((call_id = NEW.call_id AND kind = 'leave'
                      AND (at >= COALESCE(joined, -1e300) OR timed = 0 OR untimed))
                     OR (kind = 'end' AND joined IS NOT NULL AND (at >= joined OR (untimed AND NOT EXISTS (
                         SELECT 1 FROM events AS s WHERE s.room = NEW.room AND s.kind = 'start' AND s.at > events.at)))))),
            (SELECT (kind = 'mute')::INTEGER::SMALLINT FROM events
              WHERE room = NEW.room AND call_id = NEW.call_id AND kind IN ('mute', 'unmute')
              ORDER BY at DESC, (kind = 'unmute') DESC LIMIT 1))
        ON CONFLICT (room, call_id) DO UPDATE SET joined_at = EXCLUDED.joined_at, left_at = EXCLUDED.left_at,
            muted = EXCLUDED.muted;
    END IF;
    IF NEW.kind = 'end' THEN
        UPDATE seats SET left_at = (
            SELECT MIN(CASE WHEN (e.kind = 'leave' AND (e.timed = 0 OR u.untimed)) OR (e.kind = 'end' AND u.untimed)
                            THEN GREATEST(e.at, seats.joined_at) ELSE e.at END)
              FROM events AS e,
                   (SELECT MIN(timed) = 0 AS untimed FROM events AS j
                     WHERE j.room = seats.room AND j.call_id = seats.call_id AND j.kind = 'join') AS u
             WHERE e.room = seats.room
               AND ((e.call_id = seats.call_id AND e.kind = 'leave'
                     AND (e.at >= seats.joined_at OR e.timed = 0 OR u.untimed))
                    OR (e.kind = 'end' AND (e.at >= seats.joined_at OR (u.untimed AND NOT EXISTS (
                        SELECT 1 FROM events AS s WHERE s.room = seats.room AND s.kind = 'start' AND s.at > e.at))))))
         WHERE room = NEW.room AND joined_at IS NOT NULL;
    END IF;
    IF NEW.kind IN ('start', 'end') THEN
        INSERT INTO rooms (room, started_at, ended_at, recording_url)
        VALUES (NEW.room,
            (SELECT MAX(at) FROM events WHERE room = NEW.room AND kind = 'start'),
            (SELECT MAX(at) FROM events WHERE room = NEW.room AND kind = 'end'),
            (SELECT recording FROM events WHERE room = NEW.room AND kind = 'end' AND recording IS NOT NULL
              ORDER BY at DESC, dedupe COLLATE "C" DESC LIMIT 1))
        ON CONFLICT (room) DO UPDATE SET started_at = EXCLUDED.started_at, ended_at = EXCLUDED.ended_at,
            recording_url = EXCLUDED.recording_url;
    END IF;
    RETURN NULL;
END $$;
-- A signature binds to the first request it is seen on; one statement, locked per signature so
-- two instances seeing a replay at once cannot both bind it.
CREATE OR REPLACE FUNCTION roomc_bind_signature(p_signature TEXT, p_request TEXT, p_expires DOUBLE PRECISION,
    p_now DOUBLE PRECISION, p_grant TEXT) RETURNS BOOLEAN
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    PERFORM pg_advisory_xact_lock({SIGNATURE_CLASS}, hashtext(p_signature));
    IF NOT EXISTS (SELECT 1 FROM signature_uses WHERE signature = p_signature AND expires_at >= p_now) THEN
        INSERT INTO signature_uses (signature, request, expires_at) VALUES (p_signature, p_request, p_expires)
        ON CONFLICT (signature, request) DO UPDATE SET expires_at = EXCLUDED.expires_at;
        RETURN true;
    END IF;
    RETURN EXISTS (SELECT 1 FROM signature_uses WHERE signature IN (p_signature, COALESCE(p_grant, p_signature))
                    AND request = p_request AND expires_at >= p_now);
END $$;
DROP TRIGGER IF EXISTS roomc_derive ON events;
CREATE TRIGGER roomc_derive AFTER INSERT ON events FOR EACH ROW
    WHEN (NEW.readable = 1 AND NEW.room IS NOT NULL) EXECUTE FUNCTION roomc_derive();
"""

VERSION_TABLE = """
CREATE TABLE IF NOT EXISTS roomc_schema (
    id INTEGER PRIMARY KEY CHECK (id = 1), version INTEGER NOT NULL, upgraded_at DOUBLE PRECISION NOT NULL
);
"""
TABLES = ("seats", "events", "rooms")


def _clean(text: str | None) -> str | None:
    # PostgreSQL text cannot hold NUL; a hostile call id or room must still be stored, not refused.
    return text.replace("\x00", "\ufffd") if text is not None and "\x00" in text else text


def schema_version(conn: psycopg.Connection, location: str = "") -> int | None:
    """The recorded schema version: None for an empty database, 0 for roomc tables without a version.

    Raises ForeignTables when a table of roomc's names is another application's (its columns say so).
    """
    columns: dict[str, list[str]] = {}
    for table, column in conn.execute(
            "SELECT t, a.attname FROM unnest(%s::text[]) AS t JOIN pg_attribute a ON a.attrelid = to_regclass(t) "
            "WHERE a.attnum > 0 AND NOT a.attisdropped", (list(TABLE_COLUMNS),)).fetchall():
        columns.setdefault(table, []).append(column)
    if "roomc_schema" in columns and not foreign_tables({"roomc_schema": columns["roomc_schema"]}):
        found = conn.execute("SELECT version FROM roomc_schema WHERE id = 1").fetchone()
        if found is not None:
            return int(found[0])  # recorded by a roomc: its tables are what that version makes
    problems = foreign_tables(columns)
    if problems:
        raise ForeignTables(location, problems)
    return 0 if set(columns) & set(TABLES) else None


def upgrade_schema(conninfo: str) -> tuple[int | None, int]:
    """Create or upgrade the schema to SCHEMA_VERSION in one transaction: (version before, after).

    Refuses (SchemaMismatch) a database a newer roomc has upgraded past this one.
    """
    with psycopg.connect(conninfo, autocommit=True) as conn:
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (UPGRADE_LOCK,))
            before = schema_version(conn, redact(conninfo))
            if before is not None and before > SCHEMA_VERSION:
                raise SchemaMismatch(redact(conninfo), before)
            if before != SCHEMA_VERSION:
                conn.execute(SCHEMA.encode())
                conn.execute(VERSION_TABLE.encode())
                conn.execute("INSERT INTO roomc_schema (id, version, upgraded_at) VALUES (1, %s, %s) "
                             "ON CONFLICT (id) DO UPDATE SET version = EXCLUDED.version, upgraded_at = EXCLUDED.upgraded_at",
                             (SCHEMA_VERSION, time.time()))
    return before, SCHEMA_VERSION


def redact(conninfo: str) -> str:
    """The URL without its password (in `user:pass@` or in `?password=`), for messages and logs."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(conninfo)
    if parts.password is not None:
        parts = parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":***@"))
    if "password=" in parts.query.lower():
        query = "&".join("password=***" if pair.lower().startswith("password=") else pair
                         for pair in parts.query.split("&"))
        parts = parts._replace(query=query)
    return urlunsplit(parts)


def scrub(text: str, conninfo: str) -> str:
    """An error message with every form of the URL's password taken out (libpq quotes it back in
    some errors, e.g. an invalid percent-encoding)."""
    from urllib.parse import parse_qsl, unquote, urlsplit

    parts = urlsplit(conninfo)
    secrets = {parts.password or ""} | {value for key, value in parse_qsl(parts.query) if key.lower() == "password"}
    raw = parts.netloc.rpartition("@")[0].partition(":")[2] if "@" in parts.netloc else ""
    secrets |= {raw, unquote(raw)}
    for secret in sorted((s for s in secrets if len(s) >= 3), key=len, reverse=True):
        text = text.replace(secret, "***")
    return text.replace(conninfo, redact(conninfo))


# One statement waits at most this long, whatever is left of its request's deadline: the app runs
# on the worker's event loop, so a wait holds every other request of that worker.
STATEMENT_WAIT = 0.75
# A room's lock is held for a transaction's few milliseconds; one still taken after this long is held by a
# session in trouble (another instance's transaction stuck, an operator's). Waited for until the watchdog's
# cut instead, a whole batch (every room in it) failed with the fallback for as long as one room stayed
# locked: 89 % of the joins to other rooms, in a test (tests/runtime/test_flusher_attack.py). Below
# STATEMENT_WAIT, so this error, not the cut, ends the wait; not much below, so another instance's slow but
# healthy transaction (a concurrent insert of one event key: 300 ms in test_batch_attack.py) is waited out.
LOCK_WAIT_MS = 400



# runtime/store.py's COUNT_TRY in PostgreSQL's placeholders, with a few expired rows of other calls purged
# in the same round trip (SKIP LOCKED: concurrent purges never wait on, or deadlock with, each other).
_SAME_ENTRY = ("digit_tries.expires_at > %(now)s AND digit_tries.last_digits = excluded.last_digits "
               "AND excluded.last_at - digit_tries.last_at < %(window)s")
COUNT_TRY = f"""
WITH purged AS (DELETE FROM digit_tries WHERE (call_id, flow) IN (
    SELECT call_id, flow FROM digit_tries WHERE expires_at <= %(now)s AND NOT (call_id = %(call)s AND flow = %(flow)s)
    LIMIT 20 FOR UPDATE SKIP LOCKED))
INSERT INTO digit_tries (call_id, flow, tries, last_digits, last_at, expires_at)
VALUES (%(call)s, %(flow)s, 1, %(tag)s, %(now)s, %(expires)s)
ON CONFLICT (call_id, flow) DO UPDATE SET
    tries = CASE WHEN digit_tries.expires_at <= %(now)s THEN 1 WHEN {_SAME_ENTRY} THEN digit_tries.tries
                 ELSE digit_tries.tries + 1 END,
    last_at = CASE WHEN {_SAME_ENTRY} THEN digit_tries.last_at ELSE excluded.last_at END,
    last_digits = excluded.last_digits, expires_at = excluded.expires_at
RETURNING tries
"""

class _Watchdog:
    """Cuts the socket of a statement still running past its deadline (one thread per process).

    A hung statement blocks in the kernel's recv; shutting the socket down makes it fail at once,
    and the pool throws the broken connection away.
    """

    def __init__(self) -> None:
        self._watched: dict[int, tuple[float, Any]] = {}
        self._fired: set[int] = set()
        self._lock = threading.Lock()
        self._tickets = itertools.count()
        self._pid = -1

    def watch(self, conn: Any, give_up: float) -> int:
        if self._pid != os.getpid():  # threads do not survive fork: each worker starts its own
            self._pid = os.getpid()
            self._watched.clear()
            threading.Thread(target=self._run, name="roomc-pg-watchdog", daemon=True).start()
        ticket = next(self._tickets)
        self._watched[ticket] = (give_up, conn)
        return ticket

    def release(self, ticket: int) -> None:
        self._watched.pop(ticket, None)
        with self._lock:
            self._fired.discard(ticket)

    def fired(self, ticket: int) -> bool:
        with self._lock:
            return ticket in self._fired

    def _run(self) -> None:
        while True:
            time.sleep(0.05)
            now = time.monotonic()
            for ticket, (give_up, conn) in list(self._watched.items()):
                if now > give_up and self._watched.pop(ticket, None) is not None:
                    with self._lock:
                        self._fired.add(ticket)
                    try:
                        cut = socket.socket(fileno=os.dup(conn.pgconn.socket))
                        try:
                            cut.shutdown(socket.SHUT_RDWR)
                        finally:
                            cut.close()
                    except Exception:
                        pass  # already closed: nothing left to cut


_WATCHDOG = _Watchdog()


class _Statement:
    """A statement on every join's path, run through libpq directly: prepared once per connection,
    parameters sent as text, the one row read as text.

    psycopg's `execute` spends about 90 us of Python a call on a cursor, parameter adaptation and
    its generators (measured: 140 against 45-53 us of CPU for the same reservation), and the
    worker serves nothing else meanwhile. Errors are psycopg's own exceptions, so `_run` treats
    them alike; libpq's blocking call releases the GIL, so the watchdog can still cut it.
    """

    def __init__(self, name: str, sql: str):
        self.name, self.sql = name.encode(), sql.encode()
        self._prepared: weakref.WeakKeyDictionary[Any, bool] = weakref.WeakKeyDictionary()

    def prepare(self, conn: psycopg.Connection) -> None:
        """Prepare the statement on this connection, once."""
        if conn not in self._prepared:
            self._check(conn.pgconn, conn.pgconn.prepare(self.name, self.sql))
            self._prepared[conn] = True

    def forget(self, conn: psycopg.Connection) -> None:
        """Have the statement prepared again on this connection at its next use (the server dropped it)."""
        self._prepared.pop(conn, None)

    def result(self, conn: psycopg.Connection, params: list[bytes | None]) -> Any:
        """Run the statement: libpq's result, checked (psycopg's exception for an error)."""
        if in_flusher():  # a batch of one: its wait lets the event loop run (runtime/batch.py)
            return _pipelined(conn, [(self, params)])[0]
        pgconn = conn.pgconn
        self.prepare(conn)
        result = pgconn.exec_prepared(self.name, cast(Any, params))  # None is NULL (psycopg's stub omits it)
        if result.status == pq.ExecStatus.FATAL_ERROR \
                and result.error_field(pq.DiagnosticField.SQLSTATE) == b"26000":
            # The prepared statement is gone (a pooler's DISCARD ALL, say): prepare it again, once.
            self._check(pgconn, pgconn.prepare(self.name, self.sql))
            result = pgconn.exec_prepared(self.name, cast(Any, params))
        self._check(pgconn, result)
        return result

    def row(self, conn: psycopg.Connection, params: list[bytes | None]) -> list[bytes | None]:
        """The statement's one row, each value as PostgreSQL's text (None for NULL)."""
        result = self.result(conn, params)
        return [result.get_value(0, column) for column in range(result.nfields)]

    def first(self, conn: psycopg.Connection, params: list[bytes | None]) -> bytes | None:
        """The first column of the first row (None when no row, or NULL)."""
        result = self.result(conn, params)
        return result.get_value(0, 0) if result.ntuples else None

    def count(self, conn: psycopg.Connection, params: list[bytes | None]) -> int:
        """How many rows the statement wrote (an INSERT, UPDATE or DELETE)."""
        return int(self.result(conn, params).command_tuples or 0)

    @staticmethod
    def _check(pgconn: Any, result: Any) -> None:
        if result.status in (pq.ExecStatus.TUPLES_OK, pq.ExecStatus.COMMAND_OK):
            return
        if pgconn.status == pq.ConnStatus.BAD:  # the connection broke: psycopg says OperationalError too
            raise psycopg.OperationalError(str(pgconn.get_error_message()).strip())
        raise psycopg.errors.error_from_result(result)


def _pipelined(conn: psycopg.Connection, statements: list[tuple[_Statement, list[bytes | None]]]) -> list[Any]:
    """Run prepared statements in one round trip and one transaction: libpq's pipeline mode with a single
    Sync, so the server runs them as one implicit transaction, committed once. Their results, in order;
    the first error raises (psycopg's exception), and then the server has rolled all of them back."""
    try:
        return _pipeline_once(conn, statements)
    except psycopg.errors.InvalidSqlStatementName:
        # The server no longer has what was prepared on this connection (a pooler's DISCARD ALL, say); the
        # whole pipeline was rolled back, so it runs again, prepared again. Left marked as prepared, every
        # batch on this connection failed until the pool retired it (an hour), and a flusher's batch of
        # one too: in a flusher every statement goes through here (an attack found it).
        for statement, _ in statements:
            statement.forget(conn)
        return _pipeline_once(conn, statements)


def _pipeline_once(conn: psycopg.Connection, statements: list[tuple[_Statement, list[bytes | None]]]) -> list[Any]:
    """`_pipelined`'s one try."""
    pgconn = conn.pgconn
    for statement, _ in statements:
        statement.prepare(conn)
    pgconn.enter_pipeline_mode()
    results: list[Any] = []
    failed: Any = None
    try:
        for statement, params in statements:
            pgconn.send_query_prepared(statement.name, cast(Any, params))
        pgconn.pipeline_sync()
        while pgconn.flush():  # a blocking connection sends everything; looped all the same
            pass
        ended = False  # libpq gives None once after each statement's results; twice in a row is a dead link
        while True:
            # Results are read only once they have arrived: psycopg's get_result keeps the GIL while it
            # blocks, which would stop the watchdog thread that cuts a statement at its deadline.
            pgconn.consume_input()
            while pgconn.is_busy():
                wait_readable(pgconn.socket, 1.0)  # lets go of the GIL (or the loop); the watchdog ends a hang
                pgconn.consume_input()
            result = pgconn.get_result()
            if result is None:
                if ended or pgconn.status == pq.ConnStatus.BAD:
                    raise psycopg.OperationalError(str(pgconn.get_error_message()).strip() or "connection lost")
                ended = True
                continue
            ended = False
            if result.status == pq.ExecStatus.PIPELINE_SYNC:
                break
            if result.status == pq.ExecStatus.PIPELINE_ABORTED:
                continue  # skipped after an earlier error
            if failed is None and result.status not in (pq.ExecStatus.TUPLES_OK, pq.ExecStatus.COMMAND_OK):
                failed = result
            results.append(result)
    finally:
        if pgconn.status == pq.ConnStatus.OK:
            try:
                pgconn.exit_pipeline_mode()
            except psycopg.Error:
                pgconn.finish()  # left mid-pipeline: closed, so the pool throws it away rather than reuse it
    if failed is not None:
        _Statement._check(pgconn, failed)
    return results


def _text_array(values: Iterable[str]) -> bytes:
    """A text[] parameter in PostgreSQL's array syntax, every element quoted."""
    quoted = ('"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"' for value in values)
    return _text("{" + ",".join(quoted) + "}") or b"{}"


def _text(value: str | None) -> bytes | None:
    """A text parameter as libpq takes it (NUL cannot go, as everywhere in this store)."""
    return None if value is None else value.replace("\x00", "\ufffd").encode()


# $10 the seat's pool, $11 its held seats as JSON (NULL when the pool holds none): runtime/store.py RESERVE.
_RESERVE = ("roomc_reserve($1, $2, $3, $4::smallint, $5::smallint, $6::float8, $7::float8, $8::integer, $9, $10, "
            "$11)")
_RESERVE_ROW = _Statement("roomc_reserve_2", f"SELECT admitted, again, taken FROM {_RESERVE}")
# A signed join in one round trip and one transaction: the binding, then the seat only if it bound.
# The reserve is an uncorrelated subquery inside CASE, which PostgreSQL runs (an InitPlan) only when
# the CASE reaches it, so a replay takes no seat (tests/runtime/test_store.py holds it to that).
_BIND_RESERVE_ROW = _Statement("roomc_bind_reserve_2", (
    f"SELECT b.ok, CASE WHEN b.ok THEN (SELECT ARRAY[r.admitted::int, r.again::int, r.taken] FROM {_RESERVE} AS r) END "
    "FROM roomc_bind_signature($12, $13, $14::float8, $15::float8, $16) AS b(ok)"))


# A batch (reserve_many, record_many) first takes every lock its statements will take, each class in
# ascending key order (signatures, then rooms: the order a single signed join takes them in too), so
# two batches on two instances cannot each hold a lock the other waits for.
_LOCK_SIGNATURES = _Statement("roomc_lock_signatures_1", (
    f"SELECT count(pg_advisory_xact_lock({SIGNATURE_CLASS}, h)) "
    "FROM (SELECT DISTINCT hashtext(v) AS h FROM unnest($1::text[]) AS v ORDER BY 1) AS keys"))
_LOCK_ROOMS = _Statement("roomc_lock_rooms_1", (
    f"SELECT count(pg_advisory_xact_lock({LOCK_CLASS}, h)) "
    "FROM (SELECT DISTINCT hashtext(v) AS h FROM unnest($1::text[]) AS v ORDER BY 1) AS keys"))
# After a batch met a locked room (RoomBusy): which of its rooms another session holds, without waiting for
# any (a lock taken here is let go at the statement's end).
_BUSY_ROOMS = _Statement("roomc_busy_rooms_1", (
    f"SELECT v FROM unnest($1::text[]) AS v WHERE NOT pg_try_advisory_xact_lock({LOCK_CLASS}, hashtext(v))"))

# The events route's statements (an event, and the two reads of a stored join: runtime/calls.py
# after_join) through libpq too: through psycopg's execute each cost about 90 us more of the
# worker's only thread, three times an event.
_RECORD = _Statement("roomc_record_1", (
    "INSERT INTO events (dedupe, room, kind, call_id, at, received_at, recording, readable, body, timed, clock) "
    "VALUES ($1, $2, $3, $4, $5::float8, $6::float8, $7, $8::smallint, $9::json, $10::smallint, $11) "
    "ON CONFLICT (dedupe) DO NOTHING"))
_NOTED = _Statement("roomc_noted_1", "SELECT value FROM call_notes WHERE key = $1 AND expires_at > $2::float8")
_FORGET = _Statement("roomc_forget_1", "DELETE FROM call_notes WHERE key = $1 OR expires_at <= $2::float8")
# After a stored join (runtime/calls.py after_join): whether a flow step still waits, and when the
# call was said to have ended, in one round trip.
_AFTER_JOIN = _Statement("roomc_after_join_1", (
    "SELECT EXISTS (SELECT 1 FROM call_notes WHERE key = $1 AND expires_at > $2::float8), "
    "(SELECT MIN(at) FROM events WHERE call_id = $3 AND kind = 'callend' AND (room = '' OR room = $4))"))


def _float(value: float) -> bytes:
    """A float8 parameter as PostgreSQL's text reads it ('inf' and 'nan' included)."""
    return repr(float(value)).encode()


class PostgresStore:
    """The store for many instances: one PostgreSQL database, reached through a connection pool.

    `pool_size` connections at most per process: a worker uses one per request thread at a time.
    No operation waits past its `deadline` (time.monotonic()) or `timeout` seconds for a
    connection, nor `statement_timeout_ms` for its statement: it raises StoreTimeout, so a voice
    route answers its fallback and the events route 503. A connection broken by a database
    restart is replaced, and the operation retried on a fresh one while time remains (every
    operation is idempotent). An empty database is given the schema; one at another version is
    refused (SchemaMismatch), unless `upgrade=True`. With `reachable=False` (a server's worker
    processes), a database out of reach at start is tolerated instead of raised.
    """

    # Its batches wait for the database's answer: runtime/batch.py runs them in a flusher greenlet,
    # so the worker's event loop serves other requests meanwhile.
    waits_on_network = True

    def __init__(self, conninfo: str, *, pool_size: int = 4, timeout: float = 2.0, statement_timeout_ms: int = 2000,
                 upgrade: bool = False, reachable: bool = True):
        self.conninfo = conninfo
        self.pool_size = pool_size
        self.timeout = timeout
        self.statement_timeout_ms = statement_timeout_ms
        self._pool: ConnectionPool | None = None
        self._pool_pid = -1
        self._pool_lock = threading.Lock()
        self._closed = threading.Event()
        self._struggling_until = 0.0
        self._last_trouble: float | None = None
        self._last_ok: float | None = None  # time.monotonic() of the last statement that succeeded
        self._last_failed: float | None = None  # ... and of the last that failed for want of the database
        self._last_error: str | None = None
        try:
            with psycopg.connect(conninfo, autocommit=True, connect_timeout=max(2, int(timeout))) as conn:
                found = schema_version(conn, redact(conninfo))
        except psycopg.OperationalError as exc:
            if reachable:
                raise
            # A worker (re)started while the database is away must still start, and answer callers
            # with the fallback until it is back: `roomc serve` checked the schema before starting it.
            log.warning("database %s unreachable at start (%s); serving, reconnecting in the background",
                        redact(conninfo), scrub(str(exc).strip(), conninfo))
            return
        if found is None or (upgrade and found != SCHEMA_VERSION):
            upgrade_schema(conninfo)
        elif found != SCHEMA_VERSION:
            raise SchemaMismatch(redact(conninfo), found)

    def _connections(self) -> ConnectionPool:
        if self._closed.is_set():
            raise psycopg.InterfaceError(f"the store {redact(self.conninfo)} is closed")
        # A pool's threads do not survive fork: each worker process opens its own.
        if self._pool is None or self._pool_pid != os.getpid():
            with self._pool_lock:
                if self._pool is None or self._pool_pid != os.getpid():
                    pool = ConnectionPool(
                        self.conninfo, min_size=1, max_size=self.pool_size, open=False, name="roomc",
                        timeout=self.timeout,
                        # Give up a reconnection loop after a second: the next request that finds no
                        # connection starts a fresh attempt at once. The pool's own backoff doubles
                        # (1, 2, 4 ... s), which left workers unused for seconds after the database was back.
                        reconnect_timeout=1.0,
                        kwargs={"autocommit": True, "connect_timeout": max(2, int(self.timeout)),
                                "options": f"-c statement_timeout={self.statement_timeout_ms} -c lock_timeout={LOCK_WAIT_MS}",
                                "application_name": "roomc",
                                # A database gone silent (no RST) fails a request within seconds, not minutes.
                                "tcp_user_timeout": int(self.timeout * 1000), "keepalives_idle": 10,
                                "keepalives_interval": 5, "keepalives_count": 2})
                    pool.open(wait=False)
                    self._pool, self._pool_pid = pool, os.getpid()
                    threading.Thread(target=self._maintain_forever, name="roomc-pg-health", daemon=True).start()
        return self._pool

    def _maintain_forever(self) -> None:
        """Each second: probe the database if nothing has reached it for that long; each minute: prune."""
        next_prune = time.monotonic() + PRUNE_EVERY
        while not self._closed.wait(HEALTH_EVERY):
            now = time.monotonic()
            if self._last_ok is None or now - self._last_ok >= HEALTH_EVERY:
                try:
                    self._run(now + HEALTH_WAIT, lambda conn: conn.execute("SELECT 1").fetchone())
                except Exception:
                    pass  # recorded by _run; /healthz reports it
            if now >= next_prune:
                next_prune = now + PRUNE_EVERY
                try:
                    self.forget_expired_signatures()
                except Exception:
                    pass  # the database is away; the next round catches up

    def _run(self, deadline: float | None, work: Callable[[psycopg.Connection], T]) -> T:
        """Run `work` on a pooled connection within the deadline; StoreTimeout when it cannot.

        Each attempt is one idempotent statement, so one that failed on a broken connection
        (the database restarted since it was pooled) is retried on another while time remains.
        The deadline is enforced here, not only by the server's statement_timeout: a database
        that keeps its connections open but stops answering (frozen, paused, a black-holed
        network) never applies that, so the watchdog cuts the connection's socket at the deadline.
        """
        if deadline is None:
            deadline = REQUEST_DEADLINE.get()
        budget = self.timeout if deadline is None else min(deadline - time.monotonic(), STATEMENT_WAIT)
        if time.monotonic() < self._struggling_until:
            # A flusher's batch holds only its own callers (the loop serves on while it waits): it is given
            # long enough for a lock's own wait to end, so a room another session holds fails that room's
            # items alone (RoomBusy) rather than, cut first, every room of the batch.
            budget = min(budget, LOCK_WAIT_MS / 1000 + 0.05 if in_flusher() else PROBE_SECONDS)
        give_up = time.monotonic() + max(0.001, budget)
        pool = self._connections()
        for attempt in range(self.pool_size + 1):
            try:
                with pool.connection(timeout=max(0.001, give_up - time.monotonic())) as conn:
                    ticket = _WATCHDOG.watch(conn, give_up)
                    try:
                        result = work(conn)
                    except psycopg.OperationalError:
                        if _WATCHDOG.fired(ticket):
                            self._struggling_until = time.monotonic() + STRUGGLING_SECONDS
                            self._last_failed = time.monotonic()
                            self._last_trouble = time.time()
                            self._last_error = "a statement was cut at its deadline"
                            raise StoreTimeout("database did not answer before the deadline; connection cut") \
                                from None
                        if conn.broken and attempt < self.pool_size and time.monotonic() < give_up:
                            continue
                        raise
                    finally:
                        _WATCHDOG.release(ticket)
                self._struggling_until = 0.0
                self._last_ok = time.monotonic()
                return result
            except (PoolTimeout, psycopg.OperationalError) as exc:
                # Class 54 (a program limit) stays a 503: PostgreSQL also raises it database-wide (its
                # wraparound stop) until an operator acts; event keys are kept short enough to avoid it.
                state = getattr(exc, "sqlstate", None) or ""
                if state[:2] == "40":  # a deadlock or serialization failure: this transaction's, not the database's
                    raise
                if state == "55P03":  # lock_not_available: locked by another session; the database answers
                    # Reported by /healthz, but no short tries for what follows (STRUGGLING_SECONDS): a try
                    # shorter than the lock's wait would be cut before it could say which room is busy.
                    self._last_failed, self._last_trouble = time.monotonic(), time.time()
                    self._last_error = f"a lock was held by another session for {LOCK_WAIT_MS} ms"
                    raise RoomBusy(f"a room stayed locked for {LOCK_WAIT_MS} ms: {str(exc).strip()}") from exc
                self._struggling_until = time.monotonic() + STRUGGLING_SECONDS
                self._last_failed = time.monotonic()
                self._last_trouble = time.time()
                self._last_error = scrub(str(exc).strip(), self.conninfo)[:300]
                if isinstance(exc, psycopg.errors.QueryCanceled):
                    raise StoreTimeout(f"statement cancelled after {self.statement_timeout_ms} ms: {exc}") from exc
                raise StoreTimeout(f"database not answering: {str(exc).strip()}") from exc
            except psycopg.DataError as exc:  # a value the database refuses (out of range, malformed)
                raise Unstorable(f"the database refuses it: {str(exc).strip()}") from exc
        raise StoreTimeout("database connections kept breaking")

    @contextmanager
    def _conn(self, deadline: float | None = None) -> Iterator[psycopg.Connection]:
        """A pooled connection for reads and tools (no retry)."""
        timeout = self.timeout if deadline is None else max(0.001, min(self.timeout, deadline - time.monotonic()))
        with self._connections().connection(timeout=timeout) as conn:
            yield conn

    def close(self) -> None:
        """Close every pooled connection; later use raises psycopg.InterfaceError."""
        self._closed.set()
        if self._pool is not None and self._pool_pid == os.getpid():
            self._pool.close()
        self._pool = None

    def __enter__(self) -> "PostgresStore":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def health(self) -> dict:
        """This worker's view of the database (docs/deploy.md, "Health checks"); never waits on it.

        `reachable` is what the latest statement, or the worker's own probe (a `SELECT 1` once a
        second while nothing else reached the database, at most HEALTH_WAIT), found: None before
        either has run. `pool` is this worker's connections.
        """
        now = time.monotonic()
        stats: dict[str, int] = {}
        try:
            stats = self._connections().get_stats()  # starts the pool and its probe in a fresh worker
        except Exception:
            pass  # closed
        ok, failed = self._last_ok, self._last_failed
        reachable = None if ok is None and failed is None else failed is None or (ok is not None and ok >= failed)
        database: dict[str, Any] = {
            "reachable": reachable, "lastContactSeconds": None if ok is None else round(now - ok, 3),
            "pool": {"open": stats.get("pool_size", 0), "idle": stats.get("pool_available", 0), "max": self.pool_size,
                     "waiting": stats.get("requests_waiting", 0)}}
        if failed is not None and self._last_error:
            database["lastError"] = self._last_error
            database["lastErrorSeconds"] = round(now - failed, 3)
        degraded = now < self._struggling_until or reachable is False
        return {"store": "degraded" if degraded else "ok", "database": database,
                **({"lastTimeout": _iso(self._last_trouble)} if self._last_trouble else {})}

    def reserve(self, room: str, call_id: str, role: str, *, counted: bool, limit: int, ttl: float,
                muted: bool, now: float | None = None, deadline: float | None = None,
                caller: str | None = None, bind: Binding | None = None, pool: str | None = None,
                held: Mapping[str, int] | None = None) -> Admission:
        """Take a seat for this call if its pool has one free; a call that holds one under this role keeps it,
        one under another role is moved to this role's pool if it has room (`caller` finds the call again
        from events that name only the caller). With `bind`, the signature is bound first, in the same
        statement (SignatureReused, and no seat, if it belongs to another request). `pool` and `held` as for
        the SQLite store."""
        return cast(Admission, only(self.reserve_many(
            [SeatRequest(room, call_id, role, counted, limit, ttl, muted, now, caller, bind, pool, held)],
            deadline=deadline)))

    def reserve_many(self, seats: Sequence[SeatRequest], *,
                     deadline: float | None = None) -> list[Admission | SignatureReused]:
        """Each seat as `reserve` takes it, in one round trip and one transaction (a pipeline: see _pipelined);
        a seat alone is one statement."""
        statements = [self._seat_statement(seat) for seat in seats]
        if len(statements) == 1:
            statement, values = statements[0]
            return [self._seat_outcome(seats[0], self._run(deadline, lambda conn: statement.row(conn, values)))]
        signatures = sorted({seat.bind.signature for seat in seats if seat.bind is not None})
        locks: list[tuple[_Statement, list[bytes | None]]] = [(_LOCK_SIGNATURES, [_text_array(signatures)])] \
            if signatures else []
        locks.append((_LOCK_ROOMS, [_text_array(sorted({seat.room for seat in seats}))]))
        results = self._run(deadline, lambda conn: _pipelined(conn, locks + statements))[len(locks):]
        return [self._seat_outcome(seat, [result.get_value(0, column) for column in range(result.nfields)])
                for seat, result in zip(seats, results, strict=True)]

    def busy_rooms(self, rooms: Sequence[str], *, deadline: float | None = None) -> set[str]:
        """Which of these rooms' locks another session holds at this moment (one statement that waits for none)."""
        named = {(_text(room) or b"").decode(): room for room in rooms}  # as the locks are keyed: NUL replaced
        if not named:
            return set()
        result = self._run(deadline, lambda conn: _BUSY_ROOMS.result(conn, [_text_array(sorted(named))]))
        return {named[(result.get_value(row, 0) or b"").decode()] for row in range(result.ntuples)}

    @staticmethod
    def _seat_statement(seat: SeatRequest) -> tuple[_Statement, list[bytes | None]]:
        now = time.time() if seat.now is None else seat.now
        pool = pool_of(seat.counted, seat.pool)
        values = [_text(seat.room), _text(seat.call_id), _text(seat.role), b"1" if pool == MAIN_POOL else b"0",
                  b"1" if seat.muted else b"0", repr(float(now)).encode(), repr(float(now + seat.ttl)).encode(),
                  b"%d" % seat.limit, _text(seat.caller or None), _text(pool), _text(held_json(seat.held))]
        bind = seat.bind
        if bind is None:
            return _RESERVE_ROW, values
        return _BIND_RESERVE_ROW, values + [_text(bind.signature), _text(bind.request),
                                            repr(float(bind.expires_at)).encode(), repr(float(now)).encode(),
                                            _text(bind.grant)]

    @staticmethod
    def _seat_outcome(seat: SeatRequest, row: list[bytes | None]) -> Admission | SignatureReused:
        if seat.bind is None:
            admitted, again, taken = row
            return Admission(admitted == b"t", None if taken is None else int(taken), seat.limit, again=again == b"t")
        bound, taken_seat = row
        if bound != b"t" or taken_seat is None:
            return SignatureReused(seat.bind.request)
        seated, kept, count = taken_seat.decode().strip("{}").split(",")
        return Admission(seated == "1", None if count == "NULL" else int(count), seat.limit, again=kept == "1")

    def record(self, event: Event, *, now: float | None = None, deadline: float | None = None) -> str:
        """Store one status event; `stored`, `duplicate` or `unreadable` (kept raw, never dropped).

        One INSERT; the trigger re-derives the participant and room inside the same statement.
        An unreadable body is keyed by its bytes (and event id), so a replay is not stored again.
        """
        return cast(str, only(self.record_many([EventRequest(event, now)], deadline=deadline)))

    def record_many(self, events: Sequence[EventRequest], *, deadline: float | None = None) -> list[str]:
        """Each event as `record` stores it, in one round trip and one transaction: one commit, so one
        wait for the WAL's flush, for them all. A single readable event takes its room's lock before
        its row too, as a batch does, so a batch and a single delivery of one event cannot deadlock."""
        bodies = [_raw_json(item.event.raw) for item in events]
        keys = [full_dedupe(item.event, body) for item, body in zip(events, bodies, strict=True)]
        shorts = [short_dedupe(key) for key in keys]
        values = [self._event_values(item, body, short) for item, body, short in zip(events, bodies, shorts,
                                                                                     strict=True)]
        known = self._stored_under_full_keys(keys, shorts, deadline)
        # The rooms' locks first (the trigger takes them), then the rows in key order: a transaction
        # that meets another's uncommitted row with its key waits for it, so two batches holding the
        # same events in different orders would each wait for the other (an attack found it).
        rooms = sorted({item.event.room for item in events if item.event.readable and item.event.room is not None})
        order = sorted((index for index in range(len(events)) if index not in known),
                       key=lambda index: values[index][0] or b"")
        statements: list[tuple[_Statement, list[bytes | None]]] = [(_LOCK_ROOMS, [_text_array(rooms)])] if rooms else []
        statements += [(_RECORD, values[index]) for index in order]
        counts = [0] * len(events)
        if len(statements) == 1 and order:  # one event that takes no lock: one statement
            counts[order[0]] = self._run(deadline, lambda conn: _RECORD.count(conn, statements[0][1]))
        elif order:
            results = self._run(deadline, lambda conn: _pipelined(conn, statements))[len(statements) - len(order):]
            for index, result in zip(order, results, strict=True):
                counts[index] = int(result.command_tuples or 0)
        return ["duplicate" if count == 0 or index in known else "stored" if item.event.readable else "unreadable"
                for index, (item, count) in enumerate(zip(events, counts, strict=True))]

    def _stored_under_full_keys(self, keys: list[str], shorts: list[str], deadline: float | None) -> set[int]:
        """Which events (by index) a roomc from before keys were shortened stored under their full key: a
        redelivery of one is a duplicate. One read, and only for the rare event whose key was shortened."""
        stored_as = {index: key.replace("\x00", "\ufffd")  # as _text stores it
                     for index, (key, short) in enumerate(zip(keys, shorts, strict=True)) if short != key}
        if not stored_as:
            return set()
        found = {row[0] for row in self._run(deadline, lambda conn: conn.execute(
            "SELECT dedupe FROM events WHERE dedupe = ANY(%s)", (list(stored_as.values()),)).fetchall())}
        return {index for index, key in stored_as.items() if key in found}

    @staticmethod
    def _event_values(item: EventRequest, body: bytes, dedupe: str) -> list[bytes | None]:
        event = item.event
        now = time.time() if item.now is None else item.now
        return [_text(dedupe), _text(event.room), _text(event.kind), _text(event.call), _float(event.at),
                _float(now), _text(event.recording), b"1" if event.readable else b"0", _text(body.decode()),
                b"1" if event.timed else b"0", _text(event.clock)]

    def bind_signature(self, signature: str, request: str, *, expires_at: float, now: float | None = None,
                       deadline: float | None = None, grant: str | None = None) -> bool:
        """Bind a verified signature to the request it came with; False if it is already bound to
        another request (a replay on another method, path or query). An exact retry is True, and so
        is a request that `grant` (see grant_redirect) was given for."""
        now = time.time() if now is None else now
        values = (_clean(signature), _clean(request), expires_at, now, _clean(grant))
        row = self._run(deadline, lambda conn: conn.execute(
            "SELECT roomc_bind_signature(%s, %s, %s, %s, %s)", values).fetchone())
        return bool(row and row[0])

    def grant_redirect(self, grant: str, request: str, *, expires_at: float, deadline: float | None = None) -> None:
        """Record that roomc itself redirected a call to `request`: that call's signed bodies may be
        posted there too (the platform may repeat a body, so its signature, on the redirect)."""
        values = (_clean(grant), _clean(request), expires_at)
        self._run(deadline, lambda conn: conn.execute(
            "INSERT INTO signature_uses (signature, request, expires_at) VALUES (%s, %s, %s) "
            "ON CONFLICT (signature, request) DO UPDATE "
            "SET expires_at = GREATEST(signature_uses.expires_at, EXCLUDED.expires_at)", values))

    def forget_expired_signatures(self, now: float | None = None) -> int:
        """Delete signature bindings past their window; each worker's prune thread calls it each minute."""
        now = time.time() if now is None else now
        return self._run(None, lambda conn: conn.execute(
            "DELETE FROM signature_uses WHERE expires_at < %s", (now,)).rowcount)

    def live_rooms(self, now: float | None = None) -> list[dict]:
        """Rooms with a taken seat, or started and not yet ended, with their counts."""
        now = time.time() if now is None else now
        active = ACTIVE.replace(":now", "%(now)s")
        with self._conn() as conn:
            rows = conn.cursor(row_factory=dict_row).execute(
                f"SELECT s.room AS room, SUM(CASE WHEN {active} AND s.joined_at IS NOT NULL THEN 1 ELSE 0 END) AS joined, "
                f"SUM(CASE WHEN {active} AND s.joined_at IS NULL THEN 1 ELSE 0 END) AS reserved, "
                f"SUM(CASE WHEN {active} AND s.counted = 1 THEN 1 ELSE 0 END) AS counted FROM seats s GROUP BY s.room",
                {"now": now}).fetchall()
            sessions = {r["room"]: r for r in conn.cursor(row_factory=dict_row).execute("SELECT * FROM rooms")}
        return live_room_views(rows, sessions)

    def room(self, name: str) -> dict | None:
        """One room as operators read it: session times, participants and the recording URL."""
        with self._conn() as conn:
            cursor = conn.cursor(row_factory=dict_row)
            session = cursor.execute("SELECT * FROM rooms WHERE room = %s", (_clean(name),)).fetchone()
            seats = cursor.execute(
                "SELECT * FROM seats WHERE room = %s ORDER BY reserved_at IS NULL, reserved_at, "
                "joined_at NULLS FIRST, call_id COLLATE \"C\"", (_clean(name),)).fetchall()
            keys = cursor.execute(KEYS_QUERY, (_clean(name),)).fetchall() if seats else []
        return room_view(name, session, seats, keys)

    def recent_events(self, room: str, limit: int = 10) -> list[dict]:
        """The room's last `limit` readable events, newest first (the live page's event list)."""
        with self._conn() as conn:
            rows = conn.execute(
                "SELECT kind, call_id, at, received_at FROM events WHERE room = %s AND readable = 1 "
                "ORDER BY at DESC, received_at DESC LIMIT %s", (_clean(room), limit)).fetchall()
        return [{"event": kind, "callId": call, "at": _iso(at), "receivedAt": _iso(received)}
                for kind, call, at, received in rows]

    def ended_rooms(self, limit: int = 10) -> list[dict]:
        """The `limit` most recently ended room sessions with their recordings, newest first."""
        with self._conn() as conn:
            rows = conn.execute(
                "SELECT room, started_at, ended_at, recording_url FROM rooms WHERE ended_at IS NOT NULL "
                "AND (started_at IS NULL OR ended_at >= started_at) ORDER BY ended_at DESC LIMIT %s", (limit,)).fetchall()
        return [{"name": room, "started": _iso(started), "ended": _iso(ended), "recordingUrl": recording}
                for room, started, ended, recording in rows]

    def change_marker(self) -> object:
        """A value that changes whenever anyone commits a write, for cheap polling (the live page's stream).

        The server's current snapshot (`xmin:xmax:in-progress xids`) moves when a writing
        transaction starts and again when it commits, in any session; reads take no
        transaction id, so they leave it alone. It is cluster-wide: a write to another
        database moves it too, which only costs the poller a needless re-read. No table is read.
        """
        with self._conn() as conn:
            row = conn.execute("SELECT pg_current_snapshot()::text").fetchone()
        assert row is not None
        return row[0]

    def record_dialled_call(self, room: str, call_id: str, *, role: str | None = None,
                            session_id: str | None = None, to: str | None = None, at: float | None = None) -> None:
        """Remember a call `roomc dial` placed into `room`: the calls API cannot find calls by room."""
        with self._conn() as conn:
            conn.execute("INSERT INTO dialled_calls (call_id, room, role, session_id, dialled_to, dialled_at) "
                         "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (call_id) DO NOTHING",
                         (_clean(call_id), _clean(room), _clean(role), _clean(session_id), _clean(to),
                          time.time() if at is None else at))

    def dialled_calls(self, room: str) -> list[dict]:
        """The calls `roomc dial` placed into `room`, oldest first."""
        with self._conn() as conn:
            rows = conn.cursor(row_factory=dict_row).execute(
                "SELECT * FROM dialled_calls WHERE room = %s ORDER BY dialled_at, call_id COLLATE \"C\"",
                (_clean(room),)).fetchall()
        return [{"callId": r["call_id"], "room": r["room"], "role": r["role"], "sessionId": r["session_id"],
                 "to": r["dialled_to"], "dialledAt": _iso(r["dialled_at"])} for r in rows]

    # -- what roomc remembers about a call between requests (runtime/calls.py) ----------------
    def note(self, key: str, value: str, *, ttl: float, now: float | None = None) -> None:
        """Remember `value` under `key` for `ttl` seconds (replacing what was there)."""
        now = time.time() if now is None else now
        values = (_clean(key), _clean(value), now + ttl)
        self._run(None, lambda conn: conn.execute(
            "INSERT INTO call_notes (key, value, expires_at) VALUES (%s, %s, %s) ON CONFLICT (key) "
            "DO UPDATE SET value = EXCLUDED.value, expires_at = EXCLUDED.expires_at", values))

    def noted(self, key: str, now: float | None = None) -> str | None:
        """What is remembered under `key`, unless it has expired."""
        values = [_text(key), _float(time.time() if now is None else now)]
        value = self._run(None, lambda conn: _NOTED.first(conn, values))
        return None if value is None else value.decode()

    def forget(self, key: str, now: float | None = None) -> None:
        """Drop what is remembered under `key`, and every note that has expired."""
        values = [_text(key), _float(time.time() if now is None else now)]
        self._run(None, lambda conn: _FORGET.count(conn, values))

    def count_try(self, call_id: str, flow: str, tag: str, *, window: float, ttl: float, now: float | None = None,
                  deadline: float | None = None) -> int:
        """Count one digit entry of this call at `flow`; the count so far (runtime/store.py says how). One round
        trip: expired rows of other calls go in the same statement."""
        now = time.time() if now is None else now
        params = {"call": _clean(call_id), "flow": _clean(flow), "tag": _clean(tag), "now": now,
                  "expires": now + ttl, "window": window}
        row = self._run(deadline, lambda conn: conn.execute(COUNT_TRY, params).fetchone())
        assert row is not None  # an upsert with RETURNING always returns its row
        return int(row[0])

    def call_by_caller(self, room: str, caller: str, kind: str, now: float | None = None) -> str | None:
        """The call a participant event names only by its caller's number: for a `join`, the newest
        seat not yet in the room; otherwise the earliest-joined one still in it; else the newest.
        For `keys`, the one call in the room now with that number, else None (SQLiteStore's)."""
        if kind == "keys":
            moment = time.time() if now is None else now
            rows = self._run(None, lambda conn: conn.execute(
                "SELECT call_id FROM seats WHERE room = %s AND caller = %s AND left_at IS NULL "
                "AND (joined_at IS NOT NULL OR expires_at > %s) LIMIT 2", (_clean(room), _clean(caller), moment))
                .fetchall())
            return rows[0][0] if len(rows) == 1 else None
        order = ("joined_at IS NOT NULL, reserved_at DESC NULLS LAST" if kind == "join"
                 else "(joined_at IS NULL OR left_at IS NOT NULL), joined_at NULLS FIRST, reserved_at DESC NULLS LAST")
        row = self._run(None, lambda conn: conn.execute(
            f"SELECT call_id FROM seats WHERE room = %s AND caller = %s ORDER BY {order} LIMIT 1",
            (_clean(room), _clean(caller))).fetchone())
        return None if row is None else row[0]

    def live_rooms_of_call(self, call_id: str, now: float | None = None) -> list[str]:
        """Every room where this call holds a seat now (joined, or freshly reserved)."""
        now = time.time() if now is None else now
        active = ACTIVE.replace(":now", "%(now)s")
        rows = self._run(None, lambda conn: conn.execute(
            f'SELECT room FROM seats WHERE call_id = %(call)s AND {active} ORDER BY room COLLATE "C"',
            {"call": _clean(call_id), "now": now}).fetchall())
        return [row[0] for row in rows]

    def release_reservation(self, room: str, call_id: str, *, now: float | None = None,
                            deadline: float | None = None) -> bool:
        """Give back a seat this call only reserved (never joined): a later answer seated it elsewhere."""
        now = time.time() if now is None else now
        cursor = self._run(deadline, lambda conn: conn.execute(
            "UPDATE seats SET expires_at = %(now)s WHERE room = %(room)s AND call_id = %(call)s AND joined_at IS NULL "
            "AND left_at IS NULL AND expires_at > %(now)s", {"room": _clean(room), "call": _clean(call_id), "now": now}))
        return cursor.rowcount == 1

    def rooms_of_call(self, call_id: str) -> list[str]:
        """Every room where this call holds or held a seat."""
        rows = self._run(None, lambda conn: conn.execute(
            'SELECT room FROM seats WHERE call_id = %s ORDER BY room COLLATE "C"', (_clean(call_id),)).fetchall())
        return [row[0] for row in rows]

    def after_join_facts(self, call_id: str, room: str, step_key: str, now: float | None = None) \
            -> tuple[bool, float | None]:
        """Whether a flow step waits under `step_key`, and when the call was said to end: one round trip."""
        return self.after_join_facts_many([JoinFactsRequest(call_id, room, step_key, now)])[0]

    def after_join_facts_many(self, requests: Sequence[JoinFactsRequest], *,
                              deadline: float | None = None) -> list[tuple[bool, float | None]]:
        """`after_join_facts` for each request, in one round trip."""
        statements: list[tuple[_Statement, list[bytes | None]]] = [
            (_AFTER_JOIN, [_text(r.step_key), _float(time.time() if r.now is None else r.now), _text(r.call_id),
                           _text(r.room)]) for r in requests]
        if len(statements) == 1:
            rows = [self._run(deadline, lambda conn: _AFTER_JOIN.row(conn, statements[0][1]))]
        else:
            rows = [[result.get_value(0, 0), result.get_value(0, 1)]
                    for result in self._run(deadline, lambda conn: _pipelined(conn, statements))]
        return [(waiting == b"t", None if ended is None else float(ended)) for waiting, ended in rows]

    def claim_calls_to_confirm(self, *, within: float, limit: int, hold: float, hold_joined: float,
                               now: float | None = None) -> list[dict]:
        """Claim up to `limit` calls the calls API should vouch for, for this worker alone (see SQLiteStore).

        One statement: a call another worker claims at the same moment conflicts on its `asked:` note,
        and the conflict's WHERE, evaluated on the committed note, leaves it out of this claim."""
        now = time.time() if now is None else now
        params = {"now": now, "horizon": now + within, "limit": limit, "hold": hold, "hold_joined": hold_joined}

        def claim(conn: psycopg.Connection) -> list[dict]:
            rows = conn.execute(
                "WITH picked AS (SELECT s.call_id, bool_and(s.joined_at IS NOT NULL) AS joined FROM seats s "
                "LEFT JOIN call_notes n ON n.key = 'asked:' || s.call_id "
                "WHERE s.left_at IS NULL AND (s.joined_at IS NOT NULL OR "
                "(s.expires_at > %(now)s AND s.expires_at <= %(horizon)s)) "
                "AND (n.expires_at IS NULL OR n.expires_at <= %(now)s) "
                "AND s.call_id NOT LIKE 'anonymous-%%' AND s.call_id NOT LIKE 'participant:%%' "
                "AND s.call_id NOT LIKE 'caller:%%' "
                "GROUP BY s.call_id ORDER BY MAX(n.expires_at) NULLS FIRST, MIN(s.expires_at) NULLS LAST "
                "LIMIT %(limit)s) "
                "INSERT INTO call_notes (key, value, expires_at) "
                "SELECT 'asked:' || call_id, CASE WHEN joined THEN '1' ELSE '0' END, "
                "%(now)s + CASE WHEN joined THEN %(hold_joined)s ELSE %(hold)s END FROM picked "
                "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, expires_at = EXCLUDED.expires_at "
                "WHERE call_notes.expires_at <= %(now)s RETURNING substr(key, 7), value", params).fetchall()
            return [{"call_id": row[0], "joined": row[1] == "1"} for row in rows]

        return self._run(None, claim)

    def extend_reservations(self, call_id: str, *, until: float, now: float | None = None) -> int:
        """Hold a live call's reservations (not yet joined) until `until`; how many were held."""
        now = time.time() if now is None else now
        return self._run(None, lambda conn: conn.execute(
            "UPDATE seats SET expires_at = GREATEST(expires_at, %s) WHERE call_id = %s "
            "AND joined_at IS NULL AND left_at IS NULL AND expires_at > %s", (until, _clean(call_id), now)).rowcount)

    def count_events(self) -> int:
        """How many events are stored (benchmarks check nothing was lost)."""
        with self._conn() as conn:
            row = conn.execute("SELECT COUNT(*) FROM events").fetchone()
        assert row is not None
        return int(row[0])


def is_url(location: Any) -> bool:
    """Whether a --db value names a PostgreSQL database rather than a SQLite file."""
    return isinstance(location, str) and location.startswith(("postgresql://", "postgres://"))
