"""Group commit (runtime/batch.py): requests on one event loop that ask for seats or keep events in
the same turn share one transaction, and each still gets its own answer. A real asyncio loop and a
real SQLite store; the store is counted (not replaced) to see the batches it was given."""
import asyncio
import sqlite3
import time

import pytest

from roomc.runtime import normalise
from roomc.runtime.batch import BatchingStore
from roomc.runtime.store import SignatureReused, SQLiteStore, StoreTimeout, Binding

NOW = 1_800_000_000.0


class CountedStore(SQLiteStore):
    """The real SQLite store, noting the size of every batch it is handed."""

    def __init__(self, path):
        super().__init__(path)
        self.batches: list[tuple[str, int]] = []

    def reserve_many(self, seats, *, deadline=None):
        self.batches.append(("seats", len(seats)))
        return super().reserve_many(seats, deadline=deadline)

    def record_many(self, events, *, deadline=None):
        self.batches.append(("events", len(events)))
        return super().record_many(events, deadline=deadline)


@pytest.fixture
def counted(tmp_path):
    with CountedStore(str(tmp_path / "roomc.db")) as store:
        yield store


def seat(store, call, *, limit=10, room="r", bind=None, deadline=None):
    return store.reserve(room, call, "member", counted=True, limit=limit, ttl=60, muted=False, now=NOW,
                         bind=bind, deadline=deadline)


def join(call, room="r"):
    return normalise.event({"ConferenceName": room, "StatusCallbackEvent": "join", "CallId": call,
                            "Timestamp": NOW}, now=NOW)


def serve_together(batcher, calls):
    """Run each `call()` as a request on one loop, all started in the same turn; their outcomes
    (or the exception each raised), in order."""
    async def main():
        # Bounded: a caller left parked for ever fails the test instead of hanging it.
        return await asyncio.wait_for(asyncio.gather(*(batcher.run(call) for call in calls), return_exceptions=True),
                                      30)
    return asyncio.run(main())


def test_callers_in_one_turn_share_one_transaction_and_the_room_stays_exact(counted):
    batcher = BatchingStore(counted)
    outcomes = serve_together(batcher, [lambda i=i: seat(batcher, f"c{i}") for i in range(30)])
    assert [o.admitted for o in outcomes].count(True) == 10
    assert [o.admitted for o in outcomes[:10]] == [True] * 10  # in the order they asked
    assert counted.batches == [("seats", 30)]
    assert len(counted.room("r")["participants"]) == 10


def test_a_request_that_uses_the_store_twice_is_resumed_twice(counted):
    batcher = BatchingStore(counted)

    def join_then_event(call):
        admission = seat(batcher, call)
        return admission.admitted, batcher.record(join(call))

    outcomes = serve_together(batcher, [lambda i=i: join_then_event(f"c{i}") for i in range(5)])
    assert outcomes == [(True, "stored")] * 5
    assert counted.batches == [("seats", 5), ("events", 5)]
    assert {p["callId"]: p["joinedAt"] is not None for p in counted.room("r")["participants"]} == \
        {f"c{i}": True for i in range(5)}


def test_a_replayed_signature_refuses_only_its_own_request(counted):
    batcher = BatchingStore(counted)
    signed = Binding("t=1,v1=aa", "POST /join?room=r", NOW + 300)
    replay = Binding("t=1,v1=aa", "POST /join?room=r&host=1", NOW + 300)
    outcomes = serve_together(batcher, [lambda: seat(batcher, "a", bind=signed),
                                        lambda: seat(batcher, "b", bind=replay),
                                        lambda: seat(batcher, "c")])
    assert outcomes[0].admitted and outcomes[2].admitted
    assert isinstance(outcomes[1], SignatureReused)
    assert counted.batches == [("seats", 3)]
    assert sorted(p["callId"] for p in counted.room("r")["participants"]) == ["a", "c"]


def test_one_item_the_database_refuses_fails_no_one_else(counted):
    batcher = BatchingStore(counted)
    outcomes = serve_together(batcher, [lambda: seat(batcher, "a"), lambda: seat(batcher, "b", limit=2 ** 70),
                                        lambda: seat(batcher, "c")])
    assert outcomes[0].admitted and outcomes[2].admitted
    assert isinstance(outcomes[1], OverflowError)  # what the same call alone raises
    assert counted.batches == [("seats", 3), ("seats", 1), ("seats", 1), ("seats", 1)]  # then one by one


def test_a_store_locked_from_outside_times_out_every_caller_in_the_batch_at_once(counted, tmp_path):
    operator = sqlite3.connect(str(tmp_path / "roomc.db"), isolation_level=None)
    operator.execute("BEGIN IMMEDIATE")
    try:
        batcher = BatchingStore(counted)
        started = time.monotonic()
        outcomes = serve_together(batcher, [lambda i=i: seat(batcher, f"c{i}", deadline=time.monotonic() + 0.5)
                                            for i in range(20)])
        assert all(isinstance(o, StoreTimeout) for o in outcomes)
        assert time.monotonic() - started < 2  # one wait for the batch, not one per caller
        assert counted.batches == [("seats", 20)]
    finally:
        operator.execute("ROLLBACK")
    assert seat(counted, "later").admitted  # and it recovers by itself


