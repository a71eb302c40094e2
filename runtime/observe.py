"""What the webhook routes did, told twice: Prometheus metrics and one log record per request.

The routes call `Observer` once per outcome (runtime/webhooks.py); nothing else on the
call path knows about metrics or log formats. Counts are kept in process memory and
flushed to prometheus-client every `flush_every` seconds by a background thread: in
multiprocess mode (PROMETHEUS_MULTIPROC_DIR, set by `roomc serve`) every increment is a
locked write into an mmap'd file, which is more than a voice answer should pay.
"""
from __future__ import annotations

import atexit
import bisect
import logging
import os
import threading
import time
from collections import Counter as Tally
from pathlib import Path
from typing import Iterable

import orjson

requests_log = logging.getLogger("roomc.requests")

# Store latency buckets: a seat or an event is one SQL statement (0.1-1 ms); a stall shows past 10 ms.
STORE_BUCKETS = (0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, float("inf"))
# Items in one store batch (runtime/batch.py): 1 on an idle line, 10-15 a worker under load.
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, float("inf"))


class _Metrics:
    """The prometheus-client metric families, created once per process (the registry is global)."""

    def __init__(self) -> None:
        from prometheus_client import Counter, Histogram

        self.requests = Counter("roomc_webhook_requests", "Webhook requests by route and outcome.",
                                ["route", "outcome"])
        self.admissions = Counter("roomc_admissions", "Callers given a seat, by room definition.", ["room"])
        self.when_full = Counter("roomc_when_full_answers", "Callers answered with whenFull, by room definition.",
                                 ["room"])
        self.refusals = Counter("roomc_refusals", "Callers turned away without a seat (no role matched, invalid "
                                "room name, closed), by room definition and reason.", ["room", "reason"])
        self.fallbacks = Counter("roomc_fallback_answers", "Voice requests answered with the fallback actions.",
                                 ["route", "reason"])
        self.events = Counter("roomc_events", "Status events by outcome (stored, duplicate, unreadable, refused, "
                              "unavailable).", ["outcome"])
        self.signature_failures = Counter("roomc_signature_failures", "Requests refused for their signature.",
                                          ["route"])
        self.store_seconds = Histogram("roomc_store_seconds", "Time a store write took, by operation.",
                                       ["operation"], buckets=STORE_BUCKETS)
        self.batch_items = Histogram("roomc_store_batch_items", "Seats, events or reads stored in one transaction "
                                     "(group commit), by operation.", ["operation"], buckets=BATCH_BUCKETS)


_metrics: _Metrics | None = None
_metrics_lock = threading.Lock()


def metrics() -> _Metrics:
    """This process's metric families (created on first use, so PROMETHEUS_MULTIPROC_DIR is read by then)."""
    global _metrics
    with _metrics_lock:
        if _metrics is None:
            _metrics = _Metrics()
        return _metrics


