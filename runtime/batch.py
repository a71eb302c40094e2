"""Group commit on a worker's event loop: the seats and events asked for in one turn go to the store together.

A worker runs its requests one after another on its event loop (runtime/rsgi.py), so each seat
and each event used to be a transaction of its own: a commit each, and on PostgreSQL a round trip
each, which cost more than the statement itself. Here every request runs in a greenlet. When the
app asks the store for a seat (`reserve`), to keep an event (`record`) or for what a stored join
must act on (`after_join_facts`, a read), the request's greenlet is parked and the loop goes on to
the requests that are ready in the same turn; at the end of the turn one `reserve_many` /
`record_many` / `after_join_facts_many` call takes them all in one transaction, and each parked
request resumes with its own outcome, as if it had called the store alone.

Measured by bench/batch_bench.py on this machine: a seat in a batch of four costs half the CPU of
one alone on SQLite, and on PostgreSQL (worker and database together) about half as well; under
load a worker's batches hold 10-15 seats. Nothing waits longer for it: a batch is flushed in the
loop turn after the one it was started in, before anything that arrived later.

What a batch keeps as the single calls had it: each request's outcome is its own (a replayed
signature refuses that request only); a failure of the whole batch that is not the store being
unreachable (StoreTimeout) is retried one item at a time, so one bad item cannot fail the others;
the earliest deadline in a batch bounds it. Called outside a request greenlet (a tool, a test, a
request thread), the wrapper calls the store directly.

A store whose batches wait on the network (PostgreSQL: `waits_on_network`) is given its batches in a
flusher greenlet. While the flusher waits for the database's answer (`wait_readable`), the loop goes on
reading, answering and parking other requests; they form the next batch, stored as soon as the one
in flight is done (one batch in flight per worker: group commit as databases do it). Measured on
this machine: 10 % more joins a second with 2 workers than the blocking wait had with 3, at lower
CPU a join and a shorter tail (docs/runtime.md, "Group commit").
"""
from __future__ import annotations

import asyncio
import logging
import select
from typing import Any, Callable, Mapping, Sequence

from greenlet import GreenletExit, getcurrent, greenlet

from .normalise import Event
from .observe import Observer
from .store import (REQUEST_DEADLINE, Admission, Binding, EventRequest, JoinFactsRequest, RoomBusy, SeatRequest,
                    Store, StoreTimeout, only)

log = logging.getLogger("roomc")
_PARKED = object()  # what a request greenlet hands the loop when it waits for a batch


class _Request(greenlet):  # type: ignore[misc]
    """A greenlet running one request's app call; only these are parked."""


class _Flusher(greenlet):  # type: ignore[misc]
    """The greenlet that stores a loop's batches; it hands the loop back while the store waits on a socket."""

    def __init__(self, run: Callable[[], None], loop: asyncio.AbstractEventLoop):
        super().__init__(run)
        self.loop = loop

    def wait_readable(self, fd: int, timeout: float) -> None:
        loop = self.loop

        def wake() -> None:
            # Whichever comes first; the other's handle is cancelled before it can run.
            loop.remove_reader(fd)
            timer.cancel()
            self.switch()
        loop.add_reader(fd, wake)
        timer = loop.call_later(timeout, wake)
        self.parent.switch()  # the loop runs on; `wake` resumes the flusher here


def wait_readable(fd: int, timeout: float) -> None:
    """Wait until `fd` is readable or `timeout` seconds pass (without the GIL). In a batch's flusher the
    event loop runs meanwhile; anywhere else this thread sleeps in select."""
    current = getcurrent()
    if isinstance(current, _Flusher):
        current.wait_readable(fd, timeout)
    else:
        select.select([fd], [], [], timeout)


def in_flusher() -> bool:
    """Whether the caller is a batch's flusher, whose waits on a socket let the event loop run."""
    return isinstance(getcurrent(), _Flusher)


