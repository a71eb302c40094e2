"""The real server process: HTTP end to end, exact capacity across two workers, restarts."""
import json
import os
import resource
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from roomc.compiler import pipeline
from roomc.compiler.emit import emit
from roomc.runtime.signatures import sign

from ..conftest import ROOMS
from .server import Server

pytestmark = pytest.mark.server
ADMIN = {"Authorization": "Bearer t0ken"}


@pytest.fixture(scope="module")
def table_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("table") / "routes.json"
    path.write_text(emit(pipeline.run([str(ROOMS)]).table))
    return path


@pytest.fixture
def server(table_file, tmp_path):
    running = Server(table_file, tmp_path / "roomc.db", env={"ROOMC_ADMIN_TOKEN": "t0ken"}).start()
    yield running
    running.stop()


def test_http_join_event_and_read_back(server):
    status, body = server.post_form("/conference/join?room=live-1&host=1", "CallId=h1&From=%2B254700000001")
    assert status == 200 and body["actions"][-1]["conference"]["name"] == "meeting-live-1"
    assert server.post_json("/conference/events", {"ConferenceName": "meeting-live-1", "StatusCallbackEvent": "join",
                                                   "CallId": "h1"})[1]["outcome"] == "stored"
    status, room = server.get("/rooms/meeting-live-1", ADMIN)
    assert status == 200 and room["participants"][0]["role"] == "host"
    assert room["participants"][0]["joinedAt"] is not None


def test_200_simultaneous_joins_to_a_room_of_10_admit_exactly_10_and_a_host(server):
    # Five of the 200 are hosts: the seat held for the host goes to one of them, whenever they
    # arrive in the rush; the others compete with the participants for the nine left.
    start = threading.Barrier(200)

    def call(i):
        start.wait()
        host = "&host=1" if i % 40 == 0 else ""
        return server.post_form(f"/conference/join?room=rush{host}", f"CallId=rush-{i}")

    with ThreadPoolExecutor(max_workers=200) as pool:
        answers = list(pool.map(call, range(200)))
    assert all(status == 200 for status, _ in answers)
    seated = [i for i, (_, body) in enumerate(answers) if "conference" in body["actions"][-1]]
    assert len(seated) == 10
    assert any(i % 40 == 0 for i in seated), "a host got the seat held for it"
    assert server.get("/rooms", ADMIN)[1]["rooms"] == [
        {"name": "meeting-rush", "participants": 0, "reserved": 10, "seatsTaken": 10, "started": False}]
    pids: set[int] = set()
    with ThreadPoolExecutor(max_workers=16) as pool:
        for _ in range(10):  # which worker accepts a connection is the kernel's choice; ask until both answer
            pids |= {body["pid"] for _, body in pool.map(lambda _: server.get("/healthz"), range(64))}
            if len(pids) == 2:
                break
    assert len(pids) == 2, "both worker processes served requests"


def test_restart_keeps_seats_and_history(table_file, tmp_path):
    db = tmp_path / "roomc.db"
    first = Server(table_file, db, env={"ROOMC_ADMIN_TOKEN": "t0ken"}).start()
    try:
        for i in range(10):
            first.post_form("/conference/join?room=keep", f"CallId=k{i}")
            first.post_json("/conference/events", {"ConferenceName": "meeting-keep", "StatusCallbackEvent": "join",
                                                   "CallId": f"k{i}"})
    finally:
        first.stop()
    second = Server(table_file, db, env={"ROOMC_ADMIN_TOKEN": "t0ken"}).start()
    try:
        status, body = second.post_form("/conference/join?room=keep", "CallId=late")
        assert body["actions"][-1] == {"hangup": {}}
        assert len(second.get("/rooms/meeting-keep", ADMIN)[1]["participants"]) == 10
    finally:
        second.stop()


def test_voice_route_never_answers_html(server):
    status, body = server.request("POST", "/conference/join?room=%00%ff", b"\xff\xfe garbage",
                                  {"Content-Type": "application/json"})
    assert status == 200 and body["actions"][-1] == {"hangup": {}}


