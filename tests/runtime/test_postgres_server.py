"""Many instances, one PostgreSQL: real `roomc serve` processes (2 workers each) sharing a database.

Exact seats across instances, retries on either instance, events stored once whichever instance
they reach, nothing acknowledged lost when an instance is killed, and a database that stops and
comes back in the middle of load (tests/pg.py runs the server; these tests stop and start it).
"""
import json
import os
import random
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest

from roomc.compiler import pipeline
from roomc.compiler.emit import emit
from roomc.runtime.signatures import sign

from ..conftest import ROOMS
from ..pg import Cluster
from .server import Server

pytestmark = pytest.mark.server
SECRET = "whsec_instances"
ADMIN = {"Authorization": "Bearer t0ken"}
ENV = {"SAUTIKIT_VOICE_SECRET": SECRET, "ROOMC_ADMIN_TOKEN": "t0ken", "ROOMC_LOG_LEVEL": "WARNING"}


@pytest.fixture(scope="module")
def table_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("table") / "routes.json"
    path.write_text(emit(pipeline.run([str(ROOMS)]).table))
    return path


def start(table_file, url, tmp_path, name, **kwargs) -> Server:
    return Server(table_file, url, env=ENV, log_path=tmp_path / f"{name}.log", **kwargs).start()


@pytest.fixture
def instances(table_file, pg_url, tmp_path):
    """Two `roomc serve` processes with two workers each, on one database."""
    running = [start(table_file, pg_url, tmp_path, "a"), start(table_file, pg_url, tmp_path, "b")]
    yield running
    for server in running:
        server.stop()


def signed_post(server: Server, path: str, body: bytes, signature: str | None = None):
    headers = {"X-Sautikit-Signature": signature or sign(SECRET.encode(), body),
               "Content-Type": "application/x-www-form-urlencoded"}
    return server.request("POST", path, body, headers)


def rows(url: str, sql: str, *params):
    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute(sql, params).fetchall()


def test_1000_concurrent_joins_across_two_instances_admit_exactly_10(instances, pg_url):
    # Ten of the thousand are hosts: the seat held for the host goes to one of them, through
    # either instance; the others compete with the participants for the nine left.
    a, b = instances

    def url(i: int) -> str:
        return "/conference/join?room=rush" + ("&host=1" if i % 100 == 7 else "")

    chooser = random.Random(12)
    plan = [(i, chooser.choice(instances)) for i in range(1000)]
    bodies = {i: f"CallId=rush-{i}&From=%2B2547{i:08d}".encode() for i in range(1000)}
    signatures = {i: sign(SECRET.encode(), bodies[i]) for i in range(1000)}
    start_together = threading.Barrier(100)

    def caller(chunk):
        start_together.wait()
        return [(i, signed_post(server, url(i), bodies[i], signatures[i])) for i, server in chunk]

    with ThreadPoolExecutor(max_workers=100) as pool:
        answers = dict(pair for batch in pool.map(caller, [plan[k::100] for k in range(100)]) for pair in batch)
    assert all(status == 200 for status, _ in answers.values())
    admitted = sorted(i for i, (_, body) in answers.items() if "conference" in body["actions"][-1])
    assert len(admitted) == 10, admitted
    assert any(i % 100 == 7 for i in admitted), "a host got the seat held for it"
    room = answers[admitted[0]][1]["actions"][-1]["conference"]["name"]  # as the policy names it
    assert a.get("/rooms", ADMIN)[1]["rooms"] == [
        {"name": room, "participants": 0, "reserved": 10, "seatsTaken": 10, "started": False}]

    # The platform retries (same body, same signature) on whichever instance the balancer picks:
    # an admitted call keeps its one seat, a refused one is still refused, nothing else moves.
    retries = [(i, server) for i in admitted + [i for i in range(0, 1000, 50) if i not in admitted]
               for server in (a, b)]
    with ThreadPoolExecutor(max_workers=20) as pool:
        again = list(pool.map(lambda p: (p[0], signed_post(p[1], url(p[0]), bodies[p[0]], signatures[p[0]])), retries))
    for i, (status, body) in again:
        assert status == 200 and ("conference" in body["actions"][-1]) == (i in admitted), i
    assert rows(pg_url, "SELECT COUNT(*) FROM seats WHERE room = %s", room) == [(10,)]
    assert b.get("/rooms", ADMIN)[1]["rooms"][0]["seatsTaken"] == 10


