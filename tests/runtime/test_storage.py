"""runtime/storage.py: `roomc db copy` against hostile SQLite files (issue 12), all or nothing, and
`roomc db upgrade` refusing a database whose tables belong to another application."""
import sqlite3

import psycopg
import pytest

from roomc.runtime import normalise
from roomc.runtime.storage import CopyRefused, copy, open_store, status, upgrade

NOW = 1_800_000_000.0


def reserve(store, call, room="r", limit=5):
    return store.reserve(room, call, "member", counted=True, limit=limit, ttl=60, muted=False, now=NOW)


def join(store, call, room="r", at=NOW):
    return store.record(normalise.event({"ConferenceName": room, "StatusCallbackEvent": "join", "CallId": call,
                                         "Timestamp": at}, now=at))


def source(tmp_path, *calls, name="old.db"):
    """A SQLite store with a few ordinary rows and a seat for each of `calls`."""
    path = str(tmp_path / name)
    with open_store(path) as old:
        reserve(old, "plain")
        join(old, "plain")
        old.note("step:plain", "/pin", ttl=60, now=NOW)
        for call in calls:
            reserve(old, call)
    return path


def counts(url):
    with psycopg.connect(url) as conn:
        return {t: conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]
                for t in ("events", "seats", "rooms", "signature_uses", "call_notes", "dialled_calls")}


def assert_untouched_and_live(url, before):
    """Nothing of a refused copy landed, and the store still derives seats from events (trigger back on)."""
    assert counts(url) == before
    with open_store(url) as store:
        join(store, "after-refusal", room="check")
        assert [p["callId"] for p in store.room("check")["participants"]] == ["after-refusal"]


def test_a_nul_in_a_sqlite_row_is_refused_naming_its_table_and_row(tmp_path, pg_url):
    path = source(tmp_path, "a\x00b")
    open_store(pg_url).close()
    with pytest.raises(CopyRefused) as refused:
        copy(path, pg_url)
    message = str(refused.value)
    assert "table seats, row 1 (room='r', call_id='a\\x00b')" in message, message  # rows in key order
    assert "NUL" in message and "--nul replace" in message and "nothing was copied" in message
    assert_untouched_and_live(pg_url, dict.fromkeys(("events", "seats", "rooms", "signature_uses", "call_notes",
                                                      "dialled_calls"), 0))


def test_nul_replace_stores_what_the_live_store_would_and_the_call_keeps_its_seat(tmp_path, pg_url):
    path = source(tmp_path, "a\x00b")
    with open_store(path) as old:
        old.record(normalise.event({"ConferenceName": "r", "StatusCallbackEvent": "join", "CallId": "c",
                                    "Timestamp": NOW, "note": "\x00"}, now=NOW))  # escaped in the body: no NUL there
    assert copy(path, pg_url, nul="replace")["seats"] == 3
    with open_store(pg_url) as new:
        assert reserve(new, "a\x00b").again  # the live store maps the request's NUL the same way
        assert "a\ufffdb" in [p["callId"] for p in new.room("r")["participants"]]
        assert new.count_events() == 2


def test_a_nul_replacement_that_would_merge_two_rows_is_refused(tmp_path, pg_url):
    path = source(tmp_path, "a\x00b", "a\ufffdb")
    with pytest.raises(CopyRefused, match="table seats: PostgreSQL refused a row .*duplicate key"):
        copy(path, pg_url, nul="replace")
    assert counts(pg_url)["seats"] == 0


@pytest.mark.parametrize("table,poke,expected", [
    ("seats", "UPDATE seats SET role = CAST(X'FF00' AS TEXT) WHERE call_id = 'plain'",
     "table seats, row 1 (room='r', call_id='plain'): column role holds bytes that are not UTF-8 text"),
    ("seats", "UPDATE seats SET caller = X'00FF' WHERE call_id = 'plain'",
     "column caller holds a bytes where text belongs"),
    ("events", "UPDATE events SET at = 'soon'", "column at holds 'soon' where a number belongs"),
    ("seats", "UPDATE seats SET counted = 70000", "column counted holds 70000 where a smallint belongs"),
    ("events", "UPDATE events SET body = X'7B'", "table events: PostgreSQL refused a row (invalid input syntax for type json"),
    ("events", "UPDATE events SET body = X'C328'", "column body holds bytes that are not UTF-8 text"),
    ("call_notes", "UPDATE call_notes SET value = NULL", "table call_notes: PostgreSQL refused a row (null value"),
])
def test_a_hostile_sqlite_file_is_refused_with_a_precise_message_and_nothing_copied(tmp_path, pg_url, table, poke,
                                                                                      expected):
    path = source(tmp_path)
    db = sqlite3.connect(path)
    if "NULL" in poke:  # SQLite will not break its own NOT NULL: a file written by something else might
        db.executescript("PRAGMA writable_schema = ON; UPDATE sqlite_master SET sql = replace(sql, "
                         "'value TEXT NOT NULL', 'value TEXT') WHERE name = 'call_notes';")
        db.close()
        db = sqlite3.connect(path)
    with db:
        db.execute(poke)
    db.close()
    with pytest.raises(CopyRefused) as refused:
        copy(path, pg_url)
    assert expected in str(refused.value) and "nothing was copied" in str(refused.value), str(refused.value)
    assert_untouched_and_live(pg_url, dict.fromkeys(("events", "seats", "rooms", "signature_uses", "call_notes",
                                                      "dialled_calls"), 0))


