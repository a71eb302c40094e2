"""Hostile cases for the fixes of a8e9ea0 (digest keys, Unstorable, REQUEST_DEADLINE, call-end repeats):
each test states a promise the change was meant to keep and shows where it does not. Real SQLite
files, a real PostgreSQL (the session's cluster), the real `roomc db copy` code path."""
import json
import secrets

import pytest

import roomc.runtime.store as store_module
from roomc.runtime import normalise
from roomc.runtime.storage import copy, open_store
from roomc.runtime.store import SQLiteStore

from .test_batch_attack import serve, table

NOW = 1_800_000_000.0
# A room named in CJK (3 bytes a character) with long CJK ids: a key of about 2,300 UTF-8 bytes, which
# every store before a8e9ea0 kept as it was (SQLite has no limit; PostgreSQL's is ~2,700), and which is
# now shortened to its digest (past runtime/store.py DEDUPE_MAX_BYTES, 2,000).
ROOM = "会議室" * 85  # 255 characters, 765 bytes
LONG_KEY_EVENT = {"ConferenceName": ROOM, "StatusCallbackEvent": "join", "CallId": "通話" * 127,
                  "EventId": "識別" * 127, "Timestamp": NOW}


def _event(fields):
    return normalise.event(fields, None, now=float(fields["Timestamp"]))


def _stored_before_the_upgrade(store, monkeypatch) -> None:
    """Record LONG_KEY_EVENT as the store did before a8e9ea0: under its own key, undigested."""
    with monkeypatch.context() as patch:
        patch.setattr(store_module, "DEDUPE_MAX_BYTES", 10 ** 9)
        assert store.record(_event(LONG_KEY_EVENT)) == "stored"


def test_an_event_stored_before_the_digest_keys_is_not_stored_again_when_redelivered(tmp_path, monkeypatch):
    """Promise: no acknowledged event is stored twice. An event acknowledged before the upgrade,
    redelivered after it (Sautikit retries at least once), must be a duplicate."""
    assert len(_event(LONG_KEY_EVENT).dedupe_key().encode()) > store_module.DEDUPE_MAX_BYTES
    with SQLiteStore(str(tmp_path / "old.db")) as store:
        _stored_before_the_upgrade(store, monkeypatch)
        assert store.record(_event(LONG_KEY_EVENT)) == "duplicate"
        assert store.count_events() == 1


def test_db_copy_of_an_older_sqlite_store_keeps_its_long_keys_deduplicating(tmp_path, monkeypatch, pg_url):
    """`roomc db copy` from a SQLite store written before the digest keys into PostgreSQL: an event
    it holds, delivered again after the move, must be a duplicate there."""
    source = str(tmp_path / "old.db")
    with SQLiteStore(source) as store:
        _stored_before_the_upgrade(store, monkeypatch)
    copy(source, pg_url)
    with open_store(pg_url) as target:
        assert target.count_events() == 1
        assert target.record(_event(LONG_KEY_EVENT)) == "duplicate"
        assert target.count_events() == 1


# -- a call-end whose call id is past the field limit ----------------------------------------------

def _posted_to_both_stores(tmp_path, pg_url, body: bytes) -> dict:
    """(status, answer) of the same event posted to a real server on SQLite and one on PostgreSQL
    (`eventsSignature: off`: anyone may post)."""
    routes = table(tmp_path, events='"off"')
    results = {}
    for name, db in (("sqlite", tmp_path / "roomc.db"), ("postgresql", pg_url)):
        server = serve(routes, db, tmp_path, name, "1")
        try:
            results[name] = server.request("POST", "/events", body, {"Content-Type": "application/json"})
        finally:
            server.stop()
    return results


@pytest.mark.server
def test_a_call_end_with_an_overlong_call_id_is_kept_not_refused_on_postgresql(tmp_path, pg_url):
    """Promise: bad input loses nothing; an event roomc cannot read is kept raw (as SQLite keeps this
    one). A call-completed event whose CallId is past 256 characters is unreadable, but call_end_event
    takes the raw CallId as its call anyway (runtime/calls.py: `folded.get("callid")`, uncapped) and
    stores it in events.call_id, whose btree index (events_by_room, events_call_ends) PostgreSQL cannot
    hold past ~2,700 bytes: 54000 -> Unstorable -> 422, and the platform drops the event for good."""
    call_id = secrets.token_urlsafe(2400)  # 3,200 varied characters: PostgreSQL cannot compress them away
    body = json.dumps({"EventType": "call.completed", "CallId": call_id, "EventId": "end-long"}).encode()
    results = _posted_to_both_stores(tmp_path, pg_url, body)
    assert results["sqlite"][0] == 200, results
    assert results["postgresql"][0] == 200, results


