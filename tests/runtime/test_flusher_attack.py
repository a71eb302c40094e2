"""Hostile cases for the PostgreSQL flusher (runtime/batch.py `_Flusher`): a worker's batch waits for the
database in a greenlet while the event loop serves and parks other requests. Real `roomc serve` processes
and a real PostgreSQL; the traffic helpers are test_batch_attack's.

What must hold whatever the database does: every voice request answers within its deadline (the fallback
when it cannot be seated), an event is acknowledged only once stored (else 503), and the worker stores
again after each fault without a restart (a flusher left suspended would stop it storing for good).
"""
import json
import os
import signal
import socket
import threading
import time

import psycopg
import pytest

from roomc.runtime.postgres import LOCK_CLASS
from roomc.runtime.signatures import sign
from roomc.runtime.store import StoreTimeout

from ..pg import Cluster
from .test_batch_attack import SECRET, serve, signed_json, table, timed_volley

pytestmark = pytest.mark.server
FORM = "application/x-www-form-urlencoded"


def join(server, room: str, call: str) -> tuple:
    body = f"CallId={call}".encode()
    return server, f"/join?room={room}", body, {"Content-Type": FORM, "X-Sautikit-Signature": sign(SECRET.encode(), body)}


def event(server, room: str, call: str, kind: str = "join") -> tuple:
    body = json.dumps({"ConferenceName": f"small-{room}", "StatusCallbackEvent": kind, "CallId": call,
                       "EventId": f"{kind}-{call}"}).encode()
    return server, "/events", body, signed_json(body)


def seated(answer: dict) -> bool:
    return "conference" in json.dumps(answer.get("actions", [])[-1:])


def stored_calls(url: str, prefix: str) -> set[str]:
    with psycopg.connect(url, autocommit=True) as db:
        return {row[0] for row in db.execute("SELECT call_id FROM events WHERE call_id LIKE %s", (prefix + "%",))}


def recovers(server, url: str, tag: str, seconds: float = 20) -> bool:
    """Whether, within `seconds`, a volley of joins is seated and a volley of events stored (and acknowledged)."""
    give_up = time.monotonic() + seconds
    n = 0
    while time.monotonic() < give_up:
        n += 1
        requests = [join(server, f"{tag}{n}-{i % 3}", f"{tag}-j{n}-{i}") for i in range(6)] + \
                   [event(server, f"{tag}{n}", f"{tag}-e{n}-{i}") for i in range(6)]
        answers = timed_volley(requests, timeout=20)
        joins, events = answers[:6], answers[6:]
        if all(status == 200 and seated(body) for status, body, _ in joins) and \
                all(status == 200 for status, _, _ in events):
            return stored_calls(url, f"{tag}-e{n}-") == {f"{tag}-e{n}-{i}" for i in range(6)}
        time.sleep(0.3)
    return False


def acknowledged_are_stored(url: str, sent: list[tuple], answers: list) -> list[str]:
    """The call ids of events answered 2xx that the database does not hold (must be none)."""
    calls = [json.loads(body)["CallId"] for _, path, body, _ in sent if path == "/events"]
    event_answers = [answer for request, answer in zip(sent, answers, strict=True) if request[1] == "/events"]
    acked = [call for call, (status, _, _) in zip(calls, event_answers, strict=True)
             if status is not None and 200 <= status < 300]
    if not acked:
        return []
    with psycopg.connect(url, autocommit=True) as db:
        held = {row[0] for row in db.execute("SELECT call_id FROM events WHERE call_id = ANY(%s)", (acked,))}
    return [call for call in acked if call not in held]