def test_a_worker_that_dies_is_replaced_and_its_seats_kept(table_file, tmp_path):
    # granian stops the whole server when a worker dies unless told to respawn it; callers would
    # then hear nothing at all. SIGKILL stands in for the OOM killer or a crash in a C extension.
    server = Server(table_file, tmp_path / "roomc.db", workers=1, env={"ROOMC_ADMIN_TOKEN": "t0ken"}).start()
    try:
        server.post_form("/conference/join?room=crash", "CallId=before")
        dead = server.get("/healthz")[1]["pid"]
        os.kill(dead, signal.SIGKILL)
        answer = server.healthz_within(15)
        assert answer is not None and answer["pid"] != dead
        status, body = server.post_form("/conference/join?room=crash", "CallId=after")
        assert status == 200 and "conference" in body["actions"][-1]
        assert server.get("/rooms", ADMIN)[1]["rooms"][0]["seatsTaken"] == 2
    finally:
        server.stop()


def _stall(port: int, kind: str) -> socket.socket:
    """A connection that starts a request and then stops sending, as a slow or hostile client does."""
    sock = socket.create_connection(("127.0.0.1", port))
    if kind == "idle":  # connected, never a byte: granian never times these out
        return sock
    if kind == "headers-only":  # a declared body that never comes
        sock.sendall(b"POST /conference/join?room=stall HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n")
    elif kind == "partial-body":  # the reproducer of issue 9
        sock.sendall(b"POST /conference/join HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nCallSid=")
    elif kind == "chunked":  # a chunked body that stops mid-way
        sock.sendall(b"POST /conference/events HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab")
    else:  # slowloris: headers that never end
        sock.sendall(b"POST /conference/join HTTP/1.1\r\nHost: x\r\nX-Slow: a")
    return sock


def test_stalled_clients_hold_no_one_up(table_file, tmp_path):
    # The default shape (one worker, one request thread): under granian's WSGI interface a single
    # stalled body stopped every caller and /healthz (issue 9 item 1).
    server = Server(table_file, tmp_path / "roomc.db", workers=1).start()
    stalled: list[socket.socket] = []
    try:
        for i in range(150):
            stalled.append(_stall(server.port, ("headers-only", "partial-body", "chunked", "slowloris", "idle")[i % 5]))
        time.sleep(0.3)  # every stalled request has reached the server
        for i in range(5):
            started = time.monotonic()
            assert server.get("/healthz")[0] == 200
            status, body = server.post_form("/conference/join?room=open", f"CallId=c{i}")
            assert status == 200 and "conference" in body["actions"][-1]
            assert time.monotonic() - started < 1.0, "a caller waited on a stalled stranger"
        # A slowloris keeps trickling header bytes; callers are still answered at once.
        for sock in stalled[3::5]:
            sock.sendall(b"b")
        started = time.monotonic()
        assert server.post_form("/conference/join?room=open", "CallId=late")[0] == 200
        assert time.monotonic() - started < 1.0
    finally:
        for sock in stalled:
            sock.close()
        server.stop()


def test_more_idle_connections_than_granians_default_limit_stop_no_one(table_file, tmp_path):
    # granian counts every open connection against --backpressure, even one that never sends a
    # byte and is never timed out; its default (1,024) let that many idle sockets stop the server.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 2500 <= hard or hard == resource.RLIM_INFINITY:
        resource.setrlimit(resource.RLIMIT_NOFILE, (4096 if hard == resource.RLIM_INFINITY else min(hard, 4096), hard))
    elif soft < 2500:
        pytest.skip(f"this machine allows {hard} open files; the test needs 2,500")
    server = Server(table_file, tmp_path / "roomc.db", workers=1).start()
    idle: list[socket.socket] = []
    try:
        for _ in range(1100):
            idle.append(_stall(server.port, "idle"))
        time.sleep(0.5)
        started = time.monotonic()
        assert server.get("/healthz")[0] == 200
        assert server.post_form("/conference/join?room=idle", "CallId=c1")[0] == 200
        assert time.monotonic() - started < 1.0, "callers waited behind idle connections"
    finally:
        for sock in idle:
            sock.close()
        server.stop()


