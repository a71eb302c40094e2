"""Choosing a store and managing its schema: `open_store`, `status`, `upgrade`, `copy`.

A `--db` value that starts with `postgresql://` (or `postgres://`) names a PostgreSQL
database (runtime/postgres.py); anything else is a SQLite file (runtime/store.py).
"""
from __future__ import annotations

import sqlite3
from pathlib import Path
from contextlib import contextmanager
from typing import Any, Iterable, Iterator

from .postgres import PostgresStore, is_url, redact
from .store import SCHEMA_VERSION, ForeignTables, SchemaMismatch, SQLiteStore, short_dedupe, sqlite_schema_version

# Copied in this order: events first, since inserting them re-derives seats and rooms, which
# are then overwritten with the source's rows (reservations live only in seats). Each with its key.
COPIED_TABLES = {"events": ("dedupe",), "seats": ("room", "call_id"), "rooms": ("room",),
                 "signature_uses": ("signature", "request"), "call_notes": ("key",), "dialled_calls": ("call_id",),
                 "digit_tries": ("call_id", "flow")}

__all__ = ["COPIED_TABLES", "CopyRefused", "SchemaMismatch", "copy", "describe", "is_url", "open_store", "status", "upgrade"]


def describe(location: str) -> str:
    """The location as it may be shown to a person (no password)."""
    return redact(location) if is_url(location) else location


def open_store(location: str, *, upgrade: bool = False, **options: Any) -> SQLiteStore | PostgresStore:
    """The store at `location`: a PostgreSQL URL or a SQLite path.

    An empty store is given the current schema; one at another schema version raises
    SchemaMismatch (whose message says what to run), unless `upgrade=True`.
    """
    if is_url(location):
        return PostgresStore(location, upgrade=upgrade, **options)
    return SQLiteStore(location, upgrade=upgrade, **options)


def status(location: str) -> dict:
    """The store's kind, schema version and what to do about it; never creates or changes anything."""
    found: int | None = None
    foreign: ForeignTables | None = None
    if is_url(location):
        import psycopg

        from .postgres import schema_version

        kind = "postgresql"
        try:
            with psycopg.connect(location, autocommit=True, connect_timeout=5) as conn:
                found = schema_version(conn, describe(location))
        except ForeignTables as exc:
            foreign = exc
    else:
        kind = "sqlite"
        if not Path(location).exists():
            found = None
        else:
            db = sqlite3.connect(f"file:{Path(location).resolve()}?mode=ro", uri=True)
            try:
                found = sqlite_schema_version(db, location)
            except ForeignTables as exc:
                foreign = exc
            finally:
                db.close()
    if foreign is not None:
        return {"store": kind, "location": describe(location), "version": None, "expected": SCHEMA_VERSION,
                "state": "foreign", "advice": str(foreign)}
    if found is None:
        state, advice = "empty", "roomc serve or roomc db upgrade creates the schema"
    elif found < SCHEMA_VERSION:
        state, advice = "older", f"run `roomc db upgrade --db {describe(location)}` (back it up first)"
    elif found > SCHEMA_VERSION:
        state, advice = "newer", "a newer roomc created it: run that roomc against it"
    else:
        state, advice = "current", "nothing to do"
    return {"store": kind, "location": describe(location), "version": found, "expected": SCHEMA_VERSION,
            "state": state, "advice": advice}


def upgrade(location: str) -> tuple[int | None, int]:
    """Create or upgrade the store's schema to the current version: (version before, after)."""
    before = status(location)["version"]
    open_store(location, upgrade=True).close()
    return before, SCHEMA_VERSION


class CopyRefused(ValueError):
    """A copy that would lose, change or merge data; nothing was written to the destination."""


# Where PostgreSQL text cannot go: NUL. `refuse` (the default) names the row; `replace` stores
# U+FFFD, exactly what the live PostgreSQL store does with a NUL in a request (runtime/postgres.py _clean).
NUL_POLICIES = ("refuse", "replace")
_RANGES = {"smallint": 2 ** 15, "integer": 2 ** 31, "bigint": 2 ** 63}


class _BadText(bytes):
    """A SQLite TEXT value that is not UTF-8 (SQLite stores whatever bytes it is given)."""


def _decode(raw: bytes) -> str | _BadText:
    try:
        return raw.decode()
    except UnicodeDecodeError:
        return _BadText(raw)


