"""The app factory: `create_app(route_table, store=..., settings=...)` for any WSGI server.

Every voice route is served by one generic view built from the table. Whatever goes
wrong while answering a voice route, the caller gets a valid action list (the fallback),
never an HTML error page or silence.
"""
from __future__ import annotations

import hmac
import logging
import os
import time
from dataclasses import dataclass, field
from typing import Callable

import orjson
from flask import Flask, Response, request
from werkzeug.exceptions import HTTPException

from . import calls, directory
from . import ui
from .directory import MeetingDirectory
from .observe import Observer, exposition
from .render import Responder
from .keys import KeysRoute
from .store import REQUEST_DEADLINE, Store
from .webhooks import EventsRoute, VoiceRoute, Webhook

log = logging.getLogger("roomc")
RESERVED_PATHS = ("/healthz", "/rooms", "/metrics", "/ui")


class MissingSecret(Exception):
    """The policy names a signing-secret variable that is unset or empty: refuse to serve unverified."""

    def __init__(self, variable: str):
        super().__init__(
            f"the policy's server.signatureSecretEnv names {variable}, but {variable} is unset or empty: "
            f"set it to Sautikit's voice signing secret, or pass --allow-unsigned to serve WITHOUT verifying "
            f"signatures (local testing only)")
        self.variable = variable


@dataclass
class Settings:
    """Runtime settings; `from_env` reads them the way `roomc serve` does."""

    public_url: str | None = None
    signing_secret: bytes | None = None
    admin_token: str | None = None
    reservation_ttl: float = 60.0
    secrets: dict[str, str] = field(default_factory=dict)
    max_body_bytes: int = 64 * 1024  # callbacks are a few hundred bytes; a stranger's body is parsed only once signed
    allow_unsigned: bool = False  # serve a policy that names a secret without one (--allow-unsigned)
    # How long a caller may wait for the store before hearing the fallback; the platform's own
    # voice-callback timeout is undocumented (docs/runtime.md, "Deadlines").
    voice_deadline: float = 2.0
    # Events may wait longer: the platform allows 10 s for a 2xx, and a 503 only means a retry.
    events_deadline: float = 5.0
    # Whether the events route requires signatures: required | optional | off (docs/runtime.md).
    events_signature: str = "optional"
    # The calls API, to ask whether a call is still live before its seat lapses (runtime/calls.py).
    calls_api_url: str | None = None
    calls_api_key: str | None = None
    metrics_token: str | None = None
    ui_streams: int = 16  # open live pages per worker
    ui_stream_seconds: float = 30.0
    # Unix time for open hours and `now`; `roomc simulate` passes the scenario's clock.
    clock: Callable[[], float] = time.time
    # The meeting directory (runtime/directory.py): read and hashed at start-up, never in the table.
    directory: MeetingDirectory | None = field(default=None, repr=False)

    @classmethod
    def from_env(cls, table: dict, environ: dict | None = None) -> "Settings":
        """Settings from the table and the environment (ROOMC_PUBLIC_URL, the secret env vars, ROOMC_ADMIN_TOKEN,
        ROOMC_ALLOW_UNSIGNED, ROOMC_VOICE_DEADLINE); raises MissingSecret rather than serve unverified by accident."""
        env = os.environ if environ is None else environ
        server = table["server"]
        secret_env = server.get("signatureSecretEnv")
        secret = (env.get(secret_env) or "").strip() if secret_env else ""
        allow_unsigned = env.get("ROOMC_ALLOW_UNSIGNED") == "1"
        if secret_env and not secret and not allow_unsigned:
            raise MissingSecret(secret_env)
        pins = directory.pin_flows(table)
        if pins and not secret_env and not allow_unsigned:
            raise ValueError(f"flow '{pins[0]}' counts PIN tries or checks PINs, but the policy names no "
                             "server.signatureSecretEnv: unsigned, every guess could name a new call and start a new "
                             "count (RC237); set it, or pass --allow-unsigned to serve on loopback for testing")
        return cls(
            public_url=_public_url(env.get("ROOMC_PUBLIC_URL") or server.get("publicUrl")),
            signing_secret=secret.encode() if secret else None,
            admin_token=env.get("ROOMC_ADMIN_TOKEN") or None,
            reservation_ttl=float(env.get("ROOMC_RESERVATION_TTL") or server.get("reservationTtl", 60)),
            secrets={name: env[name] for name in table.get("secrets", []) if name in env},
            allow_unsigned=allow_unsigned,
            voice_deadline=_seconds(env, "ROOMC_VOICE_DEADLINE", 2.0),
            events_deadline=_seconds(env, "ROOMC_EVENTS_DEADLINE", 5.0),
            **_platform_settings(table, env),
            metrics_token=env.get("ROOMC_METRICS_TOKEN") or None,
            ui_streams=int(env.get("ROOMC_UI_STREAMS") or 16),
            ui_stream_seconds=float(env.get("ROOMC_UI_STREAM_SECONDS") or 30),
            # A broken directory refuses to start (DirectoryError is a ValueError: `roomc serve` prints it).
            directory=directory.load(table, env),
        )