def test_a_stalled_body_gets_a_json_408_and_takes_no_seat(table_file, tmp_path):
    server = Server(table_file, tmp_path / "roomc.db", workers=1, body_timeout=1,
                    env={"ROOMC_ADMIN_TOKEN": "t0ken"}).start()
    try:
        sock = _stall(server.port, "partial-body")
        sock.settimeout(10)
        answer = b""
        while b"}}" not in answer:
            chunk = sock.recv(4096)
            if not chunk:
                break
            answer += chunk
        sock.close()
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 408") and b"application/json" in head
        assert json.loads(body)["error"]["code"] == "request.timeout"
        assert server.get("/rooms", ADMIN)[1]["rooms"] == []
    finally:
        server.stop()


def _read_answer(sock: socket.socket) -> bytes:
    answer = b""
    while b"}}" not in answer:
        chunk = sock.recv(4096)
        if not chunk:
            break
        answer += chunk
    return answer


def test_each_stalled_body_is_cut_at_its_own_deadline_and_a_slow_but_complete_one_is_served(table_file, tmp_path):
    # One watchdog sweeps every late read (runtime/rsgi.py): bodies stalled at different moments are
    # each answered 408 about body_timeout after their own start, never early, never much later, and
    # a body trickled in under the deadline is answered as usual (a sweep cancels nothing on time).
    server = Server(table_file, tmp_path / "roomc.db", workers=1, body_timeout=1).start()
    try:
        started: list[tuple[socket.socket, float]] = []
        for _ in range(3):
            sock = _stall(server.port, "partial-body")
            sock.settimeout(10)
            started.append((sock, time.monotonic()))
            time.sleep(0.4)
        slow = socket.create_connection(("127.0.0.1", server.port))
        slow.settimeout(10)
        body = b"CallId=trickle"
        slow.sendall(b"POST /conference/join?room=open HTTP/1.1\r\nHost: x\r\nContent-Type: "
                     b"application/x-www-form-urlencoded\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n")
        for byte in body:
            slow.sendall(bytes([byte]))
            time.sleep(0.04)  # 0.56 s in all, under the 1 s deadline
        head, _, answer = _read_answer(slow).partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200") and b"conference" in answer
        for sock, at in started:
            head = _read_answer(sock).partition(b"\r\n\r\n")[0]
            waited = time.monotonic() - at
            assert head.startswith(b"HTTP/1.1 408")
            assert 0.9 <= waited, f"cut after {waited:.2f} s, before its deadline"
            sock.close()
        slow.close()
    finally:
        server.stop()


def test_a_second_server_on_a_taken_port_exits_with_a_clear_message(table_file, tmp_path):
    # granian listens with SO_REUSEPORT: a second server used to start and take half the traffic.
    first = Server(table_file, tmp_path / "first.db", workers=1).start()
    try:
        second = subprocess.run([sys.executable, "-c", "from roomc.cli import run; run()", "serve", str(table_file),
                                 "--port", str(first.port), "--db", str(tmp_path / "second.db")],
                                capture_output=True, text=True, timeout=60)
        assert second.returncode == 2
        assert f"port {first.port} on 127.0.0.1 is already in use" in second.stderr
        assert "Traceback" not in second.stderr
        pids = {first.get("/healthz")[1]["pid"] for _ in range(20)}
        assert len(pids) == 1  # every request still reaches the first server
    finally:
        first.stop()


SECRET = "whsec_test"


def signed(body: bytes, extra: dict | None = None) -> dict:
    return {"X-Sautikit-Signature": sign(SECRET.encode(), body), "Content-Type": "application/x-www-form-urlencoded",
            **(extra or {})}