class BatchingStore:
    """A store whose `reserve`, `record` and `after_join_facts` calls, made by requests on one event loop, are
    batched per loop turn.

    Every other method is the wrapped store's own. `run` is how the server runs a request (see RSGIServer).
    """

    def __init__(self, store: Store, *, max_batch: int = 0):
        self.store = store
        # A batch this large is stored at once, mid-turn, so a big turn's first callers do not wait for
        # its last ones (0: a batch holds the whole turn).
        self.max_batch = max_batch
        self._loop: asyncio.AbstractEventLoop | None = None
        self._seats: list[tuple[SeatRequest, float | None, greenlet]] = []
        self._events: list[tuple[EventRequest, float | None, greenlet]] = []
        self._facts: list[tuple[JoinFactsRequest, float | None, greenlet]] = []
        self._flush_scheduled = False
        self._cooperative = bool(getattr(store, "waits_on_network", False))
        self._in_flight = False  # a flusher is storing a batch (stores that wait on the network)
        self._waiting: dict[greenlet, asyncio.Future] = {}
        self.observer: Observer | None = None  # set by the server: batch sizes go to /metrics

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)

    async def run(self, function: Callable[..., Any], *args: Any) -> Any:
        """`function(*args)` in a request greenlet of this loop; returns what it returns (or raises)."""
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        request = _Request(function)
        outcome = request.switch(*args)
        if outcome is not _PARKED:
            return outcome
        waiting = self._loop.create_future()
        self._waiting[request] = waiting
        if self.max_batch and max(len(self._seats), len(self._events), len(self._facts)) >= self.max_batch:
            self._flush()
        return await waiting

    def reserve(self, room: str, call_id: str, role: str, *, counted: bool, limit: int, ttl: float,
                muted: bool, now: float | None = None, deadline: float | None = None,
                caller: str | None = None, bind: Binding | None = None, pool: str | None = None,
                held: Mapping[str, int] | None = None) -> Admission:
        """The store's `reserve`, joined to this loop turn's batch when called by a request."""
        if not isinstance(getcurrent(), _Request):
            return self.store.reserve(room, call_id, role, counted=counted, limit=limit, ttl=ttl, muted=muted, now=now,
                                      deadline=deadline, caller=caller, bind=bind, pool=pool, held=held)
        seat = SeatRequest(room, call_id, role, counted, limit, ttl, muted, now, caller, bind, pool, held)
        return self._park(self._seats, seat, deadline)

    def record(self, event: Event, *, now: float | None = None, deadline: float | None = None) -> str:
        """The store's `record`, joined to this loop turn's batch when called by a request."""
        if not isinstance(getcurrent(), _Request):
            return self.store.record(event, now=now, deadline=deadline)
        return self._park(self._events, EventRequest(event, now), deadline)

    def after_join_facts(self, call_id: str, room: str, step_key: str, now: float | None = None) \
            -> tuple[bool, float | None]:
        """The store's `after_join_facts` (a read after a stored join event), joined to this turn's batch."""
        if not isinstance(getcurrent(), _Request):
            return self.store.after_join_facts(call_id, room, step_key, now)
        return self._park(self._facts, JoinFactsRequest(call_id, room, step_key, now), None)

    def _park(self, queue: list, item: Any, deadline: float | None) -> Any:
        me = getcurrent()
        queue.append((item, REQUEST_DEADLINE.get() if deadline is None else deadline, me))
        self._schedule_flush()
        outcome = me.parent.switch(_PARKED)  # back to the loop until _flush resumes this request
        return only([outcome])

    def _schedule_flush(self) -> None:
        """Have `_flush` run at the end of this loop turn, once however many requests park in it."""
        if not self._flush_scheduled:
            assert self._loop is not None
            self._loop.call_soon(self._flush)
            self._flush_scheduled = True

    def _flush(self) -> None:
        """Run this turn's batches and resume every parked request with its outcome."""
        self._flush_scheduled = False
        if not self._cooperative:
            self._store_queues(self._resume_all)
        elif not self._in_flight:  # else the batch in flight takes these as soon as it is done
            assert self._loop is not None
            self._in_flight = True
            _Flusher(self._drain, self._loop).switch()

    def _drain(self) -> None:
        """The flusher's work: batch after batch while requests are parked, each resumed from the loop."""
        # Resumed from the loop, not from here: a request that ends or parks again switches to its
        # parent, the loop, which would leave this greenlet suspended mid-batch for ever.
        loop = self._loop
        assert loop is not None
        try:
            while self._seats or self._events or self._facts:
                self._store_queues(lambda batch, outcomes: loop.call_soon(self._resume_all, batch, outcomes))
        finally:
            self._in_flight = False
            # Left early (an error outside the store): requests parked behind this batch still get a flusher.
            if (self._seats or self._events or self._facts) and not loop.is_closed():
                self._schedule_flush()

    def _resume_all(self, batch: list, outcomes: list) -> None:
        for (_, _, request), outcome in zip(batch, outcomes, strict=True):
            self._resume(request, outcome)

    def _store_queues(self, resume: Callable[[list, list], Any]) -> None:
        """Store each queue's items as one batch, and hand each batch's outcomes to `resume`."""
        for operation, queue, many in (("reserve", self._seats, self.store.reserve_many),
                                       ("record", self._events, self.store.record_many),
                                       ("after_join_facts", self._facts, self.store.after_join_facts_many)):
            if not queue:
                continue
            batch = queue[:]
            queue.clear()
            if self.observer is not None:
                try:
                    self.observer.batch(operation, len(batch))
                except Exception:  # a metric must never leave the batch's callers parked
                    log.exception("the batch-size metric failed")
            try:
                outcomes = _outcomes(many, [item for item, _, _ in batch],
                                     min((d for _, d, _ in batch if d is not None), default=None),
                                     getattr(self.store, "busy_rooms", None))
                if len(outcomes) != len(batch):
                    raise RuntimeError(f"{len(outcomes)} outcomes for a batch of {len(batch)}")
            except GreenletExit:
                raise  # a flusher collected while it waited (its loop closed): nobody is left to answer
            except BaseException as error:  # a bug here must not leave callers parked for ever
                log.exception("a store batch failed outside the store")
                outcomes = [error] * len(batch)
            resume(batch, outcomes)

    def _resume(self, request: greenlet, outcome: Any) -> None:
        waiting = self._waiting.get(request)
        try:
            result = request.switch(outcome)
        except BaseException as error:
            self._waiting.pop(request, None)
            if waiting is not None and not waiting.done():
                waiting.set_exception(error)
            return
        if result is _PARKED:
            return  # asked the store again: the next turn's batch resumes it
        self._waiting.pop(request, None)
        if waiting is not None and not waiting.done():
            waiting.set_result(result)


