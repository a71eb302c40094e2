"""Side by side, one run: roomc's join route vs the platform page's Express handler vs constant bytes.

All three listen on loopback; wrk (same machine, 2 threads, 64 connections) drives each in turn.
The roomc join route does its real work: role selection, rendering and a seat reservation
written to SQLite. Then the events route is driven and the stored rows are counted.
Runs on a shared 2-core machine vary by 10-20 %, so the three servers take turns for several
rounds and the table shows each one's median round, with the range beside it.
With `--db postgresql://USER@HOST:PORT/DB`, a second roomc serves the same table from that
(empty, or at least seat-free) PostgreSQL database and joins the rotation, so both stores are
measured side by side; its events run is counted in the database. It runs as `roomc serve`
does for a database URL (one worker per core); `--pg-workers` and `--pg-blocking-threads` shape
it on its own. `--cpu` adds the CPU each request cost, from /proc: the server's processes
(every thread of granian's workers) and, for PostgreSQL, the database server's processes on
this machine (its backends, WAL writer and the rest, as pg_stat_activity lists them); wrk's
own CPU is not counted. On a shared 2-core machine requests/s follows that total.
Usage: python bench/serve_bench.py [--seconds 10] [--rounds 3] [--connections 64] [--workers N]
                                   [--db postgresql://...] [--pg-workers N] [--pg-blocking-threads N] [--cpu]
"""
from __future__ import annotations

import argparse
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_up(url: str, process: subprocess.Popen, seconds: float = 30) -> None:
    deadline = time.time() + seconds
    while time.time() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"server for {url} exited early")
        try:
            urllib.request.urlopen(urllib.request.Request(url, data=b"CallId=warm", method="POST"), timeout=2)
            return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"{url} did not come up")


