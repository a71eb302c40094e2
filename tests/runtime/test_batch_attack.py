"""Hostile cases for group commit (runtime/batch.py): requests whose store writes share one loop turn
share one transaction, so one request's trouble must stay its own, and two instances' batches must
never wait on each other in a cycle. Real `roomc serve` processes, a real PostgreSQL and SQLite file.

Each case runs with batching on and with ROOMC_BATCH=0: the same traffic, the same promise.
"""
import json
import random
import select
import socket
import sqlite3
import threading
import time
from pathlib import Path

import psycopg
import pytest

from roomc.compiler.emit import emit
from roomc.runtime.signatures import sign

from ..conftest import compile_text
from .server import Server

pytestmark = pytest.mark.server
SECRET = "whsec_batch_attack"
POLICY = """
roomc: 1
server:
  publicUrl: https://r.example.com
  signatureSecretEnv: SAUTIKIT_VOICE_SECRET
  eventsSignature: {events}
rooms:
  small:
    name: "small-{{{{ query.room | default('x') }}}}"
    maxParticipants: 3
    statusEvents: [start, end, join, leave]
    roles:
      member:
        say: "Joining."
routes:
  /join: {{join: small}}
  /events: events
"""
BATCHING = pytest.mark.parametrize("batch", ["1", "0"], ids=["batched", "unbatched"])


def table(tmp_path: Path, events: str = "optional") -> Path:
    compilation = compile_text(tmp_path, POLICY.format(events=events))
    assert compilation.table is not None, [d.message for d in compilation.diagnostics]
    path = tmp_path / f"routes-{events}.json"
    path.write_text(emit(compilation.table))
    return path


def serve(table_file: Path, db: str | Path, tmp_path: Path, name: str, batch: str) -> Server:
    env = {"SAUTIKIT_VOICE_SECRET": SECRET, "ROOMC_BATCH": batch, "ROOMC_LOG_LEVEL": "WARNING"}
    return Server(table_file, db, workers=1, env=env, log_path=tmp_path / f"{name}.log").start()


def signed_json(body: bytes) -> dict:
    return {"Content-Type": "application/json", "X-Sautikit-Signature": sign(SECRET.encode(), body)}


def volley(requests: list[tuple[Server, str, bytes, dict]], timeout: float = 60) -> list[tuple[int | None, dict]]:
    """Send every request on its own connection at (nearly) the same instant, so that a worker's
    loop has them all in one turn; (status, JSON body) of each, in order."""
    return [(status, body) for status, body, _ in timed_volley(requests, timeout)]