def _outcomes(many: Callable[..., list], items: Sequence[Any], deadline: float | None,
              busy_rooms: Callable[..., set[str]] | None = None) -> list[Any]:
    """Each item's outcome from one batch call; after a failure of the whole batch, from one call each (or,
    for a batch that met a locked room, when the store can say which rooms are locked: one call for the rest)."""
    try:
        return many(items, deadline=deadline)
    except RoomBusy as error:  # one room's lock, not the store: the other rooms' items are stored without it
        if len(items) == 1:
            return [error]
        log.warning("a batch of %d met a locked room (%s); storing the other rooms' items", len(items), error)
        busy: set[str] = set()
        if busy_rooms is not None:
            try:
                busy = busy_rooms([room for room in map(_room_of, items) if room is not None], deadline=deadline)
            except Exception:
                busy = set()
        if not busy:  # gone already, or the store cannot tell: each item on its own
            return _one_by_one(many, items, deadline)
        # Each locked room's wait cost its whole lock_timeout: found at once, they are not waited for again.
        outcomes: list[Any] = [RoomBusy(str(error)) for _ in items]  # one each: each is raised in its own request
        rest = [index for index, item in enumerate(items) if _room_of(item) not in busy]
        for index, outcome in zip(rest, _outcomes(many, [items[index] for index in rest], deadline) if rest else [],
                                  strict=True):
            outcomes[index] = outcome
        return outcomes
    except StoreTimeout as error:
        return [StoreTimeout(str(error)) for _ in items]  # unreachable store: every item alike, at once
    except Exception as error:
        if len(items) == 1:
            return [error]
        log.warning("a batch of %d failed (%s: %s); storing each on its own", len(items), type(error).__name__, error)
        return _one_by_one(many, items, deadline)


def _one_by_one(many: Callable[..., list], items: Sequence[Any], deadline: float | None) -> list[Any]:
    """Each item's outcome from a call of its own (an item that fails has its error as its outcome). A room
    found locked is not waited for again by the items after it: each wait costs the lock's whole wait; two
    rooms found locked is a lock wider than a room (a table's), and no later item waits for it either."""
    outcomes: list[Any] = []
    busy: dict[str | None, RoomBusy] = {}
    for item in items:
        room = _room_of(item)
        if room in busy or len(busy) >= 2:
            outcomes.append(RoomBusy(str(busy.get(room) or next(iter(busy.values())))))
            continue
        try:
            outcomes.extend(many([item], deadline=deadline))
        except RoomBusy as one:
            outcomes.append(one)
            busy[room] = one
        except Exception as one:
            outcomes.append(one)
    return outcomes


def _room_of(item: Any) -> str | None:
    """The room a batch item writes to (a seat's, an event's), if any."""
    event = getattr(item, "event", None)
    return getattr(event if event is not None else item, "room", None)