def _event(i: int) -> tuple[bytes, dict]:
    kind = ("join", "mute", "unmute", "leave")[i % 4]
    body = json.dumps({"ConferenceName": f"ev-{i % 7}", "StatusCallbackEvent": kind, "CallId": f"call-{i // 4}",
                       "EventId": f"evt-{i}", "Timestamp": time.time()}).encode()
    return body, {"Content-Type": "application/json", "X-Sautikit-Signature": sign(SECRET.encode(), body)}


def test_events_delivered_to_either_instance_at_random_are_stored_once_each(instances, pg_url):
    chooser = random.Random(7)
    events = {i: _event(i) for i in range(400)}
    deliveries = [(i, chooser.choice(instances)) for i in events for _ in range(chooser.choice((1, 1, 2, 3)))]
    chooser.shuffle(deliveries)
    with ThreadPoolExecutor(max_workers=32) as pool:
        answers = list(pool.map(lambda d: (d[0], d[1].request("POST", "/conference/events", *events[d[0]])),
                                deliveries))
    assert all(status == 200 for _, (status, _) in answers), [a for a in answers if a[1][0] != 200][:3]
    outcomes = [body["outcome"] for _, (_, body) in answers]
    assert outcomes.count("stored") == len(events)
    assert outcomes.count("duplicate") == len(deliveries) - len(events)
    stored = rows(pg_url, "SELECT body->>'EventId' FROM events")
    assert sorted(e for (e,) in stored) == sorted(f"evt-{i}" for i in events)


def test_in_room_keys_reach_either_instance_and_count_once(instances, pg_url):
    # Callers seated through instance a, their keys (each press delivered 1-3 times) to either instance.
    for i in range(6):
        status, answer = signed_post(instances[0], "/townhall/join?room=pgk", f"CallId=k{i}".encode())
        assert status == 200 and "conference" in answer["actions"][-1]
    chooser = random.Random(3)
    started = time.time() - 60
    presses = [json.dumps({"Digits": digits, "CallId": f"k{i}", "Timestamp": started + n}).encode()
               for n, (i, digits) in enumerate([(0, "1"), (1, "1"), (2, "0"), (1, "2"), (3, "9"), (4, "1")])]
    deliveries = [p for p in presses for _ in range(chooser.choice((1, 2, 3)))]  # a retry is the same bytes
    chooser.shuffle(deliveries)
    for body in deliveries:
        status, answer = chooser.choice(instances).request("POST", "/townhall/keys?room=townhall-pgk", body, {
            "X-Sautikit-Signature": sign(SECRET.encode(), body), "Content-Type": "application/json"})
        assert status == 200 and answer["ok"], answer
    assert rows(pg_url, "SELECT COUNT(*) FROM events WHERE room = 'townhall-pgk'") == [(5,)]  # the 9 maps to nothing
    status, room = instances[1].get("/rooms/townhall-pgk", ADMIN)
    assert [h["callId"] for h in room["handsRaised"]] == ["k0", "k4"]
    assert [o["callId"] for o in room["operatorRequested"]] == ["k2"]


def test_kill_9_of_one_instance_mid_burst_loses_nothing_acknowledged(table_file, pg_url, tmp_path):
    a, b = start(table_file, pg_url, tmp_path, "a"), start(table_file, pg_url, tmp_path, "b")
    acknowledged: list[str] = []
    seated: list[str] = []
    lock = threading.Lock()
    sent = threading.Event()
    try:
        def burst(worker: int) -> None:
            chooser = random.Random(worker)
            for n in range(60):
                i = worker * 1000 + n
                server = chooser.choice((a, b))
                body, headers = _event(i)
                join = f"CallId=k9-{i}".encode()
                try:
                    status, answer = server.request("POST", "/conference/events", body, headers)
                    if status == 200:
                        with lock:
                            acknowledged.append(f"evt-{i}")
                    status, answer = signed_post(server, "/conference/join?room=k9", join)
                    if status == 200 and "conference" in answer["actions"][-1]:
                        with lock:
                            seated.append(f"k9-{i}")
                except OSError:
                    pass  # the killed instance: not acknowledged, the platform would retry elsewhere
                if n == 20 and worker == 0:
                    sent.set()

        with ThreadPoolExecutor(max_workers=8) as pool:
            running = [pool.submit(burst, w) for w in range(8)]
            assert sent.wait(60)
            os.killpg(a.process.pid, signal.SIGKILL)  # the instance and both its workers, mid-burst
            for future in running:
                future.result()
    finally:
        a.stop()
        b.stop()
    stored = {e for (e,) in rows(pg_url, "SELECT body->>'EventId' FROM events")}
    assert len(acknowledged) > 100 and set(acknowledged) <= stored
    in_room = {c for (c,) in rows(pg_url, "SELECT call_id FROM seats WHERE room LIKE %s", "%k9")}
    # A 10-seat room, one seat held for the host (nobody here is): every admitted caller is seated.
    assert len(seated) == 9 and set(seated) <= in_room