def test_an_error_after_resuming_reaches_its_own_request_only(counted):
    batcher = BatchingStore(counted)

    def fails_after_its_seat():
        seat(batcher, "a")
        raise ValueError("the handler's own bug")

    outcomes = serve_together(batcher, [fails_after_its_seat, lambda: seat(batcher, "b")])
    assert isinstance(outcomes[0], ValueError) and outcomes[1].admitted


def test_outside_a_request_the_store_is_called_directly(counted):
    batcher = BatchingStore(counted)
    assert seat(batcher, "a").admitted and batcher.record(join("a")) == "stored"
    assert counted.batches == [("seats", 1), ("events", 1)]  # the single calls, each a batch of one
    assert batcher.live_rooms(now=NOW + 1)[0]["name"] == "r"  # everything else is the store's own


def test_requests_that_never_touch_the_store_are_answered_without_waiting(counted):
    batcher = BatchingStore(counted)
    assert serve_together(batcher, [lambda: "fine", lambda: seat(batcher, "a").admitted]) == ["fine", True]
    assert counted.batches == [("seats", 1)]


def test_a_full_batch_is_stored_at_once_and_the_rest_of_the_turn_after(counted):
    batcher = BatchingStore(counted, max_batch=8)
    outcomes = serve_together(batcher, [lambda i=i: seat(batcher, f"c{i}", limit=100) for i in range(20)])
    assert all(o.admitted for o in outcomes)
    assert counted.batches == [("seats", 8), ("seats", 8), ("seats", 4)]


# PostgreSQL: while a worker's batch waits for the database, its loop serves other requests.

def _hold_room(url: str, room: str):
    """Another session holding the room's lock, as a long transaction of another instance would."""
    import psycopg

    from roomc.runtime.postgres import LOCK_CLASS

    holder = psycopg.connect(url, autocommit=True)
    holder.execute("SELECT pg_advisory_lock(%s, hashtext(%s))", (LOCK_CLASS, room))
    return holder


def test_a_postgresql_batch_waiting_on_the_database_leaves_the_loop_serving(pg_url):
    from roomc.runtime.postgres import PostgresStore

    with PostgresStore(pg_url) as store:
        batcher = BatchingStore(store)
        holder = _hold_room(pg_url, "held")
        served: list[float] = []

        async def main():
            loop = asyncio.get_running_loop()
            started = loop.time()
            waiting = asyncio.ensure_future(batcher.run(lambda: seat(batcher, "c-held", room="held")))
            await asyncio.sleep(0.05)  # its batch is with the database, blocked on the held lock
            # A request that needs no store, and a timer: both run while the batch waits.
            assert await batcher.run(lambda: "answered") == "answered"
            await asyncio.sleep(0.05)
            served.append(loop.time() - started)
            # A seat asked for now waits for the batch in flight, then goes in the next one.
            later = asyncio.ensure_future(batcher.run(lambda: seat(batcher, "c-later", room="free")))
            await asyncio.sleep(0.1)
            assert not waiting.done() and not later.done()
            holder.execute("SELECT pg_advisory_unlock_all()")
            return await waiting, await later, loop.time() - started

        try:
            first, second, total = asyncio.run(main())
        finally:
            holder.close()
        assert first.admitted and second.admitted
        assert served[0] < 0.5, f"the loop stood still for {served[0]:.2f} s behind the database"
        assert total < 2
        assert {p["callId"] for p in store.room("held")["participants"]} == {"c-held"}
        assert {p["callId"] for p in store.room("free")["participants"]} == {"c-later"}


def test_a_postgresql_batch_past_its_deadline_is_cut_and_the_next_batch_is_stored(pg_url):
    from roomc.runtime.postgres import PostgresStore

    with PostgresStore(pg_url) as store:
        batcher = BatchingStore(store)
        holder = _hold_room(pg_url, "held")

        async def main():
            stuck = asyncio.ensure_future(batcher.run(
                lambda: seat(batcher, "c-held", room="held", deadline=time.monotonic() + 0.3)))
            await asyncio.sleep(0.05)
            queued = [asyncio.ensure_future(batcher.run(lambda i=i: seat(batcher, f"c{i}", room="free")))
                      for i in range(5)]
            outcomes = await asyncio.gather(stuck, *queued, return_exceptions=True)
            holder.execute("SELECT pg_advisory_unlock_all()")
            return outcomes

        try:
            outcomes = asyncio.run(main())
        finally:
            holder.close()
        assert isinstance(outcomes[0], StoreTimeout)  # cut at its deadline, as when the loop blocked
        assert [o.admitted for o in outcomes[1:]] == [True] * 5
        assert len(store.room("free")["participants"]) == 5


class BrokenObserver:
    """An observer whose batch metric fails, as a full metrics disk or a bug would make it."""

    def batch(self, operation, size):
        raise OSError("no space left on device")


def test_a_failing_batch_metric_leaves_no_caller_parked(counted):
    batcher = BatchingStore(counted)
    batcher.observer = BrokenObserver()
    outcomes = serve_together(batcher, [lambda i=i: seat(batcher, f"c{i}") for i in range(3)])
    assert [o.admitted for o in outcomes] == [True] * 3


def test_a_failing_batch_metric_leaves_no_caller_parked_on_postgresql(pg_url):
    from roomc.runtime.postgres import PostgresStore

    with PostgresStore(pg_url) as store:
        batcher = BatchingStore(store)
        batcher.observer = BrokenObserver()
        outcomes = serve_together(batcher, [lambda i=i: seat(batcher, f"c{i}") for i in range(3)])
        assert [o.admitted for o in outcomes] == [True] * 3
