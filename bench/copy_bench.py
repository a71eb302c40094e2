"""How fast `roomc db copy` moves a SQLite file into PostgreSQL: rows per second.

Builds a SQLite store with `--events` status events (joins and leaves over 1,000 rooms) and one
reservation per call, through the store itself (so the rows are what roomc writes), then copies
it into a new database of the server at `--db` and reports the time and rows/s.
Usage: python bench/copy_bench.py --db postgresql://USER@HOST:PORT/postgres [--events 100000]
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import psycopg

from roomc.runtime import normalise
from roomc.runtime.storage import copy, open_store

NOW = 1_800_000_000.0


def build(path: str, events: int) -> int:
    """A SQLite store holding `events` events and a seat per call; how many rows it holds in all."""
    rows = 0
    with open_store(path) as store:
        for i in range(events // 2):
            room, call = f"bench-{i % 1000}", f"call-{i}"
            store.reserve(room, call, "member", counted=True, limit=10_000, ttl=3600, muted=False, now=NOW + i)
            for n, kind in enumerate(("join", "leave")):
                store.record(normalise.event({"ConferenceName": room, "StatusCallbackEvent": kind, "CallId": call,
                                              "Timestamp": NOW + i + n}, now=NOW + i + n))
            rows += 3
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", required=True, help="a PostgreSQL server URL; a new database is created in it")
    parser.add_argument("--events", type=int, default=100_000)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="roomc-copy-bench-"))
    source = str(work / "roomc.db")
    started = time.perf_counter()
    rows = build(source, args.events)
    print(f"built {source}: {rows} rows in {time.perf_counter() - started:.1f} s")
    name = f"copy_bench_{int(time.time())}"
    with psycopg.connect(args.db, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    target = args.db.rsplit("/", 1)[0] + "/" + name
    try:
        started = time.perf_counter()
        counts = copy(source, target)
        took = time.perf_counter() - started
        total = sum(counts.values())
        print(f"copied {counts} in {took:.2f} s: {total / took:,.0f} rows/s")
    finally:
        with psycopg.connect(args.db, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE "{name}"')


if __name__ == "__main__":
    main()
