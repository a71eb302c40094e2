"""Stalled strangers vs live callers: a wrk join run with and without 200 stalled connections.

`roomc serve` (its default shape) serves rooms/meeting.yaml. Each round runs wrk's join load
(bench/webhook.lua) twice: once alone, once while 200 connections stall against the same
server (a fifth each: headers then no body, a partial body, a chunked body that stops,
slowloris headers trickled a byte a second, a connection that never sends a byte). The server closes stalled connections at its
deadlines; the attacker opens new ones at once, so 200 are stalled throughout. (wrk does not
sign, so the server runs with --allow-unsigned, as serve_bench.py does.) Meanwhile
/healthz is asked every 50 ms on a connection of its own. Targets (issue 9): wrk's p99 with
the stalls within 2x of without, and every /healthz answered in under 100 ms.
Usage: python bench/stall_bench.py [--seconds 10] [--stalled 200] [--rounds 1] [--connections 64]
"""
from __future__ import annotations

import argparse
import http.client
import os
import selectors
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from serve_bench import ROOT, free_port, wait_until_up, wrk  # bench/ is on sys.path when run as a script

KINDS = ("headers-only", "partial-body", "chunked", "slowloris", "idle")


def open_stalled(port: int, kind: str) -> socket.socket:
    """A connection that starts a request and stops sending."""
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setblocking(False)
    if kind == "idle":
        return sock  # connected, never a byte
    request = {
        "headers-only": b"POST /conference/join?room=stall HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n",
        "partial-body": b"POST /conference/join HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nCallSid=",
        "chunked": b"POST /conference/events HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab",
        "slowloris": b"POST /conference/join HTTP/1.1\r\nHost: x\r\nX-Slow: a",
    }[kind]
    sock.sendall(request)
    return sock


class Attacker(threading.Thread):
    """Keeps `count` stalled connections open: any the server closes is replaced at once."""

    def __init__(self, port: int, count: int):
        super().__init__(daemon=True)
        self.port, self.count = port, count
        self.stop = threading.Event()
        self.opened = self.closed_by_server = 0
        self.open_now: list[int] = []

    def run(self) -> None:
        selector = selectors.DefaultSelector()
        for i in range(self.count):
            kind = KINDS[i % len(KINDS)]
            selector.register(open_stalled(self.port, kind), selectors.EVENT_READ, kind)
            self.opened += 1
        last_trickle = time.monotonic()
        while not self.stop.is_set():
            for key, _ in selector.select(timeout=0.2):
                sock = key.fileobj
                assert isinstance(sock, socket.socket)
                try:
                    data = sock.recv(65536)
                except OSError:
                    data = b""
                if data:
                    continue  # an answer (408); the close follows
                selector.unregister(sock)
                sock.close()
                self.closed_by_server += 1
                selector.register(open_stalled(self.port, key.data), selectors.EVENT_READ, key.data)
                self.opened += 1
            if time.monotonic() - last_trickle > 1.0:
                last_trickle = time.monotonic()
                for key in list(selector.get_map().values()):
                    if key.data == "slowloris":
                        try:
                            key.fileobj.send(b"a")  # type: ignore[union-attr]
                        except OSError:
                            pass
            self.open_now.append(len(selector.get_map()))
        for key in list(selector.get_map().values()):
            key.fileobj.close()  # type: ignore[union-attr]


class HealthProbe(threading.Thread):
    """Asks /healthz every 50 ms (a fresh connection each time) and records each answer's latency."""

    def __init__(self, port: int):
        super().__init__(daemon=True)
        self.port = port
        self.stop = threading.Event()
        self.latencies_ms: list[float] = []
        self.failures = 0

    def run(self) -> None:
        while not self.stop.is_set():
            started = time.perf_counter()
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                conn.request("GET", "/healthz")
                ok = conn.getresponse().status == 200
                conn.close()
            except OSError:
                ok = False
            if ok:
                self.latencies_ms.append((time.perf_counter() - started) * 1000)
            else:
                self.failures += 1
            time.sleep(0.05)