def _public_url(value: str | None) -> str | None:
    """The base of emitted callback URLs, refused unless absolute http(s) with a host: a value like
    `yourapp.example.com` would send the platform `yourapp.example.com/townhall/events`."""
    if not value:
        return None
    from urllib.parse import urlsplit

    parts = urlsplit(value.strip())
    if parts.scheme not in ("https", "http") or not parts.hostname or parts.query or parts.fragment:
        raise ValueError(f"ROOMC_PUBLIC_URL / server.publicUrl must be an absolute http(s) URL such as "
                         f"https://rooms.example.com, not {value!r}")
    return value.strip()


def _seconds(env, name: str, default: float) -> float:
    """A positive, finite number of seconds from the environment, or the default."""
    try:
        value = float(env.get(name) or default)
    except ValueError:
        raise ValueError(f"{name} must be a number of seconds, not {env.get(name)!r}") from None
    if not 0 < value <= 60:
        raise ValueError(f"{name} must be between 0 and 60 seconds, not {value}")
    return value


def own_route_links(table: dict) -> list[str]:
    """The routes a table's answers link to under the public URL (status events, redirects), sorted."""
    found: set[str] = set()

    def walk(node: object) -> None:
        if isinstance(node, dict):
            url = node.get("$url")
            if isinstance(url, dict) and "route" in url:
                found.add(url["route"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)
    walk([table.get("rooms"), table.get("flows"), table["server"].get("fallback")])
    return sorted(found)


def _platform_settings(table: dict, env) -> dict:
    """How roomc meets the platform's undocumented corners: the events signature mode and the calls API."""
    mode = (env.get("ROOMC_EVENTS_SIGNATURE") or table["server"].get("eventsSignature")
            or calls.DEFAULT_EVENTS_SIGNATURE).strip().lower()
    if mode not in calls.EVENTS_SIGNATURE:
        raise ValueError(f"ROOMC_EVENTS_SIGNATURE must be one of {', '.join(calls.EVENTS_SIGNATURE)}, not {mode!r}")
    key, url = env.get("SAUTIKIT_API_KEY") or None, env.get("SAUTIKIT_API_URL") or None
    return {"events_signature": mode, "calls_api_key": key, "calls_api_url": url if key else None}


def _announce_platform_readings(table: dict, store: Store, settings: Settings) -> None:
    """Say at start-up how the events route treats signatures, and start the seat sweeper if it can ask."""
    if any(r["kind"] in ("events", "keys") for r in table["routes"].values()):
        if settings.signing_secret is None:
            how = "off (no signing secret configured): every event is accepted"
        else:
            how = {"required": "required: unsigned events are refused with 403",
                   "optional": "optional: a signature present must verify; an unsigned event must carry its "
                               "room's token from the events URL",
                   "off": "off: events are not verified (ROOMC_EVENTS_SIGNATURE/server.eventsSignature)"}[
                settings.events_signature]
        log.info("events signature: %s", how)
    if settings.calls_api_key:
        from roomc.sautikit.client import CallsClient

        client = CallsClient(api_key=settings.calls_api_key, base_url=settings.calls_api_url, attempts=1,
                             timeout=2.0)
        calls.Sweeper(store, client.get_call, ttl=settings.reservation_ttl).start()
        log.info("seat sweeper: asking %s whether calls are live before their seats lapse", client.base_url)
    else:
        log.info("seat sweeper: off (set SAUTIKIT_API_KEY to confirm live calls with the calls API); "
                 "unconfirmed seats lapse after %g s", settings.reservation_ttl)


def _json(data: object, status: int = 200) -> Response:
    return Response(orjson.dumps(data), status=status, mimetype="application/json")


def create_app(route_table: dict, store: Store | None = None, settings: Settings | None = None) -> Flask:
    """A Flask app serving the table's routes as Sautikit webhooks, plus /healthz and /rooms."""
    settings = settings or Settings.from_env(route_table)
    if store is None:
        from .storage import open_store

        store = open_store((os.environ.get("ROOMC_DB") or "roomc.db"))
    if settings.directory is None and route_table.get("directory"):
        settings.directory = directory.load(route_table)  # given Settings (tests, simulate): read it here
    responder = Responder(route_table, public_url=settings.public_url, secrets=settings.secrets,
                          events_key=settings.signing_secret if settings.events_signature == "optional" else None,
                          clock=settings.clock, directory=settings.directory)
    # No app-wide /static: the live page serves its files under /ui/static (runtime/ui.py).
    app = Flask(__name__, root_path=os.path.dirname(os.path.abspath(__file__)), static_folder=None)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.extensions["roomc"] = {"store": store, "responder": responder, "settings": settings}
    if settings.signing_secret is None:
        if settings.allow_unsigned:
            log.warning("SIGNATURES OFF (--allow-unsigned): requests are NOT verified; anyone who can reach this "
                        "server can choose their role. Never expose it to the internet like this.")
        else:
            log.warning("no signing secret configured (server.signatureSecretEnv): requests are NOT verified; "
                        "anyone who knows a URL can choose their role")
    _announce_platform_readings(route_table, store, settings)
    for name in route_table.get("secrets", []):
        if name not in settings.secrets:
            log.warning("secret %s is not set in the environment: conditions reading it never hold", name)

    observer = Observer()
    app.extensions["roomc"]["observer"] = observer
    handlers: dict[str, Webhook] = {}
    for path, route in route_table["routes"].items():
        if path in RESERVED_PATHS or path.startswith(("/rooms/", "/ui/")):
            raise ValueError(f"route {path} collides with a built-in route")
        if route["kind"] == "keys":
            handlers[path] = KeysRoute(path, responder, store, settings, observer, keys=route.get("keys"))
        else:
            kind = EventsRoute if route["kind"] == "events" else VoiceRoute
            handlers[path] = kind(path, responder, store, settings, observer)
        # Also in Flask's url map, so other methods get a JSON 405 and the map lists every route.
        app.add_url_rule(path, endpoint=f"route:{path}", methods=route["methods"],
                         view_func=lambda _h=handlers[path]: Response.from_app(_h, request.environ))

    flask_wsgi = app.wsgi_app
    allowed = {path: ", ".join(sorted({*route["methods"], "OPTIONS"} | ({"HEAD"} if "GET" in route["methods"] else set())))
               for path, route in route_table["routes"].items()}

    def dispatch(environ: dict, start_response):
        path = environ.get("PATH_INFO", "")
        handler = handlers.get(path)
        if handler is not None:
            method = environ.get("REQUEST_METHOD")
            if method in ("GET", "POST"):
                # Every store write made for this request keeps to its deadline (runtime/store.py REQUEST_DEADLINE).
                token = REQUEST_DEADLINE.set(time.monotonic() + handler.deadline_seconds)
                try:
                    return handler(environ, start_response)
                finally:
                    REQUEST_DEADLINE.reset(token)
            if method == "HEAD" and "HEAD" in allowed[path]:
                # Not a caller: no seat, no event stored; the headers a GET would carry, no body.
                start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", "0")])
                return []
            if method == "OPTIONS":
                body = orjson.dumps({"allow": allowed[path].split(", ")})
                start_response("200 OK", [("Content-Type", "application/json"), ("Allow", allowed[path]),
                                          ("Content-Length", str(len(body)))])
                return [body]
        return flask_wsgi(environ, start_response)

    app.wsgi_app = dispatch  # type: ignore[method-assign]

    @app.errorhandler(404)
    def not_found(_error) -> Response:
        return _json({"error": {"code": "route.not_found", "message": f"no route {request.path}"}}, 404)

    @app.errorhandler(405)
    def not_allowed(_error) -> Response:
        return _json({"error": {"code": "route.method_not_allowed", "message": f"{request.method} not allowed"}}, 405)

    # JSON everywhere roomc answers: every other HTTP error Flask raises (400, 413, ...), any
    # failure in a Flask view (logged with its traceback, never shown), and automatic OPTIONS.
    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> Response:
        status = error.code or 500
        name = (error.name or "error").lower().replace(" ", "_")
        return _json({"error": {"code": f"http.{name}", "message": error.description or error.name}}, status)

    @app.errorhandler(Exception)
    def server_error(error: Exception) -> Response:
        if isinstance(error, HTTPException):
            return http_error(error)
        log.exception("%s %s failed", request.method, request.path)
        return _json({"error": {"code": "server.error", "message": "internal error"}}, 500)

    default_options = app.make_default_options_response

    def json_options() -> Response:
        response = default_options()
        response.set_data(orjson.dumps({"allow": sorted(response.allow)}))
        response.mimetype = "application/json"
        return response

    app.make_default_options_response = json_options  # type: ignore[method-assign]

    @app.get("/healthz")
    def healthz() -> Response:
        # pid tells an operator (and the multi-worker tests) which worker process answered.
        # Never waits on the store: it reports what the last writes saw (degraded after a timeout).
        return _json({"ok": True, "routes": len(route_table["routes"]), "digest": route_table.get("digest"),
                      "pid": os.getpid(), **store.health()})

    def admin_refusal() -> Response | None:
        if not settings.admin_token:
            return _json({"error": {"code": "admin.disabled", "message": "set ROOMC_ADMIN_TOKEN to enable"}}, 404)
        given = request.headers.get("Authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {settings.admin_token}".encode()):
            return _json({"error": {"code": "admin.unauthorized", "message": "bearer token required"}}, 401)
        return None

    @app.get("/rooms")
    def rooms() -> Response:
        return admin_refusal() or _json({"rooms": store.live_rooms()})

    @app.get("/rooms/<name>")
    def room(name: str) -> Response:
        refusal = admin_refusal()
        if refusal:
            return refusal
        found = store.room(name)
        return _json(found) if found else _json({"error": {"code": "room.not_found", "message": name}}, 404)

    @app.get("/metrics")
    def metrics() -> Response:
        tokens = [t for t in (settings.admin_token, settings.metrics_token) if t]
        if not tokens:
            return _json({"error": {"code": "metrics.disabled", "message":
                                    "set ROOMC_METRICS_TOKEN or ROOMC_ADMIN_TOKEN to enable"}}, 404)
        given = request.headers.get("Authorization", "").encode()
        if not any(hmac.compare_digest(given, f"Bearer {t}".encode()) for t in tokens):
            return _json({"error": {"code": "metrics.unauthorized", "message": "bearer token required"}}, 401)
        observer.flush()  # this worker's last second; the others' flush on their own within a second
        body, content_type = exposition()
        return Response(body, content_type=content_type)

    ui.install(app, store, settings.admin_token, max_streams=settings.ui_streams,
               stream_seconds=settings.ui_stream_seconds, public_url=settings.public_url)

    return app


__all__ = ["MissingSecret", "Settings", "create_app"]