@contextmanager
def _source_rows(location: str, table: str) -> Iterator[tuple[list[str], Iterable[tuple]]]:
    """The table's column names and its rows, read in chunks ([] and no rows when the store has no such table)."""
    if is_url(location):
        import psycopg

        with psycopg.connect(location, autocommit=True) as conn:
            found = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (table,)).fetchone()
            if not (found and found[0]):
                yield [], ()
                return
            columns = [c.name for c in conn.execute(f"SELECT * FROM {table} LIMIT 0").description or []]
            select = ", ".join(f"{c}::text" if c == "body" else c for c in columns)
            with conn.transaction(), conn.cursor(name=f"roomc_copy_{table}") as cursor:
                cursor.itersize = 5000
                yield columns, cursor.execute(f"SELECT {select} FROM {table}")
        return
    db = sqlite3.connect(f"file:{Path(location).resolve()}?mode=ro", uri=True)
    try:
        db.text_factory = _decode
        if db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)).fetchone() is None:
            yield [], ()  # a SQLite store creates dialled_calls on first use
            return
        rows = db.execute(f"SELECT * FROM {table}")
        yield [c[0] for c in rows.description], rows
    finally:
        db.close()


def _where(location: str, table: str, columns: list[str], row: tuple, number: int) -> str:
    keys = COPIED_TABLES[table]
    named = ", ".join(f"{c}={_shown(v)}" for c, v in zip(columns, row, strict=True) if c in keys)
    return f"{describe(location)}: table {table}, row {number} ({named})"


def _shown(value: object) -> str:
    text = repr(bytes(value) if isinstance(value, _BadText) else value)
    return text if len(text) <= 80 else text[:77] + "..."


def _for_postgres(location: str, table: str, columns: list[str], kinds: list[str], row: tuple, number: int,
                  nul: str) -> tuple:
    """One source row as PostgreSQL takes it, checked column by column; CopyRefused names what cannot go."""
    out: list[object] = []
    for column, kind, value in zip(columns, kinds, row, strict=True):
        if value is None:
            out.append(None)
            continue
        problem = None
        if isinstance(value, _BadText):
            problem = f"column {column} holds bytes that are not UTF-8 text: {_shown(value)}"
        elif kind in ("text", "json"):
            if isinstance(value, bytes) and kind == "json":
                try:
                    value = value.decode()
                except UnicodeDecodeError:
                    problem = f"column {column} holds bytes that are not UTF-8 text: {_shown(value)}"
            if problem is None and not isinstance(value, str):
                problem = f"column {column} holds a {type(value).__name__} where text belongs: {_shown(value)}"
            elif problem is None and "\x00" in value:
                if nul == "replace":
                    value = value.replace("\x00", "\ufffd")
                else:
                    problem = (f"column {column} holds a NUL character, which PostgreSQL text cannot store: "
                               f"{_shown(value)}; rerun with --nul replace to store it as U+FFFD, as the "
                               "PostgreSQL store does with a NUL in a live request")
        elif kind in _RANGES:
            if not isinstance(value, int) or isinstance(value, bool) or not -_RANGES[kind] <= value < _RANGES[kind]:
                problem = f"column {column} holds {_shown(value)} where a {kind} belongs"
        elif not isinstance(value, (int, float)) or isinstance(value, bool):
            problem = f"column {column} holds {_shown(value)} where a number belongs"
        if problem is not None:
            raise CopyRefused(f"{_where(location, table, columns, row, number)}: {problem}; nothing was copied")
        if table == "events" and column == "dedupe" and isinstance(value, str):
            value = short_dedupe(value)  # as the store keys it now: a redelivery stays a duplicate
        out.append(value)
    return tuple(out)


def _held(conn: Any, tables: Any, has_table: Any) -> dict[str, int]:
    held = {}
    for table in tables:
        if has_table(table):
            row = conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()
            if row[0]:
                held[table] = int(row[0])
    return held


def _refuse_held(destination: str, held: dict[str, int]) -> None:
    if held:
        raise CopyRefused(f"{describe(destination)} already holds " + ", ".join(f"{n} {t}" for t, n in held.items())
                          + ": copy only into an empty store, or pass --replace to delete them in the same "
                          "transaction as the copy")


def copy(source: str, destination: str, *, replace: bool = False, nul: str = "refuse") -> dict[str, int]:
    """Copy every row of every table from one store to another (e.g. a SQLite file into PostgreSQL):
    rows per table.

    Both must be at the current schema version (the destination is created if empty). One
    transaction in the destination: a copy that fails for any reason leaves it as it was.
    A destination holding rows is refused, so two histories are never merged, unless `replace`
    (its rows are deleted in the same transaction). A row PostgreSQL cannot hold as it is (a NUL
    character, text that is not UTF-8, a value of the wrong type) is refused with its table, row
    and key (CopyRefused); with `nul="replace"` a NUL is stored as U+FFFD instead.
    """
    if nul not in NUL_POLICIES:
        raise ValueError(f"nul must be one of {NUL_POLICIES}")
    with open_store(source), open_store(destination):
        pass  # both at the current schema version; the destination created if it was empty
    if is_url(destination):
        return _into_postgres(source, destination, replace, nul)
    return _into_sqlite(source, destination, replace)


