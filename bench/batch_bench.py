"""What group commit saves (runtime/batch.py): the CPU a seat costs alone and in batches.

    python bench/batch_bench.py [--seats 4000] [--db postgresql://USER@HOST:PORT/DB]

Takes the same seats (five calls a room, new rooms) through `reserve` one at a time and through
`reserve_many` in batches of 2, 4, 8 and 16, taking turns, on a fresh SQLite file and, with --db,
on PostgreSQL. Reports microseconds of CPU a seat: this process's (the worker's share) and, on
PostgreSQL, the server backend's (from /proc), so the figures do not depend on what else the
machine is doing as much as wall time would.
"""
from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from roomc.runtime.storage import open_store
from roomc.runtime.store import SeatRequest

SIZES = (1, 2, 4, 8, 16)


def backend_cpu(store) -> tuple[int, float] | None:
    """The PostgreSQL backend serving this process's pooled connection, and its CPU seconds so far."""
    if not hasattr(store, "_conn"):
        return None
    with store._conn() as conn:
        pid = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
    return pid, _cpu_of(pid)


def _cpu_of(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(store, size: int, seats: int, prefix: str) -> tuple[float, float]:
    """CPU microseconds a seat (this process, the database backend) for `seats` seats in batches of `size`."""
    backend = backend_cpu(store)
    requests = [SeatRequest(f"{prefix}-{i // 5}", f"call-{i}", "member", True, 10, 60, False) for i in range(seats)]
    started = time.process_time()
    for first in range(0, seats, size):
        batch = requests[first:first + size]
        if size == 1:
            store.reserve(batch[0].room, batch[0].call_id, "member", counted=True, limit=10, ttl=60, muted=False)
        else:
            store.reserve_many(batch)
    worker = (time.process_time() - started) / seats * 1e6
    database = (_cpu_of(backend[0]) - backend[1]) / seats * 1e6 if backend else 0.0
    return worker, database


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seats", type=int, default=4000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--db", default=None, help="also measure this PostgreSQL database")
    args = parser.parse_args()
    stores = {"SQLite": str(Path(tempfile.mkdtemp(prefix="roomc-batch-")) / "roomc.db")}
    if args.db:
        stores["PostgreSQL"] = args.db
    print(f"CPU a seat, us (median of {args.rounds} rounds of {args.seats:,} seats; worker + database backend)\n")
    print("| store | " + " | ".join("alone" if n == 1 else f"batches of {n}" for n in SIZES) + " |")
    print("| --- |" + " ---: |" * len(SIZES))
    for name, location in stores.items():
        with open_store(location) as store:
            store.reserve_many([SeatRequest("warm", "w", "member", True, 10, 60, False)] * 2)  # prepare statements
            runs: dict[int, list[tuple[float, float]]] = {size: [] for size in SIZES}
            for round_ in range(args.rounds):
                for size in SIZES:  # taking turns, so a slow spell of the machine hits every size alike
                    runs[size].append(measure(store, size, args.seats, f"{time.time_ns()}-{round_}-{size}"))
            cells = []
            for size in SIZES:
                worker = statistics.median(w for w, _ in runs[size])
                database = statistics.median(d for _, d in runs[size])
                cells.append(f"{worker + database:,.0f} ({worker:,.0f} + {database:,.0f})" if args.db and
                             name == "PostgreSQL" else f"{worker:,.0f}")
            print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