def test_a_captured_signature_opens_no_other_door(table_file, tmp_path):
    server = Server(table_file, tmp_path / "roomc.db", env={"SAUTIKIT_VOICE_SECRET": SECRET,
                                                            "ROOMC_ADMIN_TOKEN": "t0ken"}).start()
    try:
        body = b"CallId=cap-1&From=%2B254700000009"
        headers = signed(body)
        status, first = server.request("POST", "/conference/join?room=sig-1", body, headers)
        assert status == 200 and first["actions"][-1]["conference"]["name"] == "meeting-sig-1"
        # An exact retry (the platform's, or a network's) is answered the same, on any worker.
        for _ in range(4):
            assert server.request("POST", "/conference/join?room=sig-1", body, headers) == (200, first)
        # The same signature with another query, path or method is a replay.
        for method, path in (("POST", "/conference/join?room=sig-1&host=1"), ("POST", "/conference/join?room=sig-2"),
                             ("POST", "/lobby"), ("GET", "/conference/join?room=sig-1")):
            status, answer = server.request(method, path, body if method == "POST" else None, headers)
            assert status == 403 and answer["error"]["code"] == "signature.invalid", (method, path)
        # An unsigned or wrongly signed request never reaches a room.
        assert server.request("POST", "/conference/join?room=sig-1", b"CallId=x", {})[0] == 403
        status, room = server.get("/rooms/meeting-sig-1", ADMIN)
        assert [p["callId"] for p in room["participants"]] == ["cap-1"]
        assert server.get("/rooms/meeting-sig-2", ADMIN)[0] == 404
    finally:
        server.stop()


def test_a_store_locked_from_outside_delays_no_caller_past_the_deadline(table_file, tmp_path):
    import sqlite3

    db = tmp_path / "roomc.db"
    server = Server(table_file, db, workers=1).start()  # the default shape: one worker, one thread
    try:
        assert "conference" in server.post_form("/conference/join?room=lock-1", "CallId=before")[1]["actions"][-1]
        shell = sqlite3.connect(str(db), isolation_level=None)
        shell.execute("BEGIN IMMEDIATE")  # an operator's sqlite3 shell, holding the write lock
        try:
            # An event first: it must not hold the worker (and everyone behind it) for long.
            started = time.monotonic()
            status, _ = server.post_json("/conference/events", {"ConferenceName": "lock-1",
                                                               "StatusCallbackEvent": "join", "CallId": "x"})
            assert status == 503 and time.monotonic() - started < 1.0  # not stored: the platform retries
            # A burst of callers: each hears the fallback well within the 2 s deadline.
            def join(i):
                began = time.monotonic()
                status, answer = server.post_form("/conference/join?room=lock-1", f"CallId=locked-{i}")
                return status, answer, time.monotonic() - began

            with ThreadPoolExecutor(max_workers=30) as pool:
                health = pool.submit(lambda: (time.monotonic(), server.get("/healthz"), time.monotonic()))
                answers = list(pool.map(join, range(30)))
            for status, answer, took in answers:
                assert status == 200 and took < 2.0, took
                assert answer["actions"][-1] == {"hangup": {}}  # the fallback: an apology, then hang up
            began, (status, body), ended = health.result()
            assert status == 200 and ended - began < 1.5
            status, body = server.get("/healthz")
            assert body["store"] == "degraded"
        finally:
            shell.execute("ROLLBACK")
            shell.close()
        time.sleep(0.2)
        status, answer = server.post_form("/conference/join?room=lock-1", "CallId=after")
        assert "conference" in answer["actions"][-1]
        assert server.get("/healthz")[1]["store"] == "ok"
        # A store past its deadline is an expected condition: logged in one line, never a traceback.
        assert "could not be stored" in server.log_path.read_text() or "against the store" in server.log_path.read_text()
        assert "Traceback" not in server.log_path.read_text()
    finally:
        server.stop()


def _metric(server: Server, name: str, token: str = "t0ken", **labels) -> float:
    from prometheus_client.parser import text_string_to_metric_families

    request = urllib.request.Request(server.base + "/metrics", headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        text = response.read().decode()
    return sum(s.value for family in text_string_to_metric_families(text) for s in family.samples
               if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()))



def _wait_for(read, expected: float, seconds: float = 10) -> float:
    deadline, seen = time.time() + seconds, None
    while time.time() < deadline:
        seen = read()
        if seen == expected:
            break
        time.sleep(0.2)  # each worker flushes its counts once a second
    return seen


