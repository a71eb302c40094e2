"""granian's RSGI interface in front of the WSGI app: no request waits on a stranger's body.

Under granian's WSGI interface, `wsgi.input.read()` blocks the request thread until the
client has sent its body, with no deadline: one connection that sends its headers and then
stalls holds the worker's only thread, and every caller and /healthz waits (issue 9). Here
the body is read on the worker's event loop, concurrently for every connection, with a
deadline and a size limit, and only a request whose body is complete runs the WSGI app
(with the body in memory). A client too slow to send its body gets a JSON 408, having
held nothing but its own coroutine. Headers are bounded by granian itself
(`--http1-header-read-timeout`, set by `roomc serve`), in Rust, before any Python runs.

With one request thread (the default), the app runs on the event loop's own thread: a
hand-off to a second thread cost 25-30 % of the join route's requests/s on 2 cores (GIL
ping-pong), and the app never waits on the network, only (boundedly) on the store.
"""
from __future__ import annotations

import asyncio
import io
import logging
import os
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Awaitable, Callable, Iterable

import orjson

from .batch import BatchingStore

log = logging.getLogger("roomc")
WSGIApp = Callable[[dict, Callable], Iterable[bytes]]
JSON_HEADERS = [("content-type", "application/json")]
WATCHDOG_EVERY = 0.25  # seconds between sweeps for late bodies: a deadline is kept to within this


def _error(code: str, message: str) -> bytes:
    return orjson.dumps({"error": {"code": code, "message": message}})


