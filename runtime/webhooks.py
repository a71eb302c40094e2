"""The webhook routes Sautikit calls, as plain WSGI handlers built from the route table.

Voice callbacks sit on the live call path, so they are answered without Flask's
per-request machinery (request context, signals, response finalisation), which cost
more than roomc's whole answer (bench/). One generic class per kind of route,
instantiated per route; `create_app` dispatches to them by exact path.
"""
from __future__ import annotations

import itertools
import logging
import os
from typing import Callable, Iterable

import orjson

from . import normalise, signatures
from .render import CompiledRole, Responder
from .store import Store

log = logging.getLogger("roomc")
WSGIApp = Callable[[dict, Callable], Iterable[bytes]]
_request_numbers = itertools.count(1)
STATUS = {200: "200 OK", 403: "403 Forbidden", 413: "413 Content Too Large", 503: "503 Service Unavailable"}


class TooLarge(Exception):
    pass


def respond(start_response: Callable, data: object, status: int = 200) -> list[bytes]:
    """A JSON response, the one shape every webhook answer takes."""
    body = orjson.dumps(data)
    start_response(STATUS[status], [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


def read_body(environ: dict, limit: int) -> bytes:
    """The raw request body (signatures are computed over these exact bytes), at most `limit` bytes."""
    stream = environ["wsgi.input"]
    length = environ.get("CONTENT_LENGTH")
    if length and length.isdigit():
        if int(length) > limit:
            raise TooLarge()
        return stream.read(int(length))
    body = stream.read(limit + 1)  # no length given (chunked): read one byte past the limit to notice
    if len(body) > limit:
        raise TooLarge()
    return body


def query_text(environ: dict) -> str:
    """The query string as text: WSGI hands it over as latin-1, the bytes are UTF-8."""
    return environ.get("QUERY_STRING", "").encode("latin-1", "replace").decode("utf-8", "replace")


class Webhook:
    """What both kinds of route share: the store, the settings, and signature checks."""

    def __init__(self, path: str, responder: Responder, store: Store, settings):
        self.path = path
        self.responder = responder
        self.store = store
        self.settings = settings

    def signature_problem(self, raw: bytes, environ: dict) -> str | None:
        if self.settings.signing_secret is None:
            return None
        return signatures.verify(self.settings.signing_secret, environ.get("HTTP_X_SAUTIKIT_SIGNATURE"), raw)


class VoiceRoute(Webhook):
    """A join or flow route: always answers with actions a caller can hear."""

    def fallback(self) -> dict:
        return {"actions": self.responder.fallback({"query": {}, "call": {}, "secret": {}})}

    def __call__(self, environ: dict, start_response: Callable) -> list[bytes]:
        request_id = f"{os.getpid():x}-{next(_request_numbers):x}"  # names this request in the log
        try:
            raw = read_body(environ, self.settings.max_body_bytes)
            problem = self.signature_problem(raw, environ)
            if problem:
                log.warning("request %s %s refused: %s", request_id, self.path, problem)
                return respond(start_response, {"error": {"code": "signature.invalid", "message":
                                                          "signature verification failed", "request_id": request_id}}, 403)
            query = normalise.parse_query(query_text(environ))
            # A GET (a redirect with method GET) carries the call state in the query string, if anywhere.
            fields = normalise.parse_body(raw, environ.get("CONTENT_TYPE")) if raw else query
            call = normalise.call_fields(fields)
            call_id = call["id"] or f"anonymous-{request_id}"
            store, ttl = self.store, self.settings.reservation_ttl

            def seats(room: str, role: CompiledRole, limit: int) -> tuple[bool, str]:
                admission = store.reserve(room, call_id, role.id, counted=role.counts, limit=limit, ttl=ttl,
                                          muted=role.muted)
                return admission.admitted, ""  # the reason is only read by `roomc explain`

            answer = self.responder.answer(self.path, query, call, digits_sent=normalise.has_digits(fields), seats=seats)
            if answer.failed:
                log.error("request %s %s answered with the fallback: %s", request_id, self.path, answer.error)
            return respond(start_response, {"actions": answer.actions})
        except TooLarge:
            log.warning("request %s %s: body over %d bytes; answered with the fallback", request_id, self.path,
                        self.settings.max_body_bytes)
            return respond(start_response, self.fallback())
        except Exception:
            log.exception("request %s %s failed; answered with the fallback", request_id, self.path)
            return respond(start_response, self.fallback())


class EventsRoute(Webhook):
    """The status-events sink: stores every delivery once, answers 2xx at once, 503 if it cannot store."""

    def __call__(self, environ: dict, start_response: Callable) -> list[bytes]:
        try:
            raw = read_body(environ, self.settings.max_body_bytes)
        except TooLarge:
            log.warning("event on %s refused: body over %d bytes", self.path, self.settings.max_body_bytes)
            return respond(start_response, {"error": {"code": "request.too_large", "message": "body too large"}}, 413)
        problem = self.signature_problem(raw, environ)
        if problem:
            log.warning("event on %s refused: %s", self.path, problem)
            return respond(start_response, {"error": {"code": "signature.invalid",
                                                      "message": "signature verification failed"}}, 403)
        fields = normalise.parse_body(raw, environ.get("CONTENT_TYPE"))
        if not fields and raw:
            fields = {"_unparsed": raw.decode("utf-8", "replace")}
        headers = {"X-Sautikit-Event-Id": environ.get("HTTP_X_SAUTIKIT_EVENT_ID"),
                   "X-Sautikit-Idempotency-Key": environ.get("HTTP_X_SAUTIKIT_IDEMPOTENCY_KEY")}
        event = normalise.event({**normalise.parse_query(query_text(environ)), **fields}, headers)
        try:
            outcome = self.store.record(event)
        except Exception:
            # Not stored means not acknowledged: Sautikit delivers at least once and will retry.
            log.exception("event on %s could not be stored; asking the sender to retry: %r", self.path, raw[:2000])
            return respond(start_response, {"error": {"code": "store.unavailable", "message": "retry later"}}, 503)
        if outcome == "unreadable":
            log.warning("event on %s kept raw, could not read it in full: %r", self.path, raw[:2000])
        return respond(start_response, {"ok": True, "outcome": outcome})