def _into_postgres(source: str, destination: str, replace: bool, nul: str) -> dict[str, int]:
    import psycopg

    counts: dict[str, int] = {}
    # Not a pooled connection: the pool's statement_timeout (2 s) is for requests, not a bulk copy.
    with psycopg.connect(destination, autocommit=True) as conn, conn.transaction():
        conn.execute("SET LOCAL statement_timeout = 0")
        conn.execute("SET LOCAL lock_timeout = '10s'")
        # Writers wait (readers do not) until the copy commits, so no row slips in between the
        # emptiness check and the copy.
        conn.execute(f"LOCK TABLE {', '.join(COPIED_TABLES)} IN EXCLUSIVE MODE")
        held = _held(conn, COPIED_TABLES, lambda t: True)
        if not replace:
            _refuse_held(destination, held)
        elif held:
            conn.execute(f"TRUNCATE {', '.join(COPIED_TABLES)}")
        # Seats and rooms are copied exactly as they were, so the trigger that derives them from
        # each event is off for the copy (ALTER TABLE is transactional: a failed copy turns it back on).
        conn.execute("ALTER TABLE events DISABLE TRIGGER roomc_derive")
        for table in COPIED_TABLES:
            types: dict[str, str] = dict(conn.execute(
                "SELECT attname, format_type(atttypid, NULL) FROM pg_attribute "
                "WHERE attrelid = to_regclass(%s) AND attnum > 0 AND NOT attisdropped", (table,)).fetchall())
            number = 0
            try:
                with _source_rows(source, table) as (columns, rows):
                    if columns:
                        kinds = [types.get(c, "text") for c in columns]
                        with conn.cursor().copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as stream:
                            for number, row in enumerate(rows, 1):
                                stream.write_row(_for_postgres(source, table, columns, kinds, row, number, nul))
            except psycopg.Error as exc:
                diag = exc.diag
                said = "; ".join(x for x in (diag.message_primary, diag.message_detail, diag.context) if x)
                raise CopyRefused(f"{describe(source)}: table {table}: PostgreSQL refused a row ({said or exc}); "
                                  "nothing was copied") from None
            counts[table] = number
        conn.execute("ALTER TABLE events ENABLE TRIGGER roomc_derive")
    return counts


def _into_sqlite(source: str, destination: str, replace: bool) -> dict[str, int]:
    from .store import DIALLED_SCHEMA

    counts: dict[str, int] = {}
    with SQLiteStore(destination) as dst:
        db = dst._connection()
        with dst._write():
            db.execute(DIALLED_SCHEMA)
            db.execute("BEGIN IMMEDIATE")
            try:
                held = _held(db, COPIED_TABLES, lambda t: True)
                if not replace:
                    _refuse_held(destination, held)
                for table in held:
                    db.execute(f"DELETE FROM {table}")
                for table in COPIED_TABLES:
                    with _source_rows(source, table) as (columns, rows):
                        counts[table] = _insert_sqlite(db, table, columns, rows)
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
    return counts


def _insert_sqlite(db: sqlite3.Connection, table: str, columns: list[str], rows: Iterable[tuple]) -> int:
    """Insert (or, for derived rows, overwrite) `rows` into `table`, in batches; how many."""
    if not columns:
        return 0
    keys = COPIED_TABLES[table]
    updates = ", ".join(f"{c} = excluded.{c}" for c in columns if c not in keys)
    # Events go in first and their triggers derive seats and rooms; the source's own seat and room
    # rows (reservations live only there) then overwrite what was derived.
    conflict = f"DO UPDATE SET {updates}" if updates and table != "events" else "DO NOTHING"
    statement = (f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' for _ in columns)}) "
                 f"ON CONFLICT ({', '.join(keys)}) {conflict}")
    body = columns.index("body") if "body" in columns else -1
    dedupe = columns.index("dedupe") if table == "events" and "dedupe" in columns else -1
    count = 0
    batch: list[tuple] = []
    for row in rows:
        if body >= 0 and isinstance(row[body], str):
            row = (*row[:body], row[body].encode(), *row[body + 1:])  # events.body is a BLOB in SQLite
        if dedupe >= 0 and isinstance(row[dedupe], str):
            row = (*row[:dedupe], short_dedupe(row[dedupe]), *row[dedupe + 1:])  # as the store keys it now
        batch.append(row)
        if len(batch) == 5000:
            db.executemany(statement, batch)
            count, batch = count + len(batch), []
    if batch:
        db.executemany(statement, batch)
    return count + len(batch)