class Observer:
    """Counts outcomes in memory, flushes them to prometheus-client, and logs one record per request."""

    def __init__(self, flush_every: float = 1.0):
        self.flush_every = flush_every
        self._lock = threading.Lock()
        self._counts: Tally = Tally()
        # Per store operation: [count in each bucket..., sum of seconds], folded in at flush time.
        self._store_times: dict[str, list[float]] = {}
        self._batch_sizes: dict[str, list[float]] = {}
        self._flusher_pid = -1
        self.metrics = metrics()

    # -- called on the request path: dict increments under one lock, no file I/O --------------
    def _count(self, *keys: tuple) -> None:
        with self._lock:
            for key in keys:
                self._counts[key] += 1
        if self._flusher_pid != os.getpid():  # first use in this (possibly forked) worker
            self._start_flusher()

    def store_time(self, operation: str, seconds: float) -> None:
        """One store write's latency."""
        self._observe(self._store_times, STORE_BUCKETS, operation, seconds)

    def batch(self, operation: str, items: int) -> None:
        """One store batch's size (runtime/batch.py)."""
        self._observe(self._batch_sizes, BATCH_BUCKETS, operation, items)

    def _observe(self, tallies: dict[str, list[float]], buckets: tuple[float, ...], key: str, value: float) -> None:
        index = bisect.bisect_left(buckets, value)
        with self._lock:
            tally = tallies.get(key)
            if tally is None:
                tally = tallies[key] = [0.0] * (len(buckets) + 1)
            tally[index] += 1
            tally[-1] += value

    def voice(self, request_id: str, route: str, call_id: str | None, room: str | None, outcome: str,
              started: float, joins: Iterable[tuple[str, str]] = ()) -> None:
        """One voice request's outcome; `joins` is (room definition, admitted|full|bad_name|no_role|closed) per join.

        `outcome` is the last join's result, `answered` (a flow), `fallback:<why>` or `signature`."""
        keys = [("requests", route, outcome), *((result, room_id) for room_id, result in joins)]
        if outcome.startswith("fallback"):
            keys.append(("fallback", route, outcome.partition(":")[2]))
        elif outcome == "signature":
            keys.append(("signature", route))
        self._count(*keys)
        self._log(request_id, route, call_id, room, outcome, started)

    def event(self, request_id: str, route: str, call_id: str | None, room: str | None, outcome: str,
              started: float) -> None:
        """One status event's outcome: stored, duplicate, unreadable, refused, too_large, invalid or unavailable."""
        keys = [("requests", route, outcome), ("events", outcome)]
        if outcome == "refused":
            keys.append(("signature", route))
        self._count(*keys)
        self._log(request_id, route, call_id, room, outcome, started)

    def _log(self, request_id: str, route: str, call_id: str | None, room: str | None, outcome: str,
             started: float) -> None:
        lines = _request_lines
        if lines is not None:  # a server process (configure_logging): the batched fast path
            if lines.enabled:
                lines.add(request_id, route, call_id, room, outcome, round((time.perf_counter() - started) * 1000, 3))
        elif requests_log.isEnabledFor(logging.INFO):
            latency = round((time.perf_counter() - started) * 1000, 3)
            requests_log.info("%s %s call=%s room=%s outcome=%s %.3f ms", request_id, route, call_id or "-",
                              room or "-", outcome, latency,
                              extra={"request_id": request_id, "route": route, "call_id": call_id, "room": room,
                                     "outcome": outcome, "latency_ms": latency})

    # -- off the request path ---------------------------------------------------------------
    def _start_flusher(self) -> None:
        with self._lock:
            if self._flusher_pid == os.getpid():
                return
            self._flusher_pid = os.getpid()
        threading.Thread(target=self._flush_forever, name="roomc-metrics", daemon=True).start()
        atexit.register(self.flush)  # a worker stopping cleanly loses nothing it counted

    def _flush_forever(self) -> None:
        while True:
            time.sleep(self.flush_every)
            try:
                self.flush()
            except Exception:  # a metrics hiccup must never take the worker down
                logging.getLogger("roomc").exception("metrics flush failed")

    def flush(self) -> None:
        """Move the counts gathered so far into prometheus-client (and so into the mmap'd files)."""
        with self._lock:
            counts, self._counts = self._counts, Tally()
            times, self._store_times = self._store_times, {}
            sizes, self._batch_sizes = self._batch_sizes, {}
        m = self.metrics
        for key, n in counts.items():
            kind = key[0]
            if kind == "requests":
                m.requests.labels(key[1], key[2]).inc(n)
            elif kind == "events":
                m.events.labels(key[1]).inc(n)
            elif kind == "signature":
                m.signature_failures.labels(key[1]).inc(n)
            elif kind == "fallback":
                m.fallbacks.labels(key[1], key[2]).inc(n)
            elif kind == "admitted":
                m.admissions.labels(key[1]).inc(n)
            elif kind == "full":
                m.when_full.labels(key[1]).inc(n)
            else:  # bad_name, no_role, closed (open hours)
                m.refusals.labels(key[1], kind).inc(n)
        for histogram, tallies in ((m.store_seconds, times), (m.batch_items, sizes)):
            for operation, tally in tallies.items():
                child = histogram.labels(operation)
                # Histogram.observe takes one value at a time; a second's worth is folded in as one
                # increment per bucket instead (same numbers, a few mmap writes rather than thousands).
                child._sum.inc(tally[-1])
                for index, hits in enumerate(tally[:-1]):
                    if hits:
                        child._buckets[index].inc(hits)


def exposition() -> tuple[bytes, str]:
    """The metrics in Prometheus' text format, summed over every worker process in multiprocess mode."""
    from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest

    from prometheus_client import values

    metrics()  # the families exist (and show at zero) even before the first request
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    # The mode is fixed when prometheus-client is imported: read the files only if values go there.
    if not directory or not getattr(values.ValueClass, "_multiprocess", False):
        return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
    from prometheus_client import multiprocess

    _forget_dead_gauges(Path(directory))
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    return generate_latest(registry), CONTENT_TYPE_LATEST


