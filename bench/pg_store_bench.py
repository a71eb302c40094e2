"""The PostgreSQL store's join cost in-process, without a server: microseconds per reservation.

Three ways, taking turns for `--rounds` rounds of `--joins` each: a signed join as two round
trips (bind_signature, then reserve), a signed join as one (`reserve(bind=...)`), and an
unsigned reserve. Creates (and drops) its own database on the server at `--db`.
Usage: python bench/pg_store_bench.py --db postgresql://USER@HOST:PORT/postgres [--joins 1000] [--rounds 3]
"""
from __future__ import annotations

import argparse
import time

import psycopg

from roomc.runtime.storage import open_store
from roomc.runtime.store import Binding


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", required=True, help="a PostgreSQL server URL; a new database is made in it")
    parser.add_argument("--joins", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    name = f"store_bench_{int(time.time())}"
    with psycopg.connect(args.db, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    store = open_store(args.db.rsplit("/", 1)[0] + "/" + name)
    counter = [0]

    def reserve(bind: bool) -> None:
        counter[0] += 1
        n = counter[0]
        store.reserve(f"room-{n // 5}", f"call-{n}", "member", counted=True, limit=10, ttl=60, muted=False,
                      deadline=time.monotonic() + 2, bind=Binding(f"sig-{n}", "POST /j", time.time() + 300) if bind else None)

    def two_trips() -> None:
        counter[0] += 1
        assert store.bind_signature(f"sig2-{counter[0]}", "POST /j", expires_at=time.time() + 300,
                                    deadline=time.monotonic() + 2)
        reserve(False)

    ways = {"signed, bind_signature + reserve (2 round trips)": two_trips,
            "signed, reserve(bind=...) (1 round trip)": lambda: reserve(True),
            "unsigned reserve": lambda: reserve(False)}
    results: dict[str, list[float]] = {label: [] for label in ways}
    try:
        for way in ways.values():
            for _ in range(100):
                way()  # warm: connections open, statements prepared
        for _ in range(args.rounds):
            for label, way in ways.items():
                started = time.perf_counter()
                for _ in range(args.joins):
                    way()
                results[label].append((time.perf_counter() - started) / args.joins * 1e6)
    finally:
        store.close()
        with psycopg.connect(args.db, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE "{name}"')
    for label, runs in results.items():
        print(f"{label}: " + ", ".join(f"{us:,.0f}" for us in runs) + " us a join")


if __name__ == "__main__":
    main()
