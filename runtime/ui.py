"""The live room page at /ui: server-rendered rooms, a login, and a server-sent-events stream.

The page works without JavaScript (a reload shows the present); runtime/static/ui.js swaps
in each fragment the stream sends. The stream polls `Store.change_marker()` (no table read)
four times a second and renders only when it moved, once per worker however many pages are
open. Under `roomc serve` the stream is served on the worker's event loop (`LiveStream`,
dispatched by runtime/rsgi.py), so an open page holds no request thread and cannot delay a
caller; under any other WSGI server the /ui/stream view streams from a request thread. Either
way streams are capped per worker (`ROOMC_UI_STREAMS`) and end after `ROOMC_UI_STREAM_SECONDS`;
the browser reconnects by itself.
"""
from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
import secrets
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from typing import Any, Iterator, Mapping
from urllib.parse import urlsplit

from flask import Blueprint, Flask, Response, abort, redirect, render_template, request, session
from flask.sessions import SecureCookieSessionInterface
from flask.typing import ResponseReturnValue
from itsdangerous import BadSignature
from werkzeug.http import parse_cookie

from .store import Store

POLL_SECONDS = 0.25  # a change shows within about this, plus the render
REDRAW_SECONDS = 5.0  # reservations expire and hold times grow without a write; redraw anyway
MIN_RENDER_SECONDS = 0.5  # under a stream of writes, render at most twice a second per worker
MAX_RENDER_GAP = 0.9  # an expensive render (a line with thousands of rooms) spaces them out, up to this
FULL_ROOMS = 50  # rooms shown in full (participants, events); past that, one line each
LISTED_ROOMS = 200  # and past that, only a count: the page stays cheap on a line with thousands of rooms
SESSION_HOURS = 12
LOGIN_FAILURES_PER_ADDRESS = 5  # wrong tokens from one address within LOGIN_WINDOW before it must wait
LOGIN_FAILURES_OVERALL = 50  # from all addresses together, per worker: a spray of addresses is slowed too
LOGIN_WINDOW = 300.0
REVOKED = "ui-signed-out:"  # store note key prefix: a session signed out, for as long as it could live
RECENT_EVENTS = 8
ENDED_ROOMS = 10


def _epoch(iso: str | None) -> float | None:
    return datetime.fromisoformat(iso).timestamp() if iso else None


def _hold(since: float | None, left: float | None, live_start: float | None, now: float) -> tuple[float | None, bool]:
    """Seconds on hold (reserved or joined, room not started) and whether the wait goes on."""
    if since is None:
        return None, False
    if live_start is not None:
        return (live_start - since, False) if live_start > since else (None, False)
    end = left if left is not None else now
    return max(0.0, end - since), left is None