def test_a_room_locked_from_outside_while_batches_queue_behind_it(tmp_path, pg_url):
    # Another session (an instance mid-transaction, an operator) holds one room's lock. The flusher's batch
    # waits on it; requests arriving meanwhile park behind that batch, several of them disconnect while
    # parked, and a stored join event parks a second time (after_join_facts) behind the next batch.
    server = serve(table(tmp_path), pg_url, tmp_path, "lock", "1")
    holder = psycopg.connect(pg_url, autocommit=True)
    try:
        holder.execute("SELECT pg_advisory_lock(%s, hashtext(%s))", (LOCK_CLASS, "small-held"))
        for round_ in range(2):
            requests = []
            for i in range(8):
                requests.append(join(server, "held", f"lh{round_}-{i}"))
                requests.append(join(server, f"free{round_}-{i % 3}", f"lf{round_}-{i}"))
                requests.append(event(server, "held", f"le-held{round_}-{i}"))
                requests.append(event(server, f"free{i % 3}", f"le-free{round_}-{i}"))
            # Callers that hang up while parked: their sockets are closed right after the request is sent.
            quitters = []
            for i in range(4):
                _, path, body, headers = join(server, "held", f"lq{round_}-{i}")
                sock = socket.create_connection(("127.0.0.1", server.port))
                head = {"Host": "127.0.0.1", "Content-Length": str(len(body)), **headers}
                sock.sendall((f"POST {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in head.items())
                              + "\r\n").encode() + body)
                quitters.append(sock)
            for sock in quitters:
                sock.close()
            answers = timed_volley(requests, timeout=30)
            voice = [(status, took) for (_, path, _, _), (status, _, took) in zip(requests, answers, strict=True)
                     if path.startswith("/join")]
            assert all(status == 200 for status, _ in voice), voice
            slowest = max(took for _, took in voice)
            assert slowest < 4.0, f"a caller waited {slowest:.1f} s behind a held room (voice deadline 2 s)"
            events = [status for (_, path, _, _), (status, _, _) in zip(requests, answers, strict=True)
                      if path == "/events"]
            assert set(events) <= {200, 503}, events
            assert acknowledged_are_stored(pg_url, requests, answers) == []
            # One room's lock is that room's trouble: callers and events of the other rooms, batched with
            # the held room's, are seated and stored (they were not: the whole batch waited to its cut).
            others = [(path, status, body) for (_, path, body_sent, _), (status, body, _) in
                      zip(requests, answers, strict=True) if b"held" not in body_sent and "held" not in path]
            assert all(seated(body) for path, _, body in others if path.startswith("/join")), others
            assert all(status == 200 for path, status, _ in others if path == "/events"), others
        holder.execute("SELECT pg_advisory_unlock_all()")
        assert recovers(server, pg_url, "lr"), "the worker did not store again once the room was free"
    finally:
        holder.close()
        server.stop()


class Traffic:
    """Volleys of joins and events (stored join events park twice) sent back to back from a thread until
    stopped; every request and its answer (status, body, seconds) kept."""

    def __init__(self, server, tag: str):
        self.server, self.tag = server, tag
        self.sent: list[tuple] = []
        self.answers: list = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run)

    def _run(self) -> None:
        n = 0
        while not self._stop.is_set():
            n += 1
            requests = [join(self.server, f"{self.tag}{n}-{i // 3}", f"{self.tag}-j{n}-{i}") for i in range(6)] + \
                       [event(self.server, f"{self.tag}{n % 4}", f"{self.tag}-e{n}-{i}") for i in range(6)]
            try:
                answers = timed_volley(requests, timeout=30)
            except OSError:  # no worker listening (killed, being replaced): nothing was acknowledged
                answers = [(None, {}, float("inf"))] * len(requests)
            self.sent += requests
            self.answers += answers
            time.sleep(0.02)

    def __enter__(self) -> "Traffic":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def check(self, url: str, voice_seconds: float = 4.0) -> None:
        voice = [(status, took) for (_, path, _, _), (status, _, took) in zip(self.sent, self.answers, strict=True)
                 if path.startswith("/join")]
        assert voice and all(status == 200 for status, _ in voice), sorted({s for s, _ in voice}, key=str)
        slowest = max(took for _, took in voice)
        assert slowest < voice_seconds, f"a caller waited {slowest:.1f} s (voice deadline 2 s)"
        events = [status for (_, path, _, _), (status, _, _) in zip(self.sent, self.answers, strict=True)
                  if path == "/events"]
        assert set(events) <= {200, 503}, sorted(set(events), key=str)
        assert acknowledged_are_stored(url, self.sent, self.answers) == []


