"""The RSGI front's event-loop wake-ups (runtime/rsgi.py `wake_only_when_asleep`).

granian's I/O thread hands requests and bodies to the loop from another thread. The loop must
run every one of them promptly whether it was asleep in select or busy, and never sleep with
one waiting: a lost wake-up is a caller who hears nothing until the next request arrives.
"""
from __future__ import annotations

import asyncio
import os
import random
import threading
import time

import pytest

from roomc.compiler import pipeline
from roomc.compiler.emit import emit
from roomc.runtime.rsgi import wake_only_when_asleep

from ..conftest import ROOMS
from .server import Server


def _loop_in_thread() -> tuple[asyncio.AbstractEventLoop, threading.Thread]:
    loop = asyncio.new_event_loop()
    assert wake_only_when_asleep(loop)
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    return loop, thread


def _stop(loop: asyncio.AbstractEventLoop, thread: threading.Thread) -> None:
    loop.call_soon_threadsafe(loop.stop)
    thread.join(timeout=5)
    assert not thread.is_alive(), "the loop did not stop: its wake-up was lost"
    loop.close()


def test_a_sleeping_loop_is_woken_at_once() -> None:
    loop, thread = _loop_in_thread()
    try:
        for _ in range(20):
            time.sleep(0.02)  # the loop is asleep in select, with no timer to wake it
            ran = threading.Event()
            started = time.monotonic()
            loop.call_soon_threadsafe(ran.set)
            assert ran.wait(2), "a callback from another thread never ran"
            assert time.monotonic() - started < 0.5
    finally:
        _stop(loop, thread)


def test_callbacks_from_threads_all_run_promptly_whether_the_loop_is_busy_or_asleep() -> None:
    # Two threads post callbacks at random moments while the loop alternates between busy
    # stretches and sleep: the race the flag must win is a post landing just as the loop
    # decides to sleep. Every callback must run, none later than a generous bound.
    loop, thread = _loop_in_thread()
    latest: list[float] = []
    done = threading.Semaphore(0)
    per_thread = 3000

    def busy() -> None:
        end = time.perf_counter() + random.random() * 0.0005
        while time.perf_counter() < end:
            pass

    def record(posted: float) -> None:
        latest.append(time.monotonic() - posted)
        if random.random() < 0.1:
            busy()
        done.release()

    def post(seed: int) -> None:
        rng = random.Random(seed)
        for _ in range(per_thread):
            loop.call_soon_threadsafe(record, time.monotonic())
            if rng.random() < 0.05:
                time.sleep(rng.random() * 0.002)  # let the loop fall asleep now and then

    try:
        posters = [threading.Thread(target=post, args=(seed,)) for seed in (1, 2)]
        for poster in posters:
            poster.start()
        for poster in posters:
            poster.join()
        for _ in range(2 * per_thread):
            assert done.acquire(timeout=5), "a callback was left waiting while the loop slept"
        assert len(latest) == 2 * per_thread
        assert max(latest) < 1.0, f"slowest callback waited {max(latest):.3f} s"
    finally:
        _stop(loop, thread)


def test_a_loop_without_the_expected_internals_is_left_alone() -> None:
    class Other:
        def call_soon_threadsafe(self, callback, *args):  # noqa: ANN001, ANN201
            return callback(*args)

    other = Other()
    assert wake_only_when_asleep(other) is False  # type: ignore[arg-type]
    assert other.call_soon_threadsafe(lambda: 3) == 3


@pytest.fixture(scope="module")
def table_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("table") / "routes.json"
    path.write_text(emit(pipeline.run([str(ROOMS)]).table))
    return path


def _policies(pid: int) -> dict[int, int]:
    policies = {}
    for name in os.listdir(f"/proc/{pid}/task"):
        try:
            policies[int(name)] = os.sched_getscheduler(int(name))
        except OSError:
            pass  # the thread ended meanwhile
    return policies


@pytest.mark.server
@pytest.mark.skipif(not hasattr(os, "SCHED_BATCH") or not os.path.isdir("/proc/self/task"), reason="Linux only")
def test_a_serving_worker_runs_granians_io_threads_under_sched_batch_and_its_loop_thread_not(table_file, tmp_path):
    # granian calls __rsgi_init__ before it starts the worker's Rust runtime: batching there found
    # no thread but the loop's own, and the I/O threads started afterwards inherit the loop thread's
    # policy, so none ran under SCHED_BATCH. The I/O threads carry every request, so the first
    # request finds them. (roomc's own Python threads start later, from the loop thread, and keep
    # its policy: hence "some", not "all", of the others.)
    server = Server(table_file, tmp_path / "roomc.db", workers=1).start()
    try:
        for i in range(5):
            assert server.post_form("/conference/join?room=batch", f"CallId=b{i}")[0] == 200
        pid = server.get("/healthz")[1]["pid"]
        policies = _policies(pid)
        assert policies.pop(pid) == os.SCHED_OTHER, "the event loop's thread itself was batched"
        assert os.SCHED_BATCH in policies.values(), f"no thread of the worker runs under SCHED_BATCH: {policies}"
    finally:
        server.stop()


@pytest.mark.server
def test_roomc_io_threads_batch_0_leaves_every_thread_alone(table_file, tmp_path):
    server = Server(table_file, tmp_path / "roomc.db", workers=1, env={"ROOMC_IO_THREADS_BATCH": "0"}).start()
    try:
        assert server.post_form("/conference/join?room=batch", "CallId=b0")[0] == 200
        pid = server.get("/healthz")[1]["pid"]
        assert set(_policies(pid).values()) == {os.SCHED_OTHER}
    finally:
        server.stop()


def test_a_worker_freezes_its_startup_heap_so_full_collections_do_not_walk_it(tmp_path) -> None:
    # A full collection walking an unfrozen worker heap held every request of the worker for
    # 30-40 ms (docs/runtime.md, "Garbage collection"); the entry point granian loads freezes it.
    import subprocess
    import sys

    table = tmp_path / "routes.json"
    table.write_text(emit(pipeline.run([str(ROOMS / "meeting.yaml")]).table))
    probe = ("import gc, roomc.runtime.wsgi as w; "
             "print(gc.get_freeze_count(), sum(gc.get_count()), w.rsgi is not None)")
    env = {**os.environ, "ROOMC_TABLE": str(table), "ROOMC_DB": str(tmp_path / "roomc.db"), "ROOMC_ALLOW_UNSIGNED": "1"}
    done = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    frozen, young, built = done.stdout.split()
    assert built == "True"
    assert int(frozen) > 20_000, f"only {frozen} objects frozen: the app's heap is walked by every full collection"
    assert int(young) < 1_000  # frozen last, after the app was built