def snapshot(store: Store, now: float | None = None) -> dict:
    """Everything the page (and `roomc rooms --watch`) shows: live rooms in full, recently ended ones."""
    now = time.time() if now is None else now
    rooms: list[dict] = []
    more: list[dict] = []
    live = store.live_rooms(now)
    for summary in live:
        if len(rooms) >= FULL_ROOMS:
            more.append(summary)
            if len(more) >= LISTED_ROOMS:
                break
            continue
        room = store.room(summary["name"]) or {"participants": [], "started": None, "ended": None,
                                               "recordingUrl": None}
        started, ended = _epoch(room["started"]), _epoch(room["ended"])
        live_start = started if started is not None and (ended is None or ended < started) else None
        raised = {h["callId"]: h["at"] for h in room.get("handsRaised", [])}
        asking = {o["callId"]: o["at"] for o in room.get("operatorRequested", [])}
        people = []
        for p in room["participants"]:
            joined, left = _epoch(p["joinedAt"]), _epoch(p["leftAt"])
            since = joined if joined is not None else _epoch(p.get("reservedAt"))
            held, holding = _hold(since, left, live_start, now)
            state = "left" if left is not None else "joined" if joined is not None else "reserved"
            people.append({**p, "state": state, "holdSeconds": held, "holding": holding, "holdSince": since,
                           "handSince": raised.get(p["callId"]), "operatorSince": asking.get(p["callId"])})
        rooms.append({**summary, "startedAt": room["started"], "endedAt": room["ended"],
                      "recordingUrl": room["recordingUrl"], "people": people,
                      "handsRaised": room.get("handsRaised", []), "operatorRequested": room.get("operatorRequested", []),
                      "events": store.recent_events(summary["name"], RECENT_EVENTS)})
    live_names = {r["name"] for r in rooms + more}
    recently_ended = [r for r in store.ended_rooms(ENDED_ROOMS) if r["name"] not in live_names]
    return {"at": datetime.fromtimestamp(now, timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z"),
            "rooms": rooms, "more": more,
            "unlisted": len(live) - len(rooms) - len(more), "ended": recently_ended}


def duration(seconds: float | None) -> str:
    """`1:05` or `1:02:03`; empty for no value."""
    if seconds is None:
        return ""
    whole = int(seconds)
    hours, rest = divmod(whole, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


def render_text(view: dict) -> str:
    """The snapshot for a terminal (`roomc rooms --watch`)."""
    lines = [f"roomc rooms at {view['at']}", ""]
    if not view["rooms"]:
        lines.append("no live rooms")
    for room in view["rooms"]:
        state = "started " + room["startedAt"] if room["started"] else "not started"
        lines.append(f"{room['name']}: {room['participants']} joined, {room['reserved']} reserved, {state}")
        for p in room["people"]:
            hold = duration(p["holdSeconds"])
            lines.append(f"  {p['callId']:<24} {p['role'] or '-':<12} {p['state']:<8} {'muted' if p['muted'] else '':<5} "
                         f"joined {p['joinedAt'] or '-'}  left {p['leftAt'] or '-'}"
                         + (f"  on hold {hold}{'…' if p['holding'] else ''}" if hold else "")
                         + (f"  HAND since {p['handSince']}" if p.get("handSince") else "")
                         + (f"  OPERATOR since {p['operatorSince']}" if p.get("operatorSince") else ""))
        if room.get("operatorRequested"):
            lines.append(f"  ! operator requested by {', '.join(o['callId'] for o in room['operatorRequested'])}")
        for e in room["events"][:3]:
            lines.append(f"  · {e['at']} {e['event']} {e['callId'] or ''}".rstrip())
    if view.get("more"):
        names = ", ".join(f"{r['name']} ({r['participants']}+{r['reserved']})" for r in view["more"][:20])
        lines += ["", f"{len(view['more']) + view['unlisted']} more live rooms: {names}"
                  + (", ..." if len(view["more"]) + view["unlisted"] > 20 else "")]
    if view["ended"]:
        lines += ["", "ended:"]
        for room in view["ended"]:
            lines.append(f"  {room['name']:<40} ended {room['ended']}  recording {room['recordingUrl'] or '-'}")
    return "\n".join(lines) + "\n"


class LoginLimiter:
    """Wrong admin tokens counted per client address and overall, in this worker's memory, over a sliding window."""

    def __init__(self, *, per_address: int = LOGIN_FAILURES_PER_ADDRESS, overall: int = LOGIN_FAILURES_OVERALL,
                 window: float = LOGIN_WINDOW, max_addresses: int = 10_000):
        self.per_address = per_address
        self.overall = overall
        self.window = window
        self.max_addresses = max_addresses
        self.addresses: dict[str, list[float]] = {}  # insertion order: the oldest address is dropped first
        self.everyone: list[float] = []
        self._lock = threading.Lock()

    def wait(self, address: str, now: float | None = None) -> float:
        """Seconds until `address` may try again (0: now)."""
        now = time.monotonic() if now is None else now
        with self._lock:
            waits = [0.0]
            for times, limit in ((self.addresses.get(address, []), self.per_address), (self.everyone, self.overall)):
                recent = [t for t in times if t > now - self.window]
                if len(recent) >= limit:
                    waits.append(recent[-limit] + self.window - now)
            return max(waits)

    def failed(self, address: str, now: float | None = None) -> None:
        """Count one wrong token from `address`."""
        now = time.monotonic() if now is None else now
        with self._lock:
            times = self.addresses.pop(address, [])
            times = [t for t in times if t > now - self.window][-self.per_address:] + [now]
            self.addresses[address] = times
            while len(self.addresses) > self.max_addresses:
                del self.addresses[next(iter(self.addresses))]
            self.everyone = [t for t in self.everyone if t > now - self.window][-self.overall:] + [now]


def _origin_of(url: str | None) -> str | None:
    if not url:
        return None
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme in ("http", "https") and parts.netloc else None


class _SessionInterface(SecureCookieSessionInterface):
    """The session cookie is Secure whenever the page came over HTTPS, directly or through the public URL's proxy."""

    def __init__(self, public_origin: str | None = None):
        self.public_origin = public_origin

    def get_cookie_secure(self, app: Flask) -> bool:
        return request.is_secure or _through_public_https(self.public_origin)


def _through_public_https(public_origin: str | None) -> bool:
    # A TLS-terminating proxy in front: the browser is on the public https origin, we see http.
    return bool(public_origin and public_origin.startswith("https://")
                and request.headers.get("Origin", public_origin) == public_origin
                and request.host == urlsplit(public_origin).netloc)


def _same_origin(public_origin: str | None) -> bool:
    # CSRF, second line (the form token is the first): a POST must say it came from this origin,
    # or from the public URL's (a TLS proxy in front). Browsers send Origin on every POST; a
    # request that sends neither it nor a Referer is refused.
    accepted = {request.host_url.rstrip("/")} | ({public_origin} if public_origin else set())
    origin = request.headers.get("Origin")
    if origin is not None:
        return origin in accepted
    referer = request.headers.get("Referer", "")
    return any(referer == expected or referer.startswith(expected + "/") for expected in accepted)


def _csrf_ok(public_origin: str | None) -> bool:
    expected = session.get("csrf")
    given = request.form.get("csrf", "")
    return (bool(expected) and hmac.compare_digest(str(expected).encode(), given.encode())
            and _same_origin(public_origin))


def session_revoked(store: Store, data: Mapping[str, Any]) -> bool:
    """Whether a page session was signed out (or has no id, so could never be): read from the store."""
    sid = data.get("sid")
    if not isinstance(sid, str) or not sid:
        return True
    try:
        return store.noted(REVOKED + sid) is not None
    except Exception:  # the store cannot say: fail closed, the page asks to sign in again
        return True


def _new_csrf() -> str:
    session["csrf"] = secrets.token_urlsafe(24)
    return session["csrf"]


def frame(html: str) -> bytes:
    """One server-sent event carrying the rooms fragment (a data: line per line of HTML)."""
    return ("event: rooms\n" + "".join(f"data: {line}\n" for line in html.split("\n")) + "\n").encode()


class LiveView:
    """The rooms fragment, re-rendered only when the store changed (or every few seconds), and
    shared by every stream in this worker: ten open pages cost one render, not ten."""

    def __init__(self, app: Flask, store: Store):
        self.app = app
        self.store = store
        self._lock = threading.Lock()
        self._marker: object = None
        self._drawn = -1e9
        self._gap = MIN_RENDER_SECONDS
        self._html = ""
        self._pool: ThreadPoolExecutor | None = None
        self._pool_pid = -1

    @property
    def pool(self) -> ThreadPoolExecutor:
        """One thread per worker that renders for every stream: the store's queries release the
        GIL, so callers on the event loop are answered while a large render runs."""
        if self._pool_pid != os.getpid():
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="roomc-live-page")
            self._pool_pid = os.getpid()
        assert self._pool is not None
        return self._pool

    def current(self) -> str:
        """The fragment as of now."""
        with self._lock:
            now = time.monotonic()
            marker = self.store.change_marker()
            since = now - self._drawn
            if (marker != self._marker and since >= self._gap) or since >= REDRAW_SECONDS:
                self._marker, self._drawn = marker, now
                template = self.app.jinja_env.get_template("rooms.html")  # cached by Jinja
                self._html = template.render(view=snapshot(self.store), duration=duration)
                # At most about a fifth of this thread's time goes to rendering, however busy the line.
                took = time.monotonic() - now
                self._gap = min(MAX_RENDER_GAP, max(MIN_RENDER_SECONDS, 4 * took))
            return self._html


class LiveStream:
    """GET /ui/stream as an RSGI handler on the worker's event loop: waiting costs no thread."""

    def __init__(self, app: Flask, view: LiveView, *, max_streams: int, stream_seconds: float,
                 store: Store | None = None):
        self.app = app
        self.view = view
        self.store = store if store is not None else view.store
        self.max_streams = max_streams
        self.stream_seconds = stream_seconds
        self.open = 0

    def signed_in(self, environ: dict) -> bool:
        """Whether the request carries a valid, unexpired page session (Flask's own cookie format)."""
        raw = parse_cookie(environ.get("HTTP_COOKIE", "")).get(self.app.config["SESSION_COOKIE_NAME"])
        serializer = self.app.session_interface.get_signing_serializer(self.app)  # type: ignore[attr-defined]
        if not raw or serializer is None:
            return False
        try:
            data = serializer.loads(raw, max_age=int(self.app.permanent_session_lifetime.total_seconds()))
        except BadSignature:
            return False
        return isinstance(data, dict) and data.get("admin") is True and not session_revoked(self.store, data)

    async def __call__(self, environ: dict, proto: Any) -> None:
        text = [("content-type", "text/plain; charset=utf-8"), ("cache-control", "no-store")]
        # The revocation check reads the store: off the event loop, as the renders are.
        if not await asyncio.get_running_loop().run_in_executor(self.view.pool, self.signed_in, environ):
            proto.response_bytes(401, text, b"sign in at /ui/login\n")
            return
        if self.open >= self.max_streams:
            proto.response_bytes(503, text + [("retry-after", "5")], b"too many live pages open on this worker\n")
            return
        self.open += 1
        gone = asyncio.ensure_future(proto.client_disconnect())
        try:
            transport = proto.response_stream(200, [("content-type", "text/event-stream"), ("cache-control", "no-store"),
                                                    ("x-accel-buffering", "no")])
            await transport.send_bytes(b"retry: 500\n\n")
            deadline = time.monotonic() + self.stream_seconds
            sent = None
            loop = asyncio.get_running_loop()
            while not gone.done():
                html = await loop.run_in_executor(self.view.pool, self.view.current)
                if html != sent:
                    sent = html
                    await transport.send_bytes(frame(html))
                if time.monotonic() >= deadline:
                    break
                await asyncio.wait({gone}, timeout=POLL_SECONDS)
        except Exception:  # the client went away mid-send; nothing to tell anyone
            pass
        finally:
            self.open -= 1
            gone.cancel()


def install(app: Flask, store: Store, admin_token: str | None, *, max_streams: int = 16,
            stream_seconds: float = 30.0, public_url: str | None = None) -> None:
    """Add /ui (page, login, logout, stream) to the app; every /ui path answers 404 without an admin token."""
    blueprint = Blueprint("ui", __name__, url_prefix="/ui", template_folder="templates",
                          static_folder="static", static_url_path="/static")
    streams = threading.BoundedSemaphore(max_streams)
    view = LiveView(app, store)
    public_origin = _origin_of(public_url)
    limiter = LoginLimiter()
    lifetime = timedelta(hours=SESSION_HOURS)
    if admin_token:
        # Derived, not the token itself: a leaked cookie signature says nothing about the token,
        # and a new token signs every old session out.
        app.secret_key = hmac.new(admin_token.encode(), b"roomc live page session", hashlib.sha256).hexdigest()
        app.session_interface = _SessionInterface(public_origin)
        app.config.update(SESSION_COOKIE_NAME="roomc_session", SESSION_COOKIE_HTTPONLY=True,
                          SESSION_COOKIE_SAMESITE="Strict", SESSION_COOKIE_PATH="/ui",
                          PERMANENT_SESSION_LIFETIME=lifetime)

    @blueprint.before_request
    def enabled() -> Response | None:
        if not admin_token:
            abort(404)
        return None

    @blueprint.after_request
    def headers(response: Response) -> Response:
        # No inline script or style anywhere, so the policy can forbid both.
        response.headers["Content-Security-Policy"] = (
            "default-src 'self'; img-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'")
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "same-origin"
        response.headers.setdefault("Cache-Control", "no-store")
        return response

    def signed_in() -> bool:
        return session.get("admin") is True and not session_revoked(store, session)

    @blueprint.get("/login")
    def login_form() -> ResponseReturnValue:
        if signed_in():
            return redirect("/ui", 303)
        return render_template("login.html", csrf=session.get("csrf") or _new_csrf(), error=None)

    @blueprint.post("/login")
    def login() -> ResponseReturnValue:
        if not _csrf_ok(public_origin):
            return render_template("login.html", csrf=_new_csrf(), error="The form expired; try again."), 400
        address = request.remote_addr or "-"
        wait = limiter.wait(address)
        if wait > 0:  # checked before the token, so the right one cannot be told apart while limited
            answer = render_template("login.html", csrf=_new_csrf(),
                                     error=f"Too many wrong tokens; try again in {int(wait) + 1} s.")
            return answer, 429, {"Retry-After": str(int(wait) + 1)}
        token = request.form.get("token", "")
        assert admin_token is not None
        if not hmac.compare_digest(token.encode(), admin_token.encode()):
            limiter.failed(address)
            return render_template("login.html", csrf=_new_csrf(), error="That token is not right."), 401
        session.clear()
        session.permanent = True
        session["admin"] = True
        session["sid"] = secrets.token_urlsafe(18)  # names this session, so sign-out can revoke it everywhere
        _new_csrf()  # a fresh token after login: one seen before it must not act for the session
        return redirect("/ui", 303)

    @blueprint.post("/logout")
    def logout() -> ResponseReturnValue:
        if not _csrf_ok(public_origin):
            return render_template("login.html", csrf=_new_csrf(), error="The form expired; try again."), 400
        sid = session.get("sid")
        if isinstance(sid, str) and sid:
            # Kept as long as the cookie could live, in the store every worker and instance reads.
            store.note(REVOKED + sid, "1", ttl=lifetime.total_seconds())
        session.clear()
        return redirect("/ui/login", 303)

    @blueprint.get("")
    @blueprint.get("/")
    def page() -> ResponseReturnValue:
        if not signed_in():
            return redirect("/ui/login", 303)
        # The rooms are the stream's shared, cached fragment: a page load costs a render at most
        # every few hundred ms per worker, however many operators reload it (it runs on the
        # thread that answers callers).
        at = datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")
        return render_template("page.html", view={"at": at}, fragment=view.current(),
                               csrf=session.get("csrf") or _new_csrf())

    @blueprint.get("/stream")
    def stream() -> Response:
        if not signed_in():
            return Response("sign in at /ui/login\n", 401, mimetype="text/plain")
        if not streams.acquire(blocking=False):
            # Every stream holds a request thread; past the cap the voice routes would queue.
            return Response("too many live pages open on this worker; retrying\n", 503, mimetype="text/plain",
                            headers={"Retry-After": "5"})
        released = threading.Lock()

        def release() -> None:
            # From the stream's end or from the server's close(), whichever comes first: once.
            if released.acquire(blocking=False):
                streams.release()

        def events() -> Iterator[bytes]:
            try:
                yield b"retry: 500\n\n"
                deadline = time.monotonic() + stream_seconds
                sent = None
                while True:
                    html = view.current()
                    if html != sent:
                        sent = html
                        yield frame(html)
                    if time.monotonic() >= deadline:
                        return
                    time.sleep(POLL_SECONDS)
            finally:
                release()

        response = Response(events(), mimetype="text/event-stream",
                            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})
        response.call_on_close(release)  # a stream never iterated still gives its place back
        return response

    app.register_blueprint(blueprint)
    if admin_token:
        # roomc serve's RSGI front (runtime/rsgi.py) serves these paths on the event loop itself.
        app.extensions.setdefault("roomc", {}).setdefault("streams", {})["/ui/stream"] = LiveStream(
            app, view, max_streams=max_streams, stream_seconds=stream_seconds, store=store)


__all__ = ["LiveStream", "LiveView", "LoginLimiter", "duration", "install", "render_text", "session_revoked", "snapshot"]
