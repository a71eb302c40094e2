"""The PostgreSQL store's join cost in-process, without a server: microseconds per join.

Taking turns for `--rounds` rounds of `--joins` each: a signed join as two round trips
(bind_signature, then reserve), a signed join as one (`reserve(bind=...)`), an unsigned
reserve, and the whole join handler (rooms/meeting.yaml, unsigned; CPU and wall time) on
PostgreSQL and on a SQLite file. Creates (and drops) its own database on the server at `--db`.
Usage: python bench/pg_store_bench.py --db postgresql://USER@HOST:PORT/postgres [--joins 1000] [--rounds 3]
"""
from __future__ import annotations

import argparse
import io
import tempfile
import time
from pathlib import Path

import psycopg

from roomc.compiler import pipeline
from roomc.runtime import Settings, create_app
from roomc.runtime.storage import open_store
from roomc.runtime.store import Binding

ROOT = Path(__file__).resolve().parent.parent


def handler(store, counter: list[int]):
    """One unsigned join through the app's WSGI callable, as granian would call it."""
    table = pipeline.run([str(ROOT / "rooms" / "meeting.yaml")]).table
    app = create_app(table, store=store, settings=Settings(public_url="https://rooms.example.com"))

    def join() -> None:
        counter[0] += 1
        n = counter[0]
        body = f"CallId=h-{n}&From=%2B254700000001&To=%2B254700000002&Direction=inbound".encode()
        environ = {"REQUEST_METHOD": "POST", "PATH_INFO": "/conference/join", "QUERY_STRING": f"room={n // 5}&host=0",
                   "CONTENT_TYPE": "application/x-www-form-urlencoded", "CONTENT_LENGTH": str(len(body)),
                   "wsgi.input": io.BytesIO(body), "SERVER_NAME": "bench", "SERVER_PORT": "80", "wsgi.url_scheme": "http"}
        assert b"conference" in b"".join(app(environ, lambda status, headers: None))

    return join


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

    local = open_store(str(Path(tempfile.mkdtemp(prefix="roomc-store-bench-")) / "roomc.db"))
    ways = {"signed, bind_signature + reserve (2 round trips)": two_trips,
            "signed, reserve(bind=...) (1 round trip)": lambda: reserve(True),
            "unsigned reserve": lambda: reserve(False),
            "join handler, PostgreSQL": handler(store, counter),
            "join handler, SQLite": handler(local, counter)}
    results: dict[str, list[float]] = {label: [] for label in ways}
    cpu: dict[str, list[float]] = {label: [] for label in ways}
    try:
        for way in ways.values():
            for _ in range(100):
                way()  # warm: connections open, statements prepared
        for _ in range(args.rounds):
            for label, way in ways.items():
                started, used = time.perf_counter(), time.thread_time()
                for _ in range(args.joins):
                    way()
                results[label].append((time.perf_counter() - started) / args.joins * 1e6)
                cpu[label].append((time.thread_time() - used) / args.joins * 1e6)
    finally:
        store.close()
        local.close()
        with psycopg.connect(args.db, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE "{name}"')
    for label, runs in results.items():
        print(f"{label}: " + ", ".join(f"{us:,.0f}" for us in runs) + " us a join (CPU of this thread: "
              + ", ".join(f"{us:,.0f}" for us in cpu[label]) + ")")


if __name__ == "__main__":
    main()
