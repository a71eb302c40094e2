"""The real server process: HTTP end to end, exact capacity across two workers, restarts."""
import os
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from roomc.compiler import pipeline
from roomc.compiler.emit import emit

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
    assert status == 200 and body["actions"][-1]["conference"]["name"] == "live-1"
    assert server.post_json("/conference/events", {"ConferenceName": "live-1", "StatusCallbackEvent": "join",
                                                   "CallId": "h1"})[1]["outcome"] == "stored"
    status, room = server.get("/rooms/live-1", ADMIN)
    assert status == 200 and room["participants"][0]["role"] == "host"
    assert room["participants"][0]["joinedAt"] is not None


def test_200_simultaneous_joins_to_a_room_of_10_admit_exactly_10(server):
    start = threading.Barrier(200)

    def call(i):
        start.wait()
        return server.post_form("/conference/join?room=rush", f"CallId=rush-{i}")

    with ThreadPoolExecutor(max_workers=200) as pool:
        answers = list(pool.map(call, range(200)))
    assert all(status == 200 for status, _ in answers)
    admitted = sum("conference" in body["actions"][-1] for _, body in answers)
    assert admitted == 10
    assert server.get("/rooms", ADMIN)[1]["rooms"] == [
        {"name": "rush", "participants": 0, "reserved": 10, "seatsTaken": 10, "started": False}]
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
            first.post_json("/conference/events", {"ConferenceName": "keep", "StatusCallbackEvent": "join",
                                                   "CallId": f"k{i}"})
    finally:
        first.stop()
    second = Server(table_file, db, env={"ROOMC_ADMIN_TOKEN": "t0ken"}).start()
    try:
        status, body = second.post_form("/conference/join?room=keep", "CallId=late")
        assert body["actions"][-1] == {"hangup": {}}
        assert len(second.get("/rooms/keep", ADMIN)[1]["participants"]) == 10
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
        deadline = time.time() + 15
        answer = None
        while time.time() < deadline:
            try:
                answer = server.get("/healthz")[1]
                break
            except OSError:
                time.sleep(0.1)
        assert answer is not None and answer["pid"] != dead
        status, body = server.post_form("/conference/join?room=crash", "CallId=after")
        assert status == 200 and "conference" in body["actions"][-1]
        assert server.get("/rooms", ADMIN)[1]["rooms"][0]["seatsTaken"] == 2
    finally:
        server.stop()