class _StartResponse:
    """Collects what the WSGI app passes to start_response."""

    __slots__ = ("status", "headers")

    def __init__(self) -> None:
        self.status = 500
        self.headers: list[tuple[str, str]] = []

    def __call__(self, status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable:
        self.status = int(status[:3])
        self.headers = headers
        return _no_write


def _no_write(data: bytes) -> None:
    raise RuntimeError("the WSGI write() callable is not supported")


def _environ_key(header: str) -> str:
    """The environ key of a (lower-case) header name, as WSGI spells it."""
    if header == "content-type":
        return "CONTENT_TYPE"
    if header == "content-length":
        return "CONTENT_LENGTH"
    return "HTTP_" + header.upper().replace("-", "_")


def wake_only_when_asleep(loop: asyncio.AbstractEventLoop) -> bool:
    """Make `loop.call_soon_threadsafe` write to the loop's self-pipe only while the loop sleeps in select.

    granian's I/O thread hands every request and every body to the loop with call_soon_threadsafe,
    and asyncio wakes the loop for each with a socket write, even when the loop is busy and would
    run the callback anyway. Each write is a system call made holding and then re-taking the GIL
    the loop thread needs: under load, about one more GIL hand-over per request. Returns False
    (and changes nothing) for a loop without asyncio's selector internals.
    """
    selector, ready = getattr(loop, "_selector", None), getattr(loop, "_ready", None)
    call_soon, write_to_self = getattr(loop, "_call_soon", None), getattr(loop, "_write_to_self", None)
    if selector is None or ready is None or call_soon is None or write_to_self is None:
        return False
    select = selector.select
    asleep = False

    def select_marking_sleep(timeout: float | None = None) -> Any:
        nonlocal asleep
        # Marked before `ready` is looked at again: a callback added from another thread either is
        # seen here (no sleep) or sees `asleep` and writes (wakes it). The GIL orders the two.
        asleep = True
        try:
            return select(0 if ready else timeout)
        finally:
            asleep = False

    def call_soon_threadsafe(callback: Callable, *args: Any, context: Any = None) -> asyncio.Handle:
        handle = call_soon(callback, args, context)
        if asleep:
            write_to_self()
        return handle

    selector.select = select_marking_sleep  # type: ignore[method-assign]
    loop.call_soon_threadsafe = call_soon_threadsafe  # type: ignore[method-assign,assignment]
    return True


def batch_other_threads() -> int:
    """Put every thread of this process but the calling one under SCHED_BATCH; returns how many.

    Called on the worker's event-loop thread once granian's I/O threads exist (on its first request:
    they do not yet at __rsgi_init__). Each request wakes an I/O thread twice (its body, its
    response); a woken SCHED_BATCH thread waits for a free core
    or the scheduler's next tick instead of preempting the thread that woke it, which is the one
    holding the GIL with the next request to run: preempted, it came back only after the woken
    thread had found the GIL taken and gone back to sleep. Lowering a thread's own policy needs
    no privilege; threads these threads start later inherit it.
    """
    me = threading.get_native_id()
    changed = 0
    try:
        threads = os.listdir("/proc/self/task")
    except OSError:
        return 0  # not Linux: nothing to do
    for name in threads:
        tid = int(name)
        if tid == me:
            continue
        try:
            os.sched_setscheduler(tid, os.SCHED_BATCH, os.sched_param(0))
            changed += 1
        except (OSError, AttributeError):
            pass  # gone already, or a platform without SCHED_BATCH
    return changed


def run_wsgi(app: WSGIApp, environ: dict) -> tuple[int, list[tuple[str, str]], bytes]:
    """Call a WSGI app to completion: status, headers and the whole body."""
    start = _StartResponse()
    result = app(environ, start)
    try:
        body = b"".join(result)
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            close()
    return start.status, start.headers, body


class RSGIServer:
    """An RSGI application (granian `--interface rsgi`) serving a WSGI app with bounded body reads.

    `body_timeout` bounds the time from the request's headers to the end of its body;
    `max_body_bytes` bounds what is read (one byte more is read to notice a longer chunked body,
    and the WSGI app refuses it as it would under any server). With `threads` > 1 the app runs
    on that many threads, and `loop_paths` (cheap requests that never wait on the store's write
    lock, /healthz) stay on the loop; with 1 every request runs on the loop's thread.
    """

    def __init__(self, app: WSGIApp, *, max_body_bytes: int, body_timeout: float = 5.0, threads: int = 1,
                 loop_paths: tuple[str, ...] = ("/healthz",),
                 streams: dict[str, Callable[[dict, Any], Awaitable[None]]] | None = None,
                 batcher: BatchingStore | None = None):
        self.app = app
        # With one request thread, requests run in greenlets whose seats and events are stored a loop turn
        # at a time (runtime/batch.py); request threads call the store themselves.
        self.batcher = batcher if threads <= 1 else None
        self.streams = streams or {}  # GET paths answered by an async handler on the loop (the live page's stream)
        self.max_body_bytes = max_body_bytes
        self.body_timeout = body_timeout
        self.threads = max(1, threads)
        self.loop_paths = frozenset(loop_paths)
        self.pool: ThreadPoolExecutor | None = None
        self.base_environ = {
            "SCRIPT_NAME": "", "SERVER_SOFTWARE": "roomc (granian rsgi)", "wsgi.version": (1, 0),
            "wsgi.errors": sys.stderr, "wsgi.multithread": self.threads > 1, "wsgi.multiprocess": True,
            "wsgi.run_once": False, "wsgi.input_terminated": True,
        }
        # Body reads in progress: granian's future -> loop time by which it must be done. One watchdog
        # callback cancels the late ones, instead of a timer per request (asyncio.timeout costs
        # a timer-heap push and cancel per request: 20 us of a 200 us join on this machine).
        self._reading: dict[Any, float] = {}
        self._late: set[Any] = set()
        self._watchdog: asyncio.TimerHandle | None = None
        self._header_keys: dict[str, str] = {}
        self._addresses: dict[str, tuple[str, str]] = {}
        self._batch_pending = False  # set by __rsgi_init__: granian's I/O threads are batched on the first request

    def __rsgi_init__(self, loop: asyncio.AbstractEventLoop) -> None:
        wake_only_when_asleep(loop)
        # Not batched here: granian calls this before it starts the worker's Rust runtime, so its
        # I/O threads do not exist yet (and would inherit this thread's policy). The first request
        # has come through them: it batches them (__rsgi__).
        self._batch_pending = os.environ.get("ROOMC_IO_THREADS_BATCH", "1") != "0"
        if self.threads > 1:
            self.pool = ThreadPoolExecutor(max_workers=self.threads, thread_name_prefix="roomc-request")

    def __rsgi_del__(self, loop: asyncio.AbstractEventLoop) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=False, cancel_futures=True)
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None

    def _cancel_late_reads(self) -> None:
        """Cancel every body read past its deadline; runs every WATCHDOG_EVERY while reads are pending."""
        self._watchdog = None
        if not self._reading:
            return  # re-armed by the next read: an idle worker wakes for nothing
        loop = asyncio.get_running_loop()
        now = loop.time()
        for read, deadline in list(self._reading.items()):
            if deadline <= now and read not in self._late:
                self._late.add(read)
                read.cancel()
        self._watchdog = loop.call_later(WATCHDOG_EVERY, self._cancel_late_reads)

    async def _within(self, read: Any, deadline: float) -> Any:
        """Await one of granian's body futures, or raise TimeoutError once `deadline` has passed.

        The future itself is cancelled, not the task: granian's Rust task implementation runs the
        coroutine without an asyncio task, and its futures take `cancel()` under either."""
        self._reading[read] = deadline
        if self._watchdog is None:
            self._watchdog = asyncio.get_running_loop().call_later(WATCHDOG_EVERY, self._cancel_late_reads)
        try:
            return await read
        except asyncio.CancelledError:
            if read in self._late:
                raise TimeoutError from None
            raise
        finally:
            del self._reading[read]
            self._late.discard(read)

    async def _read_within_deadline(self, proto: Any, declared: int | None) -> bytes:
        """The body, or TimeoutError once body_timeout (plus at most WATCHDOG_EVERY) has passed."""
        deadline = asyncio.get_running_loop().time() + self.body_timeout
        if declared is not None:
            if declared > self.max_body_bytes:
                return b""  # the app refuses it by its Content-Length, unread
            # Bounded by the declared length; granian raises if the client stops short.
            body = await self._within(proto(), deadline)
            if len(body) != declared:
                raise ConnectionError(f"body of {len(body)} bytes, {declared} declared")
            return body
        # Chunked: read in pieces, so an endless body is cut at the limit. (granian ends this loop
        # quietly, not with an error, on a malformed chunk or a disconnect: such a body reaches the
        # app cut short, where its signature no longer matches; docs/runtime.md.)
        chunks: list[bytes] = []
        size = 0
        pieces = proto.__aiter__()
        while size <= self.max_body_bytes:  # one byte past the limit is enough for the app to refuse it
            try:
                chunk = await self._within(pieces.__anext__(), deadline)
            except StopAsyncIteration:
                break
            chunks.append(chunk)
            size += len(chunk)
        return b"".join(chunks)

    def environ(self, scope: Any, body: bytes) -> dict:
        """The WSGI environ for an RSGI scope whose body has been read."""
        environ = self.base_environ.copy()
        server = scope.server
        address = self._addresses.get(server)
        if address is None:
            host, _, port = server.rpartition(":")
            address = (host, port)
            if len(self._addresses) < 64:  # a worker listens on one address; bounded all the same
                self._addresses[server] = address
        remote, _, remote_port = scope.client.rpartition(":")
        path = scope.path
        environ["REQUEST_METHOD"] = scope.method
        # WSGI carries the path as the latin-1 text of its bytes; RSGI hands it over decoded as UTF-8.
        environ["PATH_INFO"] = path if path.isascii() else path.encode("utf-8", "surrogateescape").decode("latin-1")
        environ["QUERY_STRING"] = scope.query_string
        environ["SERVER_NAME"], environ["SERVER_PORT"] = address
        environ["SERVER_PROTOCOL"] = "HTTP/1.1" if scope.http_version == "1.1" else f"HTTP/{scope.http_version}"
        environ["REMOTE_ADDR"] = remote
        environ["REMOTE_PORT"] = remote_port
        environ["wsgi.url_scheme"] = scope.scheme
        environ["wsgi.input"] = io.BytesIO(body)
        keys = self._header_keys
        for name, value in scope.headers.items():
            key = keys.get(name)
            if key is None:
                key = _environ_key(name)
                if len(keys) < 512:  # bounded: a stranger's invented header names are not all kept
                    keys[name] = key
            if key in environ and key not in ("CONTENT_TYPE", "CONTENT_LENGTH"):
                environ[key] = f"{environ[key]},{value}"
            else:
                environ[key] = value
        return environ

    async def __rsgi__(self, scope: Any, proto: Any) -> None:
        """Answer one request: read its body under the deadline, then run the WSGI app."""
        if self._batch_pending:
            self._batch_pending = False
            batch_other_threads()
        if scope.proto != "http":
            return  # websockets are not served; granian refuses the upgrade
        stream = self.streams.get(scope.path)
        if stream is not None and scope.method == "GET":
            # A long-lived response waits on the event loop: it takes no request thread from callers.
            await stream(self.environ(scope, b""), proto)
            return
        headers_in = scope.headers
        length = headers_in.get("content-length")
        declared = int(length) if length and length.isdigit() else None
        try:
            if declared == 0 or (declared is None and "transfer-encoding" not in headers_in):
                body = b""  # no body (HTTP/1.1: neither a length nor chunks): nothing to wait for
            else:
                body = await self._read_within_deadline(proto, declared)
        except TimeoutError:
            log.warning("%s %s: body not received within %.1f s; answered 408", scope.method, scope.path,
                        self.body_timeout)
            proto.response_bytes(408, JSON_HEADERS + [("connection", "close")],
                                 _error("request.timeout", "request body not received in time"))
            return
        except Exception as error:  # the client went away mid-body, or sent a malformed chunk
            log.warning("%s %s: body could not be read (%s)", scope.method, scope.path, type(error).__name__)
            proto.response_bytes(400, JSON_HEADERS + [("connection", "close")],
                                 _error("request.body_unreadable", "request body could not be read"))
            return
        environ = self.environ(scope, body)
        try:
            if scope.path in self.loop_paths or (self.pool is None and self.batcher is None):
                status, headers, data = run_wsgi(self.app, environ)
            elif self.batcher is not None:
                status, headers, data = await self.batcher.run(run_wsgi, self.app, environ)
            else:
                loop = asyncio.get_running_loop()
                status, headers, data = await loop.run_in_executor(self.pool, run_wsgi, self.app, environ)
        except Exception:
            log.exception("%s %s failed outside the app's own handlers", scope.method, scope.path)
            proto.response_bytes(500, JSON_HEADERS, _error("server.error", "internal error"))
            return
        proto.response_bytes(status, headers, data)