def test_concurrent_callers_share_transactions_and_metrics_show_it(table_file, tmp_path):
    """Group commit on a real server: callers that reach a worker together are seated in one
    transaction (runtime/batch.py), every seat is counted once, and /metrics shows the batch sizes."""
    server = Server(table_file, tmp_path / "roomc.db", env={"ROOMC_METRICS_TOKEN": "m3trics"}).start()
    try:
        sent = 0
        with ThreadPoolExecutor(max_workers=48) as pool:
            for round_ in range(5):
                answers = list(pool.map(lambda i, r=round_: server.post_form(
                    f"/conference/join?room=g{r}-{i % 16}", f"CallId=g{r}-{i}"), range(96)))  # 6 a room: all seated
                assert all(status == 200 for status, _ in answers)
                sent += 96
                time.sleep(1.2)  # each worker flushes its counts once a second

                def seats(kind: str) -> float:
                    return _metric(server, f"roomc_store_batch_items_{kind}", token="m3trics", operation="reserve")
                if seats("count") < seats("sum"):
                    break
        assert _wait_for(lambda: seats("sum"), sent) == sent, "every seat went through a batch, once"
        assert seats("count") < sent, "some batches carried several seats"
        assert _metric(server, "roomc_admissions_total", token="m3trics", room="meeting") == sent
    finally:
        server.stop()


def test_metrics_add_up_across_workers_and_survive_a_dead_worker(table_file, tmp_path):
    db = tmp_path / "roomc.db"
    server = Server(table_file, db, env={"ROOMC_METRICS_TOKEN": "m3trics"}).start()
    try:
        files = Path(f"{db}.metrics")
        sent = 0
        with ThreadPoolExecutor(max_workers=16) as pool:
            for round_ in range(10):  # until both workers have counted joins (the kernel picks who accepts)
                answers = list(pool.map(lambda i, r=round_: server.post_form(
                    f"/conference/join?room=m{r}-{i % 4}", f"CallId=c{r}-{i}"), range(32)))
                assert all(status == 200 for status, _ in answers)
                sent += 32
                time.sleep(1.2)  # each worker flushes its counts once a second
                if len(list(files.glob("counter_*.db"))) >= 2:
                    break
        assert len(list(files.glob("counter_*.db"))) == 2, "each worker counts in its own file"
        pids = {int(path.stem.split("_")[1]) for path in files.glob("counter_*.db")}

        def joins() -> float:
            return _metric(server, "roomc_webhook_requests_total", token="m3trics", route="/conference/join")
        assert _wait_for(joins, sent) == sent, "the two workers' counts add up"
        assert _metric(server, "roomc_admissions_total", token="m3trics", room="meeting") == sent
        assert server.get("/metrics")[0] == 401

        os.kill(pids.pop(), signal.SIGKILL)  # its counts were flushed above; they must stay
        time.sleep(1.5)  # granian respawns it
        for i in range(20):
            assert server.post_form("/conference/join?room=after", f"CallId=a{i}")[0] == 200
        assert _wait_for(joins, sent + 20) == sent + 20
    finally:
        server.stop()
    again = Server(table_file, db, env={"ROOMC_METRICS_TOKEN": "m3trics"}).start()
    try:
        assert _metric(again, "roomc_webhook_requests_total", token="m3trics") == 0, "a new run starts from zero"
    finally:
        again.stop()


def test_json_logs_one_object_per_line_on_a_real_server(table_file, tmp_path):
    server = Server(table_file, tmp_path / "roomc.db", workers=1, extra_args=("--log-format", "json")).start()
    try:
        server.post_form("/conference/join?room=logs-1", "CallId=log-call")
        server.post_json("/conference/events", {"ConferenceName": "meeting-logs-1", "StatusCallbackEvent": "join",
                                                "CallId": "log-call"})
        server.request("POST", "/conference/events", b"{", {"Content-Type": "application/json"})
        time.sleep(0.5)
    finally:
        server.stop()
    lines = [line for line in server.log_path.read_text().splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]  # every line, granian's own included, is one JSON object
    requests = [r for r in records if r.get("logger") == "roomc.requests"]
    join, event, broken = requests
    assert join["route"] == "/conference/join" and join["call_id"] == "log-call" and join["room"] == "meeting-logs-1"
    assert join["outcome"] == "admitted" and isinstance(join["latency_ms"], float) and join["request_id"]
    assert event["outcome"] == "stored" and event["room"] == "meeting-logs-1"
    assert broken["outcome"] == "unreadable"
    assert len({r["request_id"] for r in requests}) == 3
    assert any(r.get("logger", "").startswith("_granian") for r in records)