@pytest.mark.server
def test_a_join_named_only_by_an_overlong_caller_number_is_kept_not_refused_on_postgresql(tmp_path, pg_url):
    """The same limit by another door: a join with no call id is given the stand-in call
    `caller:<number>` (runtime/calls.py identify; caller_of does not cap the number), which lands in
    events.call_id and the events_by_room index. SQLite stores it; PostgreSQL answers 422 (dropped)."""
    number = secrets.token_urlsafe(2400)
    body = json.dumps({"ConferenceName": "small-x", "StatusCallbackEvent": "join", "From": number,
                       "EventId": "join-long"}).encode()
    results = _posted_to_both_stores(tmp_path, pg_url, body)
    assert results["sqlite"][0] == 200, results
    assert results["postgresql"][0] == 200, results


def test_db_copy_of_an_older_sqlite_store_holding_the_widest_key_into_postgresql_succeeds(tmp_path, monkeypatch,
                                                                                          pg_url):
    """The key a8e9ea0 digests because PostgreSQL's btree cannot hold it (256 four-byte characters in
    room, call and event id) was stored as it was by SQLite before the upgrade; `roomc db copy` copies
    the dedupe column verbatim (runtime/storage.py _into_postgres), so moving such a store to
    PostgreSQL is refused outright (CopyRefused: index row size exceeds btree maximum)."""
    wide = "".join(chr(0x20000 + i * 7919 % 0xA6D0) for i in range(255))
    fields = {"ConferenceName": wide + "r", "StatusCallbackEvent": "join", "CallId": wide + "c",
              "EventId": wide + "e", "Timestamp": NOW}
    source = str(tmp_path / "old.db")
    with SQLiteStore(source) as store, monkeypatch.context() as patch:
        patch.setattr(store_module, "DEDUPE_MAX_BYTES", 10 ** 9)  # as the store before a8e9ea0 kept it
        assert store.record(_event(fields)) == "stored"
    assert copy(source, pg_url)["events"] == 1
    with open_store(pg_url) as target:
        assert target.record(_event(fields)) == "duplicate"


# -- a database-wide, temporary 54000 ------------------------------------------------------------

@pytest.mark.server
def test_an_event_while_postgresql_refuses_writes_for_wraparound_gets_503_not_422(tmp_path):
    """Promise: a temporarily unstorable event gets 503 (the platform retries), only a permanently bad
    one a 4xx. PostgreSQL's xid-wraparound stop ("database is not accepting commands to avoid
    wraparound data loss", until an operator vacuums) is SQLSTATE 54000, program_limit_exceeded: _run
    (runtime/postgres.py) takes every class-54 error for "this item's, for good" -> Unstorable -> 422,
    so every event delivered during the outage is refused and dropped by the platform.

    Reached for real: a cluster of its own whose next transaction id pg_resetwal sets past the stop
    limit (between xidStopLimit and xidWrapLimit), with the commit-log segment it needs."""
    import os

    import psycopg

    from ..pg import Cluster

    cluster = Cluster.start()
    try:
        url = cluster.create_database("roomc")
        with open_store(url):
            pass  # the schema, while writes still work
        with psycopg.connect(cluster.url(), autocommit=True) as conn:
            oldest = min(int(row[0]) for row in conn.execute("SELECT datfrozenxid::text::bigint FROM pg_database"))
        cluster.stop_server()
        target = oldest + 2 ** 31 - 2_000_000  # past xidStopLimit (wrap limit - 3,000,000), short of the wrap limit
        reset = cluster._run("pg_resetwal", "-x", str(target), "-D", str(cluster.data))
        assert reset.returncode == 0, reset.stderr
        segment = cluster.data / "pg_xact" / f"{target // 1_048_576:04X}"
        segment.write_bytes(bytes(32 * 8192))  # one zeroed segment: 32 pages of 8 kB
        owner = cluster.data.stat()
        os.chown(segment, owner.st_uid, owner.st_gid)
        cluster.start_server()
        with psycopg.connect(url, autocommit=True) as conn, pytest.raises(psycopg.Error) as refused:
            conn.execute("CREATE TABLE probe (x int)")
        assert refused.value.sqlstate == "54000", refused.value  # the condition under test, for real

        server = serve(table(tmp_path, events='"off"'), url, tmp_path, "wrap", "1")
        try:
            body = json.dumps({"ConferenceName": "small-x", "StatusCallbackEvent": "join", "CallId": "c1",
                               "EventId": "during-wraparound-stop"}).encode()
            status, answer = server.request("POST", "/events", body, {"Content-Type": "application/json"})
        finally:
            server.stop()
    finally:
        cluster.stop()
    assert status == 503, (status, answer)