def wrk(url: str, kind: str, seconds: int, connections: int, run: str = "") -> dict:
    out = subprocess.run(["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", "-s",
                          str(HERE / "webhook.lua"), url], env={**os.environ, "BENCH_KIND": kind, "BENCH_RUN": run},
                         capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    total = int(re.search(r"(\d+) requests in", out).group(1))
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[p99.group(2)]
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    return {"rps": rps, "total": total, "p99_ms": float(p99.group(1)) * scale,
            "non2xx": int(non2xx.group(1)) if non2xx else 0, "socket_errors": errors.group(1) if errors else "none"}


def process_cpu(pids: set[int] | None = None, group: int | None = None) -> float:
    """Seconds of CPU (user + system) the processes in `pids`, or in process group `group`, have used so far."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or (pids is not None and int(entry) not in pids):
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except OSError:
            continue  # gone meanwhile
        if group is not None and int(fields[2]) != group:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / ticks


def database_pids(location: str) -> set[int]:
    """The PostgreSQL server's processes (backends and background workers), if it runs on this machine."""
    import psycopg

    with psycopg.connect(location, autocommit=True) as conn:
        pids = {row[0] for row in conn.execute("SELECT pid FROM pg_stat_activity")}
    return {pid for pid in pids if os.path.exists(f"/proc/{pid}")}


def median_round(runs: list[dict]) -> dict:
    """The median of each measure over rounds (requests/s and p99 each taken on their own)."""
    return {"rps": statistics.median(run["rps"] for run in runs),
            "p99_ms": statistics.median(run["p99_ms"] for run in runs)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3, help="turns each server takes; the median is reported")
    parser.add_argument("--workers", type=int, default=None,
                        help="granian workers for roomc and the constant app alike (default: roomc serve's)")
    parser.add_argument("--blocking-threads", type=int, default=None,
                        help="granian threads per worker for roomc and the constant app alike (default: roomc serve's)")
    parser.add_argument("--db", default=None, help="also measure roomc on this PostgreSQL database")
    parser.add_argument("--pg-workers", type=int, default=None, help="workers for the PostgreSQL roomc")
    parser.add_argument("--pg-blocking-threads", type=int, default=None,
                        help="threads per worker for the PostgreSQL roomc")
    parser.add_argument("--cpu", action="store_true", help="also report CPU microseconds a request (from /proc)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="roomc-bench-"))
    table = work / "routes.json"
    subprocess.run([sys.executable, "-c", "from roomc.cli import run; run()", "compile", str(ROOT / "rooms/meeting.yaml"),
                    "-o", str(table)], check=True)
    names = ("roomc", "roomc-pg", "express", "constant") if args.db else ("roomc", "express", "constant")
    ports = {name: free_port() for name in names}
    env = {**os.environ, "ROOMC_LOG_LEVEL": "WARNING"}
    from roomc.cli.serve import DEFAULT_BLOCKING_THREADS, default_workers

    threads = str(args.blocking_threads or DEFAULT_BLOCKING_THREADS)
    workers = str(args.workers or default_workers())
    pg_workers = str(args.pg_workers or args.workers or default_workers())
    procs = {
        "roomc": subprocess.Popen([sys.executable, "-c", "from roomc.cli import run; run()", "serve", str(table),
                                   "--port", str(ports["roomc"]), "--db", str(work / "roomc.db"),
                                   "--workers", workers, "--blocking-threads", threads,
                                   "--allow-unsigned"], env=env,  # wrk does not sign; as measured before fail-closed
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True),
        **({"roomc-pg": subprocess.Popen(
            [sys.executable, "-c", "from roomc.cli import run; run()", "serve", str(table), "--port",
             str(ports["roomc-pg"]), "--db", args.db, "--workers", pg_workers,
             "--blocking-threads", str(args.pg_blocking_threads or threads), "--allow-unsigned"], env=env,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)} if args.db else {}),
        "express": subprocess.Popen(["node", str(HERE / "express/server.js")], env={**env, "PORT": str(ports["express"])},
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True),
        "constant": subprocess.Popen([sys.executable, "-m", "granian", "--interface", "wsgi", "--host", "127.0.0.1",
                                      "--port", str(ports["constant"]), "--workers", workers, "--blocking-threads", threads,
                                      "--no-access-log", "constant_app:app"], cwd=HERE, env=env,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True),
    }
    try:
        for name, port in ports.items():
            wait_until_up(f"http://127.0.0.1:{port}/conference/join?room=warm", procs[name])
        for port in ports.values():
            wrk(f"http://127.0.0.1:{port}", "join", 2, args.connections)  # warm-up
        rounds: dict[str, list[dict]] = {name: [] for name in ports}
        database = database_pids(args.db) if args.db and args.cpu else set()
        load_before = os.getloadavg()[0]
        for _ in range(args.rounds):
            for name, port in ports.items():
                if args.cpu:
                    server, db_before = process_cpu(group=procs[name].pid), process_cpu(database)
                run = wrk(f"http://127.0.0.1:{port}", "join", args.seconds, args.connections)
                if args.cpu:
                    run["server_us"] = (process_cpu(group=procs[name].pid) - server) / run["total"] * 1e6
                    run["db_us"] = (process_cpu(database) - db_before) / run["total"] * 1e6 if name == "roomc-pg" else 0.0
                rounds[name].append(run)
        sys.path.insert(0, str(ROOT))
        from roomc.runtime.storage import open_store

        counted: dict[str, tuple[dict, int]] = {}
        for name, location in (("roomc", str(work / "roomc.db")), ("roomc-pg", args.db)):
            if name in ports:
                with open_store(location) as store:
                    before = store.count_events()
                    server, db_before = process_cpu(group=procs[name].pid), process_cpu(database)
                    # Named for this run: a database kept from an earlier run would count its events as duplicates.
                    events = wrk(f"http://127.0.0.1:{ports[name]}", "events", args.seconds, args.connections,
                                 run=f"{time.time_ns()}-")
                    events["server_us"] = (process_cpu(group=procs[name].pid) - server) / events["total"] * 1e6
                    events["db_us"] = (process_cpu(database) - db_before) / events["total"] * 1e6 \
                        if name == "roomc-pg" else 0.0
                    counted[name] = (events, store.count_events() - before)
    finally:
        for process in procs.values():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGINT)
        for process in procs.values():
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
    results = {name: median_round(runs) for name, runs in rounds.items()}
    if args.cpu:
        print("\nCPU a request, us (server processes + database processes), each round:")
        for name, runs in rounds.items():
            print(f"  {name}: " + ", ".join(f"{run['server_us']:,.0f} + {run['db_us']:,.0f} = "
                                           f"{run['server_us'] + run['db_us']:,.0f}" for run in runs))
    r, e, c = results["roomc"], results["express"], results["constant"]
    print(f"\nwrk -t2 -c{args.connections} -d{args.seconds}s on loopback, {os.cpu_count()} cores, median of "
          f"{args.rounds} rounds; granian --workers {workers} --blocking-threads {threads} for roomc and the constant app; "
          f"load average {load_before:.1f} at the start, {os.getloadavg()[0]:.1f} at the end\n")
    print("| server | requests/s | p99 ms | requests/s, all rounds | p99 ms, all rounds | non-2xx |")
    print("| --- | ---: | ---: | --- | --- | ---: |")
    pg_shape = f"--workers {pg_workers} --blocking-threads {args.pg_blocking_threads or threads}"
    for label, key in (("roomc join route (render + SQLite seat)", "roomc"),
                       (f"roomc join route (render + PostgreSQL seat, {pg_shape})", "roomc-pg"),
                       ("Express handler (node)", "express"), ("Flask constant bytes (same granian settings)", "constant")):
        if key not in results:
            continue
        row = results[key]
        every_rps = ", ".join(f"{run['rps']:,.0f}" for run in rounds[key])
        every_p99 = ", ".join(f"{run['p99_ms']:.1f}" for run in rounds[key])
        print(f"| {label} | {row['rps']:,.0f} | {row['p99_ms']:.1f} | {every_rps} | {every_p99} | "
              f"{sum(run['non2xx'] for run in rounds[key])} |")
    print(f"\nroomc / Express: {r['rps'] / e['rps']:.2f}x (target >= 1.5x)")
    print(f"roomc / constant-bytes ceiling: {100 * r['rps'] / c['rps']:.0f}% (target >= 60%)")
    print(f"roomc p99 at {args.connections} connections: {r['p99_ms']:.1f} ms (target < 25 ms)")
    if "roomc-pg" in results:
        p = results["roomc-pg"]
        print(f"roomc on PostgreSQL / Express: {p['rps'] / e['rps']:.2f}x (target >= 1.2x); "
              f"/ roomc on SQLite: {100 * p['rps'] / r['rps']:.0f}%; p99 {p['p99_ms']:.1f} ms")
    for name, (events, stored) in counted.items():
        print(f"events route ({'PostgreSQL' if name == 'roomc-pg' else 'SQLite'}): {events['rps']:,.0f} events/s, "
              f"{events['total']:,} sent, {stored:,} rows stored, non-2xx {events['non2xx']} "
              "(target >= 3,000/s, every event stored)"
              + (f"; CPU {events['server_us']:,.0f} + {events['db_us']:,.0f} us an event" if args.cpu else ""))
        # wrk stops counting at the deadline while a few requests are still in flight, so rows >= acknowledged.
        if stored < events["total"] - events["non2xx"]:
            print("WARNING: fewer rows stored than events acknowledged")


if __name__ == "__main__":
    main()
