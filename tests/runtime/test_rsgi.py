"""The RSGI front's event-loop wake-ups (runtime/rsgi.py `wake_only_when_asleep`).

granian's I/O thread hands requests and bodies to the loop from another thread. The loop must
run every one of them promptly whether it was asleep in select or busy, and never sleep with
one waiting: a lost wake-up is a caller who hears nothing until the next request arrives.
"""
from __future__ import annotations

import asyncio
import random
import threading
import time

from roomc.runtime.rsgi import wake_only_when_asleep


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