def test_a_backend_frozen_mid_batch_is_cut_and_the_worker_stores_on(tmp_path, pg_url):
    # The flusher's batch is waiting on a room's lock (so its backend holds no lock of PostgreSQL's own
    # internals, which would stop the whole database) when its backend is frozen (SIGSTOP): a backend that
    # hung, not a database that did. The watchdog shuts down the socket the flusher watches with add_reader;
    # the pool replaces the connection; later batches are stored on new backends while that one stays frozen.
    server = serve(table(tmp_path), pg_url, tmp_path, "freeze", "1")
    holder = psycopg.connect(pg_url, autocommit=True)
    frozen: list[int] = []
    try:
        holder.execute("SELECT pg_advisory_lock(%s, hashtext(%s))", (LOCK_CLASS, "small-fzheld"))
        requests = [join(server, "fzheld", f"fzh-{i}") for i in range(3)] + \
                   [join(server, f"fzfree-{i // 3}", f"fzf-{i}") for i in range(6)] + \
                   [event(server, f"fzfree-{i}", f"fze-{i}") for i in range(4)]
        answers: list = []
        sender = threading.Thread(target=lambda: answers.extend(timed_volley(requests, timeout=30)))
        sender.start()
        give_up = time.monotonic() + 0.35  # before the lock's own wait (400 ms) ends it
        while not frozen and time.monotonic() < give_up:
            with psycopg.connect(pg_url, autocommit=True) as db:
                frozen = [row[0] for row in db.execute(
                    "SELECT pid FROM pg_stat_activity WHERE application_name = 'roomc' AND wait_event_type = 'Lock'")]
            for pid in frozen:
                os.kill(pid, signal.SIGSTOP)
        holder.execute("SELECT pg_advisory_unlock_all()")
        sender.join()
        assert frozen, "no batch was seen waiting on the held room"
        voice = [(status, took) for (_, path, _, _), (status, _, took) in zip(requests, answers, strict=True)
                 if path.startswith("/join")]
        assert all(status == 200 for status, _ in voice) and max(took for _, took in voice) < 4.0, voice
        assert acknowledged_are_stored(pg_url, requests, answers) == []
        assert recovers(server, pg_url, "fr"), "the worker did not store again with a backend frozen"
    finally:
        for pid in frozen:
            try:
                os.kill(pid, signal.SIGCONT)
            except ProcessLookupError:
                pass
        holder.close()
        server.stop()


def test_postgresql_killed_mid_batch_then_back(tmp_path):
    # pg_ctl stop -m immediate while batches are in flight and requests are parked behind them: every
    # connection drops at once, mid-pipeline; then nothing listens. Then it is started again.
    cluster = Cluster.start()
    server = None
    try:
        url = cluster.create_database("killed")
        server = serve(table(tmp_path), url, tmp_path, "killed", "1")
        with Traffic(server, "k") as traffic:
            time.sleep(1.5)
            cluster._run("pg_ctl", "-D", str(cluster.data), "-m", "immediate", "-w", "stop")
            time.sleep(3)
            cluster.start_server()
            time.sleep(1)
        traffic.check(url)
        assert recovers(server, url, "kr"), "the worker did not store again once PostgreSQL was back"
    finally:
        if server is not None:
            server.stop()
        cluster.stop()