def timed_volley(requests: list[tuple[Server, str, bytes, dict]],
                 timeout: float = 60) -> list[tuple[int | None, dict, float]]:
    """`volley`, with the seconds each answer took."""
    socks = [socket.create_connection(("127.0.0.1", server.port)) for server, *_ in requests]
    for sock, (_, path, body, headers) in zip(socks, requests, strict=True):
        head = {"Host": "127.0.0.1", "Content-Length": str(len(body)), "Connection": "close", **headers}
        sock.sendall((f"POST {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in head.items()) + "\r\n")
                     .encode() + body)
    received = {sock: b"" for sock in socks}
    began = time.monotonic()
    took = {sock: float("inf") for sock in socks}
    open_ = set(socks)
    end = time.monotonic() + timeout
    while open_ and time.monotonic() < end:
        ready, _, _ = select.select(list(open_), [], [], 0.5)
        for sock in ready:
            try:
                data = sock.recv(65536)
            except OSError:
                data = b""
            if data:
                received[sock] += data
            else:
                open_.discard(sock)
                took[sock] = time.monotonic() - began
    answers = []
    for sock in socks:
        sock.close()
        head, _, payload = received[sock].partition(b"\r\n\r\n")
        answers.append((int(head.split(b" ")[1]) if head else None, json.loads(payload) if payload else {},
                        took[sock]))
    return answers


def unreadable(tag: str) -> tuple[str, bytes, dict]:
    """A signed status event roomc cannot read (its room is a mapping): kept raw, keyed by its bytes."""
    body = json.dumps({"ConferenceName": {"unknown": tag}, "StatusCallbackEvent": "join", "CallId": "x"}).encode()
    return "/events", body, signed_json(body)


@BATCHING
def test_two_instances_delivered_the_same_events_in_opposite_orders_never_deadlock(tmp_path, pg_url, batch):
    # The platform delivers at least once, to whichever instance the balancer picks: the same
    # deliveries reach two instances at once, in different orders. A third writer (another worker)
    # holds one of them, uncommitted, for a moment, so both batches are in flight together; that
    # writer stands in for timing, the cycle is the batches' own: each holds, uncommitted, an event
    # the other then inserts. Unreadable events take no room lock first (postgres.py record_many).
    routes = table(tmp_path)
    a = serve(routes, pg_url, tmp_path, "a", batch)
    b = serve(routes, pg_url, tmp_path, "b", batch)
    refused = []
    try:
        with psycopg.connect(pg_url, autocommit=True) as db:
            for round_ in range(3):
                tag = f"{round_}-{time.time()}"
                middle = unreadable(f"{tag}-m")
                assert a.request("POST", *middle)[0] == 200
                (key,), = db.execute("SELECT dedupe FROM events WHERE body::text LIKE %s", (f"%{tag}-m%",)).fetchall()
                db.execute("DELETE FROM events WHERE dedupe = %s", (key,))
                third = psycopg.connect(pg_url)
                third.execute("INSERT INTO events (dedupe, at, received_at, readable, body) "
                              "VALUES (%s, 0, 0, 0, '{}')", (key,))
                others = [unreadable(f"{tag}-{i}") for i in range(20)]
                to_a = others[:10] + [middle] + others[10:]
                to_b = others[10:][::-1] + [middle] + others[:10][::-1]
                answers: list = []
                both = [(a, *r) for r in to_a] + [(b, *r) for r in to_b]
                sender = threading.Thread(target=lambda sent=both, out=answers: out.extend(volley(sent)))
                sender.start()
                time.sleep(0.3)
                third.rollback()
                third.close()
                sender.join()
                refused += [(round_, status, body) for status, body in answers if status != 200]
            stored = db.execute("SELECT count(*) FROM events WHERE readable = 0").fetchone()[0]
    finally:
        a.stop()
        b.stop()
    # Every delivery is stored once and acknowledged, on either instance: no 503 for a deadlock.
    assert refused == []
    assert stored == 3 * 21


@BATCHING
def test_one_event_the_store_cannot_hold_is_refused_alone(tmp_path, pg_url, batch):
    # Under `eventsSignature: off` (a documented reading: the PBX may not sign events) anyone can
    # post an event. Fields are capped at 256 characters, but 256 four-byte characters in room,
    # call and event id made a key past PostgreSQL's btree row limit (54000, an OperationalError),
    # which failed the whole loop turn's batch as if the database were down (found by an attack).
    routes = table(tmp_path, events='"off"')
    server = serve(routes, pg_url, tmp_path, "s", batch)
    rng = random.Random(7)

    def wide(n: int) -> str:
        return "".join(chr(rng.randrange(0x20000, 0x2A6D0)) for _ in range(n))

    good_refused = []
    try:
        for round_ in range(3):
            requests = []
            for i in range(30):
                body = json.dumps({"ConferenceName": f"small-g{round_}", "StatusCallbackEvent": "join",
                                   "CallId": f"good-{round_}-{i}"}).encode()
                requests.append((server, "/events", body, {"Content-Type": "application/json"}))
            poison = json.dumps({"ConferenceName": wide(256), "StatusCallbackEvent": "join", "CallId": wide(256),
                                 "EventId": wide(256)}, ensure_ascii=False).encode()
            requests.insert(15, (server, "/events", poison, {"Content-Type": "application/json"}))
            answers = volley(requests)
            # The wide event itself: stored under its key's digest (runtime/store.py short_dedupe), or at
            # worst refused for good (422); never a 503 that the sender would retry for ever.
            assert answers[15][0] in (200, 422), answers[15]
            good_refused += [(round_, a) for i, a in enumerate(answers) if i != 15 and a[0] != 200]
            time.sleep(0.5)
        with psycopg.connect(pg_url, autocommit=True) as db:
            stored = db.execute("SELECT count(*) FROM events WHERE call_id LIKE 'good-%'").fetchone()[0]
    finally:
        server.stop()
    assert good_refused == []
    assert stored == 90


@BATCHING
def test_a_call_end_event_while_the_store_is_locked_from_outside_holds_no_caller(tmp_path, batch):
    # Found while attacking group commit; present without it too (ROOMC_BATCH=0 fails the same way):
    # a call-end event is recorded with no deadline (runtime/calls.py call_end_event, end_call), so with
    # an operator's shell holding BEGIN IMMEDIATE it waits SQLite's whole 10 s busy timeout, on the
    # worker's only thread: every caller and /healthz wait behind it. With batching, a batch of N such
    # events waits once as a batch and then once per event (a failure other than StoreTimeout).
    routes = table(tmp_path, events='"off"')
    db = tmp_path / "roomc.db"
    server = serve(routes, db, tmp_path, "s", batch)
    try:
        body = b"CallId=before"
        assert server.request("POST", "/join?room=l", body, {"Content-Type": "application/x-www-form-urlencoded",
                                                             "X-Sautikit-Signature": sign(SECRET.encode(), body)})[0] == 200
        shell = sqlite3.connect(str(db), isolation_level=None)
        shell.execute("BEGIN IMMEDIATE")
        try:
            requests = [(server, "/events", json.dumps({"EventType": "call.completed", "CallId": f"gone-{i}"}).encode(),
                         {"Content-Type": "application/json"}) for i in range(2)]
            for i in range(10):
                body = f"CallId=waiting-{i}".encode()
                requests.append((server, "/join?room=l", body, {"Content-Type": "application/x-www-form-urlencoded",
                                                                "X-Sautikit-Signature": sign(SECRET.encode(), body)}))
            health: list = []
            probe = threading.Thread(target=lambda: (time.sleep(0.5), health.append(_timed_get(server, "/healthz"))))
            probe.start()
            answers = timed_volley(requests, timeout=90)
            probe.join()
        finally:
            shell.execute("ROLLBACK")
            shell.close()
    finally:
        server.stop()
    callers = answers[2:]
    assert all(status == 200 for status, _, _ in callers)
    slowest = max(took for _, _, took in callers)
    assert slowest < 4.0, f"callers answered only after {slowest:.1f} s (the voice deadline is 2 s)"
    assert health and health[0] < 2.0, f"/healthz answered after {health[0] if health else 'never'} s"


def _timed_get(server: Server, path: str) -> float:
    began = time.monotonic()
    try:
        server.get(path)
    except OSError:
        return float("inf")
    return time.monotonic() - began


def keep_joining(server: Server, seconds: float, tag: str, callers: int = 8) -> tuple[list[threading.Thread], list]:
    """`callers` threads joining signed calls in a loop for `seconds`, each answer's (seconds it took,
    status) appended to the list returned; the threads are started, the caller joins them."""
    answers: list[tuple[float, int | None]] = []
    lock = threading.Lock()
    stop_at = time.monotonic() + seconds

    def caller(n: int) -> None:
        i = 0
        while time.monotonic() < stop_at:
            i += 1
            body = f"CallId={tag}-{n}-{i}".encode()
            began = time.monotonic()
            try:
                status, _ = server.request("POST", f"/join?room={tag}{i % 5}", body, {
                    "Content-Type": "application/x-www-form-urlencoded",
                    "X-Sautikit-Signature": sign(SECRET.encode(), body)})
            except OSError:
                status = None
            with lock:
                answers.append((time.monotonic() - began, status))
            time.sleep(0.005)

    threads = [threading.Thread(target=caller, args=(n,)) for n in range(callers)]
    for thread in threads:
        thread.start()
    return threads, answers


@BATCHING
def test_a_frozen_database_holds_no_caller_past_the_deadline(tmp_path, batch):
    # PostgreSQL that keeps its connections open but stops answering (here SIGSTOP: the kernel still
    # accepts and acknowledges; a stalled disk or a paused host looks the same) is what the watchdog
    # is for: it cuts a statement's socket at the deadline, from its own thread (postgres.py _run).
    # A batch of two or more seats is sent as one libpq pipeline, whose results are read with
    # `pgconn.get_result()`; if that call keeps the GIL while libpq waits for the server, the watchdog
    # never runs and the worker's loop (every caller, /healthz) waits as long as the database does.
    import os
    import signal
    import subprocess

    from ..pg import Cluster

    cluster = Cluster.start()
    server = None
    frozen: list[int] = []
    try:
        url = cluster.create_database("frozen")
        server = serve(table(tmp_path), url, tmp_path, "s", batch)
        callers, answers = keep_joining(server, 12, "f")
        time.sleep(2)
        postmaster = int((cluster.data / "postmaster.pid").read_text().split()[0])
        children = subprocess.run(["pgrep", "-P", str(postmaster)], capture_output=True, text=True).stdout.split()
        frozen = [postmaster, *(int(pid) for pid in children)]
        for pid in frozen:
            os.kill(pid, signal.SIGSTOP)
        time.sleep(8)
        for pid in frozen:
            os.kill(pid, signal.SIGCONT)
        frozen = []
        for thread in callers:
            thread.join()
    finally:
        for pid in frozen:
            os.kill(pid, signal.SIGCONT)
        if server is not None:
            server.stop()
        cluster.stop()
    assert all(status == 200 for _, status in answers), {status for _, status in answers}
    slowest = max(seconds for seconds, _ in answers)
    assert slowest < 4.0, f"a caller waited {slowest:.1f} s (voice deadline 2 s; the database was frozen for 8 s)"


@BATCHING
def test_a_seats_table_locked_from_outside_holds_no_caller_past_the_deadline(tmp_path, pg_url, batch):
    # PostgreSQL's "operator's shell holding the write lock": a psql session (or an `ALTER TABLE seats`
    # of a schema upgrade) holding LOCK TABLE seats. Unbatched, the watchdog cuts each waiting seat at
    # its budget and callers hear the fallback in time. A batch's pipeline waits in get_result with the
    # GIL held, so nothing cuts it; and the server's statement_timeout did not end it either.
    server = serve(table(tmp_path), pg_url, tmp_path, "s", batch)
    try:
        callers, answers = keep_joining(server, 13, "l")
        time.sleep(2)
        with psycopg.connect(pg_url) as operator:
            operator.execute("LOCK TABLE seats IN ACCESS EXCLUSIVE MODE")
            time.sleep(9)
            operator.rollback()
        for thread in callers:
            thread.join()
    finally:
        server.stop()
    assert all(status == 200 for _, status in answers)
    slowest = max(seconds for seconds, _ in answers)
    assert slowest < 4.0, f"a caller waited {slowest:.1f} s (voice deadline 2 s; the table was locked for 9 s)"