def measured_run(port: int, seconds: int, connections: int, stalled: int) -> dict:
    attacker = Attacker(port, stalled) if stalled else None
    if attacker:
        attacker.start()
        time.sleep(1.0)  # every stalled request has reached the server
    probe = HealthProbe(port)
    probe.start()
    result = wrk(f"http://127.0.0.1:{port}", "join", seconds, connections)
    probe.stop.set()
    probe.join()
    if attacker:
        attacker.stop.set()
        attacker.join()
        result["stalled_min_open"] = min(attacker.open_now) if attacker.open_now else 0
        result["stalled_opened"] = attacker.opened
    lat = sorted(probe.latencies_ms)
    result["healthz_n"] = len(lat)
    result["healthz_failures"] = probe.failures
    result["healthz_max_ms"] = lat[-1] if lat else float("inf")
    result["healthz_p50_ms"] = statistics.median(lat) if lat else float("inf")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--stalled", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--workers", type=int, default=None, help="default: roomc serve's")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="roomc-stall-"))
    table = work / "routes.json"
    subprocess.run([sys.executable, "-c", "from roomc.cli import run; run()", "compile",
                    str(ROOT / "rooms/meeting.yaml"), "-o", str(table)], check=True)
    port = free_port()
    extra = ["--workers", str(args.workers)] if args.workers else []
    server = subprocess.Popen([sys.executable, "-c", "from roomc.cli import run; run()", "serve", str(table),
                               "--port", str(port), "--db", str(work / "roomc.db"), "--allow-unsigned", *extra],
                              env={**os.environ, "ROOMC_LOG_LEVEL": "ERROR"}, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, start_new_session=True)
    runs: dict[str, list[dict]] = {"alone": [], "stalled": []}
    try:
        wait_until_up(f"http://127.0.0.1:{port}/conference/join?room=warm", server)
        wrk(f"http://127.0.0.1:{port}", "join", 2, args.connections)  # warm-up
        for _ in range(args.rounds):
            runs["alone"].append(measured_run(port, args.seconds, args.connections, 0))
            runs["stalled"].append(measured_run(port, args.seconds, args.connections, args.stalled))
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGINT)
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
    print(f"\nroomc serve (default shape), wrk -t2 -c{args.connections} -d{args.seconds}s join route, "
          f"{args.rounds} round(s); {args.stalled} stalled connections in the second run of each; "
          f"{os.cpu_count()} cores, shared machine\n")
    print("| run | requests/s | p99 ms | non-2xx | /healthz answered | /healthz median ms | /healthz max ms | "
          "stalled open (min) | stalled opened |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name, label in (("alone", "join load alone"), ("stalled", f"join load + {args.stalled} stalled")):
        for run in runs[name]:
            print(f"| {label} | {run['rps']:,.0f} | {run['p99_ms']:.1f} | {run['non2xx']} | "
                  f"{run['healthz_n']} of {run['healthz_n'] + run['healthz_failures']} | {run['healthz_p50_ms']:.1f} | "
                  f"{run['healthz_max_ms']:.1f} | {run.get('stalled_min_open', '-')} | {run.get('stalled_opened', '-')} |")
    p99_alone = statistics.median(run["p99_ms"] for run in runs["alone"])
    p99_stalled = statistics.median(run["p99_ms"] for run in runs["stalled"])
    worst_health = max(run["healthz_max_ms"] for run in runs["alone"] + runs["stalled"])
    failures = sum(run["healthz_failures"] for run in runs["alone"] + runs["stalled"])
    print(f"\np99 with stalls / without: {p99_stalled / p99_alone:.2f}x (target <= 2x)")
    print(f"/healthz slowest answer: {worst_health:.1f} ms, {failures} unanswered (target < 100 ms, 0)")


if __name__ == "__main__":
    main()