def test_the_database_stopped_mid_load_then_back_needs_no_restart(table_file, tmp_path):
    # A cluster of its own: this test stops it. Voice routes keep answering, in time, with the
    # fallback; events get 503 so the platform retries; roomc reconnects by itself afterwards.
    cluster = Cluster.start()
    server = None
    try:
        url = cluster.create_database("faults")
        server = start(table_file, url, tmp_path, "faults", workers=2)
        assert signed_post(server, "/conference/join?room=before", b"CallId=before-1")[0] == 200
        cluster.stop_server()
        down: list[tuple[float, int, dict]] = []
        events: list[tuple[float, int]] = []
        for n in range(8):
            t0 = time.monotonic()
            status, answer = signed_post(server, "/conference/join?room=down", f"CallId=d-{n}".encode())
            down.append((time.monotonic() - t0, status, answer))
            body, headers = _event(10_000 + n)
            t0 = time.monotonic()
            event_status = server.request("POST", "/conference/events", body, headers)[0]
            events.append((time.monotonic() - t0, event_status))
        assert all(status == 200 and answer["actions"][-1] == {"hangup": {}} for _, status, answer in down), down
        # Within the deadlines (voice 2 s, events 5 s, plus slack for a loaded machine); once a worker
        # has seen the database gone, its next callers get only a short try.
        assert max(seconds for seconds, _, _ in down) < 3.5, [round(s, 2) for s, _, _ in down]
        assert sorted(seconds for seconds, _, _ in down)[len(down) // 2] < 1.0, [round(s, 2) for s, _, _ in down]
        assert all(status == 503 and seconds < 6.5 for seconds, status in events), events
        assert server.get("/healthz")[1]["store"] == "degraded"
        # A worker that dies while the database is away is replaced, and the new one starts without it
        # (it used to fail at import, and granian, seeing a crash loop, stopped the whole server).
        before = {server.get("/healthz")[1]["pid"] for _ in range(6)}
        os.kill(next(iter(before)), signal.SIGKILL)
        replaced, give_up = set(), time.monotonic() + 20
        while not replaced and time.monotonic() < give_up:
            try:
                replaced = {server.get("/healthz")[1]["pid"] for _ in range(4)} - before
            except OSError:
                pass
            time.sleep(0.2)
        assert replaced, "no worker replaced the killed one"
        status, answer = signed_post(server, "/conference/join?room=down", b"CallId=after-respawn")
        assert status == 200 and answer["actions"][-1] == {"hangup": {}}
        cluster.start_server()
        recovered = None
        give_up = time.monotonic() + 30
        while time.monotonic() < give_up:
            status, answer = signed_post(server, "/conference/join?room=after", f"CallId=a-{time.time()}".encode())
            body, headers = _event(20_000 + int(time.monotonic() * 1000) % 100_000)
            if status == 200 and "conference" in answer["actions"][-1] and \
                    server.request("POST", "/conference/events", body, headers)[0] == 200:
                recovered = time.monotonic() - (give_up - 30)
                break
            time.sleep(0.2)
        assert recovered is not None, "roomc did not recover after the database came back"
        # Every worker recovers, not only the one that answered first: soon, 8 callers in a row are seated.
        for attempt in range(20):
            answers = [signed_post(server, f"/conference/join?room=after-{attempt}", f"CallId=w-{attempt}-{i}".encode())
                       for i in range(8)]
            if all("conference" in body["actions"][-1] for _, body in answers):
                break
            time.sleep(0.5)
        else:
            pytest.fail("some worker did not recover within 10 s")
        assert rows(url, "SELECT COUNT(*) FROM seats WHERE room LIKE %s", "%before") == [(1,)]
    finally:
        if server is not None:
            server.stop()
        cluster.stop()