def _forget_dead_gauges(directory: Path) -> None:
    # Counters and histograms of a worker that died stay: what it counted happened. Only a live
    # gauge's file must go with its process, or a dead worker's value is summed in for ever.
    from prometheus_client import multiprocess

    for path in directory.glob("gauge_live*_*.db"):
        pid = int(path.stem.rsplit("_", 1)[1])
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            multiprocess.mark_process_dead(pid, str(directory))
        except PermissionError:
            pass


def prepare_multiprocess_dir(directory: Path) -> None:
    """Create the metrics folder and empty it: values from a previous run must not be summed in."""
    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.glob("*.db"):
        stale.unlink()


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, and the request's fields when it has them."""

    FIELDS = ("request_id", "route", "call_id", "room", "outcome", "latency_ms")

    def format(self, record: logging.LogRecord) -> str:
        data: dict = {"time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
                      "level": record.levelname, "logger": record.name, "message": record.getMessage()}
        for name in self.FIELDS:
            if name in record.__dict__:
                data[name] = record.__dict__[name]
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(data, default=str).decode()


class RequestLines:
    """One log line per webhook request, written in batches by a background thread.

    Through `logging`, a line per request cost about a quarter of the join route's time (a
    LogRecord, a formatter, a lock and a write(2) each); here it is a string and a list append.
    Every 0.2 s the lines go out in writes of whole lines of at most 4,096 bytes, so on a pipe
    (PIPE_BUF) no other worker's line can land inside one. They may reach stderr up to 0.2 s
    after a warning logged later; each carries its own time.
    """

    def __init__(self, fmt: str, enabled: bool, fd: int = 2, flush_every: float = 0.2):
        self.json = fmt == "json"
        self.enabled = enabled
        self.fd = fd
        self.flush_every = flush_every
        self._lines: list[bytes] = []
        self._lock = threading.Lock()
        self._pid = -1
        self._second = -1
        self._stamp = ""

    def add(self, request_id: str, route: str, call_id: str | None, room: str | None, outcome: str,
            latency_ms: float) -> None:
        """Queue one request's line."""
        now = time.time()
        second = int(now)
        if second != self._second:  # formatting a time costs more than the rest of the line
            self._second = second
            self._stamp = (time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)) if self.json
                           else time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(second)))
        millis = int((now - second) * 1000)
        message = (f"{request_id} {route} call={call_id or '-'} room={room or '-'} outcome={outcome} "
                   f"{latency_ms:.3f} ms")
        if self.json:
            line = orjson.dumps({"time": f"{self._stamp}.{millis:03d}Z", "level": "INFO", "logger": "roomc.requests",
                                 "message": message, "request_id": request_id, "route": route, "call_id": call_id,
                                 "room": room, "outcome": outcome, "latency_ms": latency_ms}) + b"\n"
        else:
            line = f"{self._stamp},{millis:03d} INFO roomc.requests {message}\n".encode()
        with self._lock:
            self._lines.append(line)
        if self._pid != os.getpid():
            self._start()

    def _start(self) -> None:
        with self._lock:
            if self._pid == os.getpid():
                return
            self._pid = os.getpid()
        threading.Thread(target=self._flush_forever, name="roomc-request-log", daemon=True).start()
        atexit.register(self.flush)

    def _flush_forever(self) -> None:
        while True:
            time.sleep(self.flush_every)
            self.flush()

    def flush(self) -> None:
        """Write the queued lines now."""
        with self._lock:
            lines, self._lines = self._lines, []
        chunk: list[bytes] = []
        size = 0
        try:
            for line in lines:
                if chunk and size + len(line) > 4096:
                    os.write(self.fd, b"".join(chunk))
                    chunk, size = [], 0
                chunk.append(line)
                size += len(line)
            if chunk:
                os.write(self.fd, b"".join(chunk))
        except OSError:
            pass  # stderr closed or full: losing log lines must not stop the worker


_request_lines: RequestLines | None = None


def configure_logging(level: str = "INFO", fmt: str = "text") -> None:
    """Log to stderr in `text` (the default) or `json` (one object per line); request lines take the batched path."""
    global _request_lines
    _request_lines = RequestLines(fmt, enabled=logging.getLevelName(level.upper()) <= logging.INFO
                                  if isinstance(logging.getLevelName(level.upper()), int) else True)
    handler = logging.StreamHandler()
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
        handler.formatter.converter = time.gmtime  # type: ignore[union-attr]
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


__all__ = ["Observer", "configure_logging", "exposition", "metrics", "prepare_multiprocess_dir"]