def test_open_live_pages_hold_up_no_caller(table_file, tmp_path):
    # One worker with one request thread (the default shape): under granian's WSGI blocking
    # threads an open event stream would hold that thread for its whole life. Here the stream
    # waits on the event loop, so callers are answered at once while pages stay open.
    import http.cookiejar
    import re

    server = Server(table_file, tmp_path / "roomc.db", workers=1, env={"ROOMC_ADMIN_TOKEN": "t0ken"}).start()
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    streams = []
    try:
        form = opener.open(server.base + "/ui/login", timeout=10).read().decode()
        csrf = re.search(r'name="csrf" value="([^"]+)"', form).group(1)
        opener.open(urllib.request.Request(server.base + "/ui/login", data=f"csrf={csrf}&token=t0ken".encode(),
                                           headers={"Origin": server.base}), timeout=10)
        for _ in range(3):
            stream = opener.open(server.base + "/ui/stream", timeout=10)
            assert stream.headers["Content-Type"] == "text/event-stream"
            assert stream.readline() == b"retry: 500\n"
            streams.append(stream)
        for i in range(5):
            started = time.monotonic()
            status, body = server.post_form("/conference/join?room=watched", f"CallId=w{i}")
            assert status == 200 and "conference" in body["actions"][-1]
            assert time.monotonic() - started < 1.0, "a caller waited on an open live page"
        seen = b""
        deadline = time.monotonic() + 10
        while b'data-call="w4"' not in seen and time.monotonic() < deadline:
            seen += streams[0].readline()
        assert b'data-call="w4"' in seen, "the open page was told"
    finally:
        for stream in streams:
            stream.close()
        server.stop()


def test_a_worker_killed_twice_in_a_row_is_replaced_both_times(table_file, tmp_path):
    # The OOM killer picks the largest worker: under steady memory pressure it can pick the same
    # slot's fresh replacement a second later. Callers must still be answered afterwards.
    server = Server(table_file, tmp_path / "roomc.db", workers=1).start()
    try:
        for _ in range(2):
            dead = server.get("/healthz")[1]["pid"]
            os.kill(dead, signal.SIGKILL)
            answer = server.healthz_within(20)
            assert answer is not None and answer["pid"] != dead, "no worker answered after a worker died"
        # The second kill landed within granian's 5.5 s of the respawn (its crash-loop rule), unless the
        # respawn alone was that slow: then granian itself replaced the worker, and this proved less.
        assert server.process.poll() is None, "roomc serve stopped"
    finally:
        server.stop()


def test_serve_stopped_on_purpose_is_not_restarted_and_its_granian_follows_a_killed_serve(table_file, tmp_path):
    # roomc serve is granian's parent now (it restarts a granian stopped by its crash-loop rule):
    # SIGINT or SIGTERM stops both for good, and a kill -9 of roomc serve stops granian too,
    # rather than leaving a server nobody watches on the port.
    server = Server(table_file, tmp_path / "roomc.db", workers=1).start()
    serve_pid = server.process.pid
    granian = _children(serve_pid)
    assert len(granian) == 1
    server.process.send_signal(signal.SIGTERM)
    assert server.process.wait(timeout=20) in (0, 143, -15)
    time.sleep(1)
    with pytest.raises(OSError):
        server.get("/healthz")
    assert _children(serve_pid) == []

    server = Server(table_file, tmp_path / "roomc.db", workers=1).start()
    granian = _children(server.process.pid)
    os.kill(server.process.pid, signal.SIGKILL)
    server.process.wait(timeout=5)
    deadline = time.time() + 20
    while time.time() < deadline and any(_alive(pid) for pid in granian):
        time.sleep(0.2)
    assert not any(_alive(pid) for pid in granian), "granian kept serving after roomc serve was killed"
    with pytest.raises(OSError):
        server.get("/healthz")


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def _children(pid: int) -> list[int]:
    return [int(p) for p in subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()]