def test_a_destination_with_rows_is_refused_unless_replace_and_replace_is_all_or_nothing(tmp_path, pg_url):
    path = source(tmp_path)
    with open_store(pg_url) as target:
        target.note("kept", "1", ttl=600)  # only a call note: still somebody's data
    with pytest.raises(CopyRefused, match="already holds 1 call_notes: copy only into an empty store, or pass --replace"):
        copy(path, pg_url)
    bad = source(tmp_path, "x\x00y", name="bad.db")
    with pytest.raises(CopyRefused, match="NUL"):
        copy(bad, pg_url, replace=True)  # refused midway: what was there is still there
    with open_store(pg_url) as target:
        assert target.noted("kept") == "1"
    good = str(tmp_path / "good.db")
    with open_store(good) as store:
        reserve(store, "solo")
    assert copy(good, pg_url, replace=True)["seats"] == 1
    with open_store(pg_url) as target:
        assert target.noted("kept") is None and reserve(target, "solo").again


def test_copy_into_sqlite_is_refused_when_it_holds_rows_and_replaces_when_told(tmp_path, pg_url):
    with open_store(pg_url) as store:
        reserve(store, "from-pg")
        join(store, "from-pg")
    target = str(tmp_path / "home.db")
    with open_store(target) as home:
        reserve(home, "local")
    with pytest.raises(CopyRefused, match="already holds 1 seats"):
        copy(pg_url, target)
    assert copy(pg_url, target, replace=True) == {"events": 1, "seats": 1, "rooms": 0, "signature_uses": 0,
                                                 "call_notes": 0, "dialled_calls": 0, "digit_tries": 0}
    with open_store(target) as home:
        assert [p["callId"] for p in home.room("r")["participants"]] == ["from-pg"]
        assert reserve(home, "from-pg").again


# -- `roomc db upgrade` never adopts another application's tables -----------------------------------

FOREIGN = {"seats": "CREATE TABLE seats (id INTEGER PRIMARY KEY, flight TEXT, seat_no TEXT)",
           "events": "CREATE TABLE events (id INTEGER PRIMARY KEY, title TEXT, starts_on TEXT)",
           "rooms": "CREATE TABLE rooms (room TEXT PRIMARY KEY, floor INTEGER)"}


@pytest.fixture(params=["sqlite", "postgresql"])
def location(request, tmp_path):
    return str(tmp_path / "other.db") if request.param == "sqlite" else request.getfixturevalue("pg_url")


def _execute(location, statement, args=()):
    if location.startswith("postgresql://"):
        with psycopg.connect(location, autocommit=True) as conn:
            cursor = conn.execute(statement.replace("?", "%s"), args)
            return cursor.fetchall() if cursor.description else None
    with sqlite3.connect(location) as db:
        return db.execute(statement, args).fetchall()


@pytest.mark.parametrize("table", sorted(FOREIGN))
def test_upgrade_refuses_a_database_whose_tables_are_another_applications(location, table):
    from roomc.runtime.store import SchemaMismatch

    _execute(location, FOREIGN[table])
    _execute(location, f"INSERT INTO {table} VALUES (1, 'theirs', 'x')" if table != "rooms"
             else "INSERT INTO rooms VALUES ('theirs', 3)")
    with pytest.raises(SchemaMismatch) as refused:
        upgrade(location)
    message = str(refused.value)
    assert f"table {table}" in message and "not roomc's" in message and "a database of its own" in message, message
    with pytest.raises(SchemaMismatch):
        open_store(location)  # serve refuses it too
    assert status(location)["state"] == "foreign"
    # Their data and their table are as they were: no column added, no trigger, nothing of roomc's created.
    assert _execute(location, f"SELECT COUNT(*) FROM {table}")[0][0] == 1
    if location.startswith("postgresql://"):
        assert _execute(location, "SELECT to_regclass('roomc_schema'), to_regclass('signature_uses')")[0] == (None, None)
        assert not _execute(location, "SELECT tgname FROM pg_trigger WHERE NOT tgisinternal")
    else:
        assert {n for (n,) in _execute(location, "SELECT name FROM sqlite_master")} == {table} | (
            {f"sqlite_autoindex_{table}_1"} if table == "rooms" else set())


def test_a_foreign_roomc_schema_table_is_refused_too(location):
    from roomc.runtime.store import SchemaMismatch

    _execute(location, "CREATE TABLE roomc_schema (id INTEGER PRIMARY KEY, name TEXT)")
    with pytest.raises(SchemaMismatch, match="table roomc_schema"):
        upgrade(location)


def test_unrelated_tables_beside_roomcs_are_left_alone(location):
    _execute(location, "CREATE TABLE invoices (id INTEGER PRIMARY KEY, total REAL)")
    upgrade(location)
    with open_store(location) as store:
        assert reserve(store, "a").admitted
    assert _execute(location, "SELECT COUNT(*) FROM invoices")[0][0] == 0


def test_table_columns_is_what_both_stores_make(location):
    """TABLE_COLUMNS tells roomc's tables from another application's: a column added to either
    store's schema must be added there too (and to OPTIONAL_COLUMNS, since older stores lack it)."""
    from roomc.runtime.store import TABLE_COLUMNS

    with open_store(location) as store:
        store.record_dialled_call("r", "a")  # a SQLite store makes this table on first use
    if location.startswith("postgresql://"):
        rows = _execute(location, "SELECT c.relname, a.attname FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid "
                                  "WHERE c.relname = ANY(?) AND c.relkind = 'r' AND a.attnum > 0 AND NOT a.attisdropped",
                        (list(TABLE_COLUMNS),))
    else:
        rows = [(t, c[1]) for t in TABLE_COLUMNS for c in _execute(location, f'PRAGMA table_info("{t}")')]
    made: dict = {}
    for table, column in rows:
        made.setdefault(table, set()).add(column)
    assert made == TABLE_COLUMNS
