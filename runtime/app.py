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
import uuid
from dataclasses import dataclass, field

import orjson
from flask import Flask, Response, request

from . import normalise, signatures
from .render import Answer, CompiledRole, Responder
from .store import SQLiteStore, Store

log = logging.getLogger("roomc")
RESERVED_PATHS = ("/healthz", "/rooms")


@dataclass
class Settings:
    """Runtime settings; `from_env` reads them the way `roomc serve` does."""

    public_url: str | None = None
    signing_secret: bytes | None = None
    admin_token: str | None = None
    reservation_ttl: float = 60.0
    secrets: dict[str, str] = field(default_factory=dict)
    max_body_bytes: int = 256 * 1024

    @classmethod
    def from_env(cls, table: dict, environ: dict | None = None) -> "Settings":
        """Settings from the table and the environment (ROOMC_PUBLIC_URL, the secret env vars, ROOMC_ADMIN_TOKEN)."""
        env = os.environ if environ is None else environ
        server = table["server"]
        secret_env = server.get("signatureSecretEnv")
        secret = env.get(secret_env) if secret_env else None
        return cls(
            public_url=env.get("ROOMC_PUBLIC_URL") or server.get("publicUrl"),
            signing_secret=secret.encode() if secret else None,
            admin_token=env.get("ROOMC_ADMIN_TOKEN") or None,
            reservation_ttl=float(env.get("ROOMC_RESERVATION_TTL") or server.get("reservationTtl", 60)),
            secrets={name: env[name] for name in table.get("secrets", []) if name in env},
        )


def _json(data: object, status: int = 200) -> Response:
    return Response(orjson.dumps(data), status=status, mimetype="application/json")


def create_app(route_table: dict, store: Store | None = None, settings: Settings | None = None) -> Flask:
    """A Flask app serving the table's routes as Sautikit webhooks, plus /healthz and /rooms."""
    settings = settings or Settings.from_env(route_table)
    store = store if store is not None else SQLiteStore(os.environ.get("ROOMC_DB", "roomc.db"))
    responder = Responder(route_table, public_url=settings.public_url, secrets=settings.secrets)
    app = Flask(__name__, root_path=os.path.dirname(os.path.abspath(__file__)))
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.extensions["roomc"] = {"store": store, "responder": responder, "settings": settings}
    if settings.signing_secret is None:
        log.warning("no signing secret configured (server.signatureSecretEnv): requests are NOT verified; "
                    "anyone who knows a URL can choose their role")
    for name in route_table.get("secrets", []):
        if name not in settings.secrets:
            log.warning("secret %s is not set in the environment: conditions reading it never hold", name)

    def signature_problem(raw: bytes) -> str | None:
        if settings.signing_secret is None:
            return None
        return signatures.verify(settings.signing_secret, request.headers.get("X-Sautikit-Signature"), raw)

    def voice(path: str) -> Response:
        request_id = uuid.uuid4().hex[:12]
        try:
            raw = request.get_data(cache=True)
            problem = signature_problem(raw)
            if problem:
                log.warning("request %s %s refused: %s", request_id, path, problem)
                return _json({"error": {"code": "signature.invalid", "message": "signature verification failed",
                                        "request_id": request_id}}, 403)
            fields = normalise.parse_body(raw, request.content_type, request.form)
            call = normalise.call_fields(fields)
            query = {k: v for k, v in request.args.items()}
            call_id = call["id"] or f"anonymous-{request_id}"

            def seats(room: str, role: CompiledRole, limit: int) -> tuple[bool, str]:
                result = store.reserve(room, call_id, role.id, counted=role.counts, limit=limit,
                                       ttl=settings.reservation_ttl, muted=role.muted)
                pool = "seats" if role.counts else "uncounted seats"
                if result.admitted:
                    return True, f"admitted: {result.taken} of {limit} {pool} taken" + (
                        " (this call already held one)" if result.again else "")
                return False, f"full: {result.taken} of {limit} {pool} taken"

            answer = responder.answer(path, query, call, digits_sent=normalise.has_digits(fields), seats=seats)
            if answer.failed:
                log.error("request %s %s answered with the fallback: %s", request_id, path, "; ".join(answer.trace))
            return _json({"actions": answer.actions})
        except Exception:
            log.exception("request %s %s failed; answered with the fallback", request_id, path)
            return _json({"actions": responder.fallback({"query": {}, "call": {}, "secret": {}})})

    def events(path: str) -> Response:
        raw = request.get_data(cache=True)
        problem = signature_problem(raw)
        if problem:
            log.warning("event on %s refused: %s", path, problem)
            return _json({"error": {"code": "signature.invalid", "message": "signature verification failed"}}, 403)
        fields = normalise.parse_body(raw, request.content_type, request.form)
        if not fields and raw:
            fields = {"_unparsed": raw.decode("utf-8", "replace")}
        event = normalise.event({**request.args, **fields}, request.headers)
        try:
            outcome = store.record(event)
        except Exception:
            # Not stored means not acknowledged: Sautikit delivers at least once and will retry.
            log.exception("event on %s could not be stored; asking the sender to retry: %s", path, raw[:2000])
            return _json({"error": {"code": "store.unavailable", "message": "retry later"}}, 503)
        if outcome == "unreadable":
            log.warning("event on %s kept raw, could not read it in full: %s", path, raw[:2000])
        return _json({"ok": True, "outcome": outcome})

    for path, route in route_table["routes"].items():
        if path in RESERVED_PATHS or path.startswith("/rooms/"):
            raise ValueError(f"route {path} collides with a built-in route")
        view = events if route["kind"] == "events" else voice
        app.add_url_rule(path, endpoint=f"route:{path}", view_func=lambda _v=view, _p=path: _v(_p),
                         methods=route["methods"])

    @app.errorhandler(413)
    def too_large(_error) -> Response:
        # An oversized body on a voice route still gets something a caller can hear.
        if request.path in route_table["routes"] and route_table["routes"][request.path]["kind"] != "events":
            return _json({"actions": responder.fallback({"query": {}, "call": {}, "secret": {}})})
        return _json({"error": {"code": "request.too_large", "message": "request body too large"}}, 413)

    @app.errorhandler(404)
    def not_found(_error) -> Response:
        return _json({"error": {"code": "route.not_found", "message": f"no route {request.path}"}}, 404)

    @app.errorhandler(405)
    def not_allowed(_error) -> Response:
        return _json({"error": {"code": "route.method_not_allowed", "message": f"{request.method} not allowed"}}, 405)

    @app.get("/healthz")
    def healthz() -> Response:
        # pid tells an operator (and the multi-worker tests) which worker process answered.
        return _json({"ok": True, "routes": len(route_table["routes"]), "digest": route_table.get("digest"),
                      "pid": os.getpid()})

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

    return app


__all__ = ["Settings", "create_app", "Answer"]