@pytest.mark.parametrize("callers", [1, 3], ids=["alone", "batch"])
def test_prepared_statements_dropped_under_the_store_are_prepared_again_in_a_batch(pg_url, callers):
    # A pooler that resets server connections (pgbouncer's DISCARD ALL) drops the statements roomc prepared
    # on them. A single statement on the loop prepared again (postgres.py _Statement.result, SQLSTATE 26000);
    # in the flusher every statement, a batch of one included, goes through a pipeline, which did not: the
    # callers got InvalidSqlStatementName (a 500) until the connection was replaced.
    from roomc.runtime.batch import BatchingStore
    from roomc.runtime.postgres import PostgresStore

    from .test_batch import serve_together

    def take(batcher, call: str):
        return batcher.reserve("dealloc", call, "member", counted=True, limit=10, ttl=60, muted=False)

    with PostgresStore(pg_url, pool_size=1) as store:
        batcher = BatchingStore(store)  # one a loop (asyncio.run makes a new one)
        assert all(a.admitted for a in serve_together(batcher, [lambda i=i: take(batcher, f"w{i}")
                                                                 for i in range(callers)]))
        with store._conn() as conn:  # the pool's only connection: what a pooler's reset does to it
            conn.execute("DEALLOCATE ALL")
        batcher = BatchingStore(store)
        outcomes = serve_together(batcher, [lambda i=i: take(batcher, f"c{i}") for i in range(callers)])
        assert [getattr(o, "admitted", o) for o in outcomes] == [True] * callers


def test_a_locked_room_fails_only_its_own_seats_after_the_database_was_cut_once(pg_url):
    # After a statement is cut at its deadline the store gives later ones a short try (STRUGGLING_SECONDS of
    # PROBE_SECONDS) so callers behind a dead database hear the fallback at once. A batch with a seat in a
    # room another session holds was then cut before the lock's own wait ended (which is what says "only
    # this room"), and every other room of the batch heard the fallback again, for seconds.
    from roomc.runtime.batch import BatchingStore
    from roomc.runtime.postgres import PostgresStore

    from .test_batch import serve_together

    def take(batcher, room: str, call: str):
        return batcher.reserve(room, call, "member", counted=True, limit=10, ttl=60, muted=False,
                               deadline=time.monotonic() + 2.0)

    with PostgresStore(pg_url, pool_size=1) as store:
        with store._conn() as conn:
            backend = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
        os.kill(backend, signal.SIGSTOP)  # a database gone silent: the watchdog cuts the statement
        try:
            with pytest.raises(StoreTimeout):
                store.reserve("cut", "c0", "member", counted=True, limit=10, ttl=60, muted=False,
                              deadline=time.monotonic() + 2.0)
        finally:
            os.kill(backend, signal.SIGCONT)
        assert store.health()["store"] == "degraded"
        holder = psycopg.connect(pg_url, autocommit=True)
        try:
            holder.execute("SELECT pg_advisory_lock(%s, hashtext(%s))", (LOCK_CLASS, "held-after-cut"))
            batcher = BatchingStore(store)
            outcomes = serve_together(batcher, [lambda: take(batcher, "held-after-cut", "h0")] +
                                      [lambda i=i: take(batcher, f"free-after-cut-{i}", f"f{i}") for i in range(4)])
        finally:
            holder.close()
        assert isinstance(outcomes[0], Exception)
        assert [getattr(o, "admitted", o) for o in outcomes[1:]] == [True] * 4


def test_a_worker_killed_while_its_batch_waits_loses_nothing_acknowledged(tmp_path, pg_url):
    # kill -9 of the worker while its flusher waits on a held room's lock and more events are parked behind:
    # whatever was answered 2xx is in the database; granian starts a new worker, which stores again.
    server = serve(table(tmp_path), pg_url, tmp_path, "kill", "1")
    holder = psycopg.connect(pg_url, autocommit=True)
    try:
        holder.execute("SELECT pg_advisory_lock(%s, hashtext(%s))", (LOCK_CLASS, "small-kh1"))
        pid = server.get("/healthz")[1]["pid"]
        with Traffic(server, "kh") as traffic:  # every fourth volley's events are all for the held room
            time.sleep(1.5)
            os.kill(pid, signal.SIGKILL)
            time.sleep(0.3)
        holder.execute("SELECT pg_advisory_unlock_all()")
        statuses = [status for status, _, _ in traffic.answers]
        assert 200 in statuses and None in statuses, "the kill did not fall in the middle of the traffic"
        assert acknowledged_are_stored(pg_url, traffic.sent, traffic.answers) == []
        assert server.healthz_within(20) is not None
        assert recovers(server, pg_url, "kr2"), "the new worker did not store"
    finally:
        holder.close()
        server.stop()