def _session(sid: int) -> list[int]:
    """Every live process of `roomc serve`'s session (Server starts it in its own)."""
    return [p for p in (int(p) for p in subprocess.run(["pgrep", "-s", str(sid)], capture_output=True, text=True)
                        .stdout.split()) if _alive(p)]


def _end_session(server: Server, sid: int) -> None:
    server.stop()
    for pid in _session(sid):  # what a failed test left behind
        os.kill(pid, signal.SIGKILL)


def _wait_gone(pids, seconds: float) -> list[int]:
    deadline = time.time() + seconds
    while time.time() < deadline and any(_alive(p) for p in pids):
        time.sleep(0.1)
    return [p for p in pids if _alive(p)]


def test_granian_killed_outright_leaves_no_worker_serving_behind_it(table_file, tmp_path):
    # kill -9 of granian's main process (the OOM killer can pick it too): its workers were left
    # running, reparented to init, answering on the port beside the granian roomc serve started
    # again, and still answering after roomc serve itself had stopped, with nobody watching them.
    server = Server(table_file, tmp_path / "roomc.db", workers=1).start()
    sid = server.process.pid
    try:
        granian = _children(sid)
        assert len(granian) == 1
        workers = _children(granian[0])
        assert workers
        os.kill(granian[0], signal.SIGKILL)
        assert _wait_gone(workers, 20) == [], "granian's workers outlived it"
        answer = server.healthz_within(30)
        assert answer is not None and answer["pid"] not in workers, "granian was not started again"
        server.stop()
        assert _wait_gone(_session(sid), 20) == [], "processes outlived roomc serve"
        with pytest.raises(OSError):
            server.get("/healthz")
    finally:
        _end_session(server, sid)


@pytest.mark.parametrize("signum", [signal.SIGHUP, signal.SIGQUIT])
def test_sighup_and_sigquit_stop_roomc_serve_and_everything_it_started(table_file, tmp_path, signum):
    # granian reads SIGHUP as "respawn the workers": roomc serve passed it on and went on running,
    # having noted it was stopping, so granian's next stop was never restarted. granian does not
    # handle SIGQUIT: its main process died and its workers went on serving.
    server = Server(table_file, tmp_path / "roomc.db", workers=1).start()
    sid = server.process.pid
    try:
        server.process.send_signal(signum)
        try:
            server.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            pytest.fail(f"roomc serve still running 20 s after {signal.Signals(signum).name}")
        assert _wait_gone(_session(sid), 20) == [], "processes outlived roomc serve"
    finally:
        _end_session(server, sid)


def test_a_granian_that_will_not_stop_is_killed_and_nothing_outlives_roomc_serve(table_file, tmp_path):
    # Seen at the end of a benchmark: several stop signals in a row (a group-wide Ctrl-C or pkill
    # reaches granian directly and again through roomc serve) deadlocked granian's own signal handler,
    # which sets a threading.Event from inside the handler; roomc serve then waited for it for ever.
    # A stopped (SIGSTOP) granian stands in for the hang here.
    server = Server(table_file, tmp_path / "roomc.db", workers=1).start()
    sid = server.process.pid
    try:
        granian = _children(sid)[0]
        os.kill(granian, signal.SIGSTOP)
        started = time.monotonic()
        for _ in range(3):  # repeated stops reach granian once
            server.process.send_signal(signal.SIGTERM)
            time.sleep(0.1)
        try:
            server.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pytest.fail("roomc serve still waiting for a granian that will not stop, 30 s after SIGTERM")
        assert time.monotonic() - started < 25
        assert _wait_gone(_session(sid), 20) == [], "processes outlived roomc serve"
    finally:
        _end_session(server, sid)


