"""Choosing a store and managing its schema: `open_store`, `status`, `upgrade`, `copy`.

A `--db` value that starts with `postgresql://` (or `postgres://`) names a PostgreSQL
database (runtime/postgres.py); anything else is a SQLite file (runtime/store.py).
"""
from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from .postgres import PostgresStore, is_url, redact
from .store import SCHEMA_VERSION, SchemaMismatch, SQLiteStore, sqlite_schema_version

# Copied in this order: events first, since inserting them re-derives seats and rooms, which
# are then overwritten with the source's rows (reservations live only in seats). Each with its key.
COPIED_TABLES = {"events": ("dedupe",), "seats": ("room", "call_id"), "rooms": ("room",),
                 "signature_uses": ("signature", "request"), "call_notes": ("key",), "dialled_calls": ("call_id",)}

__all__ = ["COPIED_TABLES", "SchemaMismatch", "copy", "describe", "is_url", "open_store", "status", "upgrade"]


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
    if is_url(location):
        import psycopg

        from .postgres import schema_version

        with psycopg.connect(location, autocommit=True, connect_timeout=5) as conn:
            found = schema_version(conn)
        kind = "postgresql"
    else:
        if not Path(location).exists():
            found = None
        else:
            db = sqlite3.connect(f"file:{Path(location).resolve()}?mode=ro", uri=True)
            try:
                found = sqlite_schema_version(db)
            finally:
                db.close()
        kind = "sqlite"
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


def _has_table(store: SQLiteStore | PostgresStore, table: str) -> bool:
    if isinstance(store, PostgresStore):
        with store._conn() as conn:
            return bool(conn.execute("SELECT to_regclass(%s) IS NOT NULL", (table,)).fetchone()[0])  # type: ignore[index]
    return store._connection().execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
                                       (table,)).fetchone() is not None


def _rows(store: SQLiteStore | PostgresStore, table: str) -> tuple[list[str], list[tuple]]:
    if not _has_table(store, table):  # a SQLite store creates dialled_calls on first use
        return [], []
    if isinstance(store, PostgresStore):
        with store._conn() as conn:
            cursor = conn.execute(f"SELECT * FROM {table} LIMIT 0")
            columns = [c.name for c in cursor.description or []]
            select = ", ".join(f"{c}::text" if c == "body" else c for c in columns)
            rows = conn.execute(f"SELECT {select} FROM {table}").fetchall()
        return columns, [tuple(v.encode() if c == "body" else v for c, v in zip(columns, row, strict=True)) for row in rows]
    found = store._connection().execute(f"SELECT * FROM {table}")
    names = [c[0] for c in found.description]
    return names, [tuple(row) for row in found.fetchall()]


def _is_empty(store: SQLiteStore | PostgresStore) -> bool:
    if isinstance(store, PostgresStore):
        with store._conn() as conn:
            return all(conn.execute(f"SELECT NOT EXISTS (SELECT 1 FROM {t})").fetchone()[0]  # type: ignore[index]
                       for t in ("events", "seats", "rooms"))
    db = store._connection()
    return all(db.execute(f"SELECT NOT EXISTS (SELECT 1 FROM {t})").fetchone()[0] for t in ("events", "seats", "rooms"))


def copy(source: str, destination: str) -> dict[str, int]:
    """Copy every row of every table from one store to another (e.g. a SQLite file into PostgreSQL):
    rows per table.

    Both must be at the current schema version (the destination is created if empty) and the
    destination must hold no rows, so a copy never merges two histories. One transaction in the
    destination: a failed copy leaves it empty.
    """
    with open_store(source) as src, open_store(destination) as dst:
        if not _is_empty(dst):
            raise ValueError(f"{describe(destination)} already holds rooms, seats or events; copy only into an empty store")
        data = {table: _rows(src, table) for table in COPIED_TABLES}
        if isinstance(dst, PostgresStore):
            with dst._conn() as conn, conn.transaction():
                for table, (columns, rows) in data.items():
                    _insert(conn, table, columns, rows, "%s", {"body": "%s::json"}, lambda c, v: (
                        v.decode() if c == "body" and isinstance(v, bytes) else v))
        else:
            from .store import DIALLED_SCHEMA

            db = dst._connection()
            with dst._write():
                db.execute(DIALLED_SCHEMA)
                db.execute("BEGIN IMMEDIATE")
                try:
                    for table, (columns, rows) in data.items():
                        _insert(db, table, columns, rows, "?", {}, lambda c, v: v)
                    db.execute("COMMIT")
                except BaseException:
                    db.execute("ROLLBACK")
                    raise
    return {table: len(rows) for table, (_, rows) in data.items()}


def _insert(conn: Any, table: str, columns: list[str], rows: list[tuple], mark: str, casts: dict[str, str],
            convert: Any) -> None:
    """Insert (or, for derived rows, overwrite) `rows` into `table` with the connection's placeholders."""
    if not rows:
        return
    keys = COPIED_TABLES[table]
    marks = ", ".join(casts.get(c, mark) for c in columns)
    updates = ", ".join(f"{c} = excluded.{c}" for c in columns if c not in keys)
    conflict = f"DO UPDATE SET {updates}" if updates and table != "events" else "DO NOTHING"
    statement = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks}) ON CONFLICT ({', '.join(keys)}) {conflict}"
    for row in rows:
        conn.execute(statement, tuple(convert(c, v) for c, v in zip(columns, row, strict=True)))