def test_a_stop_asked_for_during_a_restart_is_a_clean_stop(table_file, tmp_path):
    # SIGTERM in the half second before granian is started again: roomc serve started a granian
    # only to kill it, and exited 143 as if it had failed (a service manager's "failed" state).
    log = tmp_path / "serve.log"
    server = Server(table_file, tmp_path / "roomc.db", workers=1, log_path=log).start()
    sid = server.process.pid
    try:
        os.kill(_children(sid)[0], signal.SIGKILL)
        deadline = time.time() + 20
        while time.time() < deadline and "starting it again" not in log.read_text():
            time.sleep(0.01)
        server.process.send_signal(signal.SIGTERM)
        assert server.process.wait(timeout=20) == 0
        assert _wait_gone(_session(sid), 20) == [], "processes outlived roomc serve"
    finally:
        _end_session(server, sid)


def test_a_second_serve_refused_during_a_restart_changes_nothing_the_first_serves(tmp_path):
    # The per-port lock was taken last: a second `roomc serve` on the port, started while the first
    # was between two granians (the port free), passed the bind check, wrote its own table over
    # build/serve-routes.json and emptied the metrics folder, and only then was refused; the first
    # serve's next granian then served the second one's rooms.
    first, second = tmp_path / "first", tmp_path / "second"
    for folder, room in ((first, "meeting.yaml"), (second, "webinar.yaml")):
        folder.mkdir()
        (folder / room).write_text((ROOMS / room).read_text())
    log = tmp_path / "first.log"
    server = Server(first / "meeting.yaml", tmp_path / "roomc.db", workers=1, log_path=log)
    server.args[server.args.index(str(first / "meeting.yaml"))] = str(first)
    with open(log, "ab") as out:  # in tmp_path, so build/serve-routes.json is written there
        server.process = subprocess.Popen(server.args, env=server.env, stdout=out, stderr=subprocess.STDOUT,
                                          cwd=tmp_path, start_new_session=True)
    sid = server.process.pid
    try:
        deadline, served = time.time() + 30, None
        while time.time() < deadline and served is None:
            try:
                served = server.get("/healthz")[1]["digest"]
            except OSError:
                time.sleep(0.1)
        assert served
        # Hold the first serve between two granians: stopped, its granian and workers gone.
        os.kill(sid, signal.SIGSTOP)
        granian = _children(sid)
        everything = granian + _children(granian[0])
        for pid in everything:
            os.kill(pid, signal.SIGKILL)
        assert _wait_gone(everything, 10) == []
        refused = subprocess.run([*server.args[:server.args.index("serve") + 1], str(second),
                                  *server.args[server.args.index("serve") + 2:]], env=server.env, cwd=tmp_path,
                                 capture_output=True, text=True, timeout=60)
        assert refused.returncode != 0 and "another roomc serve" in refused.stderr
        os.kill(sid, signal.SIGCONT)
        answer = server.healthz_within(30)
        assert answer is not None and answer["digest"] == served, "the refused serve changed what the first serves"
    finally:
        os.kill(sid, signal.SIGCONT)
        _end_session(server, sid)


def test_a_serve_started_under_nohup_outlives_a_hangup_and_still_restarts_granian(table_file, tmp_path):
    # `nohup roomc serve &` ignores SIGHUP so the server outlives the terminal: roomc serve put its
    # own handler over that and treated the hangup as a stop.
    server = Server(table_file, tmp_path / "roomc.db", workers=1)
    with open(server.log_path, "ab") as log:
        server.process = subprocess.Popen(server.args, env=server.env, stdout=log, stderr=subprocess.STDOUT,
                                          start_new_session=True,
                                          preexec_fn=lambda: signal.signal(signal.SIGHUP, signal.SIG_IGN))
    sid = server.process.pid
    try:
        deadline, first = time.time() + 30, None
        while time.time() < deadline and first is None:
            try:
                first = server.get("/healthz")[1]
            except OSError:
                time.sleep(0.1)
        assert first is not None
        server.process.send_signal(signal.SIGHUP)
        time.sleep(3)
        assert server.process.poll() is None, "roomc serve stopped on a SIGHUP it was told to ignore"
        os.kill(_children(sid)[0], signal.SIGKILL)
        answer = server.healthz_within(30)
        assert answer is not None and server.process.poll() is None, "granian was not started again"
    finally:
        _end_session(server, sid)
