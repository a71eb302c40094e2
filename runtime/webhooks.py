"""The webhook routes Sautikit calls, as plain WSGI handlers built from the route table.

Voice callbacks sit on the live call path, so they are answered without Flask's
per-request machinery (request context, signals, response finalisation), which cost
more than roomc's whole answer (bench/). One generic class per kind of route,
instantiated per route; `create_app` dispatches to them by exact path.
"""
from __future__ import annotations

import dataclasses
import hashlib
import itertools
import logging
import os
import time
from typing import Callable, Iterable
from urllib.parse import urlsplit

import orjson

from . import calls, normalise, signatures
from .observe import Observer
from .render import CompiledRole, Responder
from .store import REQUEST_DEADLINE, Binding, SignatureReused, Store, StoreTimeout

log = logging.getLogger("roomc")
WSGIApp = Callable[[dict, Callable], Iterable[bytes]]
_request_numbers = itertools.count(1)
STATUS = {200: "200 OK", 403: "403 Forbidden", 413: "413 Content Too Large", 422: "422 Unprocessable Content",
          503: "503 Service Unavailable"}


REPLAY = "signature already used for another method, path, query or event header (replay)"


class TooLarge(Exception):
    pass


class NoCallId(Exception):
    """A seat was asked for by a request that names no call: it takes none (issue 9, item 7)."""


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

    def __init__(self, path: str, responder: Responder, store: Store, settings, observer: Observer | None = None):
        self.path = path
        self.responder = responder
        self.store = store
        self.settings = settings
        self.observer = observer or Observer()  # metrics and the per-request log line

    @property
    def deadline_seconds(self) -> float:
        """How long a request on this route may take: the voice deadline (events routes: their own)."""
        return float(self.settings.voice_deadline)

    def request_deadline(self) -> float:
        """This request's deadline (time.monotonic()): the one runtime/app.py set for it, else from now."""
        return REQUEST_DEADLINE.get() or time.monotonic() + self.deadline_seconds

    def __call__(self, environ: dict, start_response: Callable) -> list[bytes]:
        raise NotImplementedError  # each kind of route answers in its own way

    def signature_check(self, raw: bytes, environ: dict) -> signatures.Check | None:
        """The HMAC check of the raw bytes (None when serving unsigned): cheap, so it runs before any
        parsing, and a stranger's body costs nothing but a hash."""
        if self.settings.signing_secret is None:
            return None
        return signatures.check(self.settings.signing_secret, environ.get("HTTP_X_SAUTIKIT_SIGNATURE"), raw)

    def bind(self, checked: signatures.Check, environ: dict, deadline: float, grant: str | None = None,
             extra: str = "") -> str | None:
        """Bind a verified signature to this request (docs/runtime.md, "Signatures"); why not, or None.

        Sautikit's signature covers only the body and `t`, so a valid one is also bound to the
        method, path and query (and `extra`: headers that change what the request means) it was
        first seen with, in the store shared by every worker: an exact retry passes, and so does
        the call's own body on a redirect roomc answered it with (`grant`); anything else is a replay.
        """
        if not self.store.bind_signature(checked.key, self.request_key(environ, extra), expires_at=checked.expires_at,
                                         deadline=deadline, grant=grant):
            return REPLAY
        return None

    @staticmethod
    def request_key(environ: dict, extra: str = "") -> str:
        """What a signature is bound to: the method, path and query (and `extra`)."""
        return f"{environ.get('REQUEST_METHOD')} {environ.get('PATH_INFO')}?{environ.get('QUERY_STRING', '')}{extra}"

    def grant_redirects(self, call_id: str, actions: list, deadline: float) -> None:
        """Record the redirects roomc answered this call with, so its bodies may follow there."""
        if self.settings.signing_secret is None:
            return
        public = urlsplit(self.responder.public_url or "")
        prefix = public.path.rstrip("/")  # a proxy in front may strip it: requests arrive without it
        for action in actions:
            target = action.get("redirect") if isinstance(action, dict) else None
            if not isinstance(target, dict) or not isinstance(target.get("url"), str):
                continue
            url = urlsplit(target["url"])
            if url.netloc and url.netloc != public.netloc:
                continue  # not one of ours: nothing of ours to open
            path = url.path[len(prefix):] if prefix and url.path.startswith(prefix + "/") else url.path
            request = f"{target.get('method') or 'POST'} {path}?{url.query}"
            self.store.grant_redirect(f"redirect:{call_id}", request, expires_at=time.time() + signatures.REPLAY_WINDOW,
                                      deadline=deadline)


class VoiceRoute(Webhook):
    """A join or flow route: always answers with actions a caller can hear."""

    def fallback(self) -> dict:
        return {"actions": self.responder.fallback({"query": {}, "call": {}, "secret": {}})}

    def __call__(self, environ: dict, start_response: Callable) -> list[bytes]:
        request_id = f"{os.getpid():x}-{next(_request_numbers):x}"  # names this request in the log
        deadline = self.request_deadline()
        started, observer, call_id = time.perf_counter(), self.observer, None
        try:
            raw = read_body(environ, self.settings.max_body_bytes)
            checked = self.signature_check(raw, environ)
            problem = checked.problem if checked is not None else None
            pending: list[Binding] = []
            if not problem:
                query = normalise.parse_query(query_text(environ))
                # A GET (a redirect with method GET) carries the call state in the query string, if anywhere.
                fields = normalise.parse_body(raw, environ.get("CONTENT_TYPE")) if raw else query
                call = normalise.call_fields(fields)
                # Only a signed body names its call: an empty body's call id comes from the query, which
                # anyone may write, so it opens no redirect of that call's.
                signed_call = call["id"] if raw and call["id"] else None
                # The signature is bound with the first seat this answer takes (one store round trip for
                # both), or after the answer if it takes none, and before anything is written either way.
                if checked is not None:
                    pending.append(Binding(checked.key, self.request_key(environ), checked.expires_at,
                                           signed_call and f"redirect:{signed_call}"))
            else:
                call = {"id": None}

            def refused(problem: str) -> list[bytes]:
                log.warning("request %s %s refused: %s", request_id, self.path, problem)
                observer.voice(request_id, self.path, call["id"], None, "signature", started)
                return respond(start_response, {"error": {"code": "signature.invalid", "message":
                                                          "signature verification failed", "request_id": request_id}}, 403)

            if problem:
                return refused(problem)
            call_id = call["id"]
            store, ttl = self.store, self.settings.reservation_ttl
            # Events may name a participant only by number: remember the far end's with the seat.
            caller = call["to"] if call["direction"].lower().startswith("out") else call["from"]

            def seats(room: str, role: CompiledRole, limit: int) -> tuple[bool, str]:
                if not call_id:  # every retry would be another stranger, each taking a seat
                    raise NoCallId(room)
                before = time.perf_counter()
                admission = store.reserve(room, call_id, role.id, counted=role.counts, limit=limit, ttl=ttl,
                                          muted=role.muted, deadline=deadline, caller=caller or None,
                                          bind=pending.pop() if pending else None,
                                          pool=role.pool, held=role.held)
                observer.store_time("reserve", time.perf_counter() - before)
                return admission.admitted, ""  # the reason is only read by `roomc explain`

            def bind_pending() -> bool:
                """Bind the request's signature now, if no seat has bound it yet; False for a replay."""
                if not pending:
                    return True
                binding = pending.pop()
                return store.bind_signature(binding.signature, binding.request, expires_at=binding.expires_at,
                                            deadline=deadline, grant=binding.grant)

            def tries(flow: str, digits: str) -> int:
                if not call_id:  # a count no one can be held to: refused like a seat (issue 13)
                    raise NoCallId(f"flow {flow}")
                if not bind_pending():  # bound before the count is written: a replay counts nothing against the caller
                    raise SignatureReused(flow)
                before = time.perf_counter()
                entry = calls.count_try(store, call_id, flow, digits, deadline=deadline)
                observer.store_time("count_try", time.perf_counter() - before)
                return entry

            digits_sent = normalise.has_digits(fields)
            path, step = self.path, None
            reserved_before = None
            if digits_sent and call["id"]:
                # Digits may come back to the number's URL rather than the step that asked (SDK README):
                # the step this call is on answers them, wherever they arrive (runtime/calls.py). The same
                # digits delivered again a moment later get the answer they got, not a fresh reading.
                step, reserved_before = calls.awaiting(store, call["id"])
                target = step or calls.answered_step(store, call["id"], call["digits"])
                if target is not None and target[0] in self.responder.routes and target != (path, query):
                    log.info("request %s %s: digits for call %s answered by its step %s", request_id, path,
                             call["id"], target[0])
                    path, query = target
            try:
                answer = self.responder.answer(path, query, call, digits_sent=digits_sent, seats=seats,
                                               tries=tries)
            except SignatureReused:
                return refused(REPLAY)
            if not bind_pending():
                return refused(REPLAY)
            if reserved_before and answer.room != reserved_before and answer.joins and answer.joins[-1][1] == "admitted":
                # The step's own answer reserved a seat (its fallback join); this answer seated the call
                # elsewhere, so that seat goes back at once rather than when it expires.
                store.release_reservation(reserved_before, call["id"], deadline=deadline)
            if signed_call:
                self.grant_redirects(signed_call, answer.actions, deadline)
            if answer.failed:
                log.error("request %s %s answered with the fallback: %s", request_id, self.path, answer.error)
            if call["id"] and (answer.step or self.responder.routes[path]["kind"] == "flow"):
                waiting = calls.awaited_seconds(answer.actions)
                if waiting is not None:
                    here, asked = answer.step or (path, query)
                    calls.remember_step(store, call["id"], here, asked, waiting, answer.room)
                elif step is not None:
                    store.forget(calls.step_key(call["id"]))
                    calls.remember_answered(store, call["id"], step[0], step[1], call["digits"])
            outcome = "fallback:render" if answer.failed else answer.joins[-1][1] if answer.joins else "answered"
            observer.voice(request_id, self.path, call["id"], answer.room, outcome, started, answer.joins)
            return respond(start_response, {"actions": answer.actions})
        except TooLarge:
            log.warning("request %s %s: body over %d bytes; answered with the fallback", request_id, self.path,
                        self.settings.max_body_bytes)
            observer.voice(request_id, self.path, call_id, None, "fallback:too_large", started)
            return respond(start_response, self.fallback())
        except NoCallId as exc:
            log.warning("request %s %s: no call id in the request (content type %r); no seat taken in %s, "
                        "answered with the fallback", request_id, self.path, environ.get("CONTENT_TYPE"), exc)
            observer.voice(request_id, self.path, None, None, "fallback:no_call_id", started)
            return respond(start_response, self.fallback())
        except StoreTimeout as exc:
            # The caller is live on the phone: an apology now beats silence until the store answers.
            log.error("request %s %s: store not answering within %.1f s (%s); answered with the fallback",
                      request_id, self.path, self.settings.voice_deadline, exc)
            observer.voice(request_id, self.path, call_id, None, "fallback:store_timeout", started)
            return respond(start_response, self.fallback())
        except Exception:
            log.exception("request %s %s failed; answered with the fallback", request_id, self.path)
            observer.voice(request_id, self.path, call_id, None, "fallback:error", started)
            return respond(start_response, self.fallback())


class EventsRoute(Webhook):
    """The status-events sink: stores every delivery once, answers 2xx at once, 503 if it cannot store."""

    @property
    def deadline_seconds(self) -> float:
        """Events get the events deadline."""
        return float(self.settings.events_deadline)

    def checks_signature(self, environ: dict) -> bool:
        """Whether this delivery's signature is checked, by `events_signature` (docs/runtime.md,
        "Signatures"): `required`: always; `optional`: when it carries one (an unsigned event must
        then carry its room's token from the events URL roomc gave the platform); `off`: never."""
        mode = self.settings.events_signature
        if self.settings.signing_secret is None or mode == "off":
            return False
        return mode == "required" or bool(environ.get("HTTP_X_SAUTIKIT_SIGNATURE"))

    def events_signature_problem(self, checked: signatures.Check | None, environ: dict, deadline: float,
                                 room: str | None, token: str | None, extra: str = "") -> str | None:
        """Whether this delivery is refused (see checks_signature); `checked` is its verified signature,
        None when its signature is not checked."""
        secret = self.settings.signing_secret
        if secret is None or self.settings.events_signature == "off":
            return None
        if checked is not None:
            return self.bind(checked, environ, deadline, extra=extra)
        if calls.token_matches(secret, room, token):
            return None
        return "unsigned, and without its room's events token"

    def verified_body(self, environ: dict, start_response: Callable, request_id: str, started: float,
                      what: str) -> tuple[bytes, signatures.Check | None, list[bytes] | None]:
        """The body and its signature check, or the 413/403 answer (logged and counted) that refuses it.

        The HMAC is checked before any parsing, so a stranger's body costs a hash."""
        try:
            raw = read_body(environ, self.settings.max_body_bytes)
        except TooLarge:
            log.warning("%s on %s refused: body over %d bytes", what, self.path, self.settings.max_body_bytes)
            self.observer.event(request_id, self.path, None, None, "too_large", started)
            return b"", None, respond(start_response, {"error": {"code": "request.too_large",
                                                                  "message": "body too large"}}, 413)
        checked = self.signature_check(raw, environ) if self.checks_signature(environ) else None
        if checked is not None and checked.problem:
            log.warning("%s on %s refused: %s", what, self.path, checked.problem)
            self.observer.event(request_id, self.path, None, None, "refused", started)
            return raw, checked, respond(start_response, {"error": {"code": "signature.invalid",
                                                                     "message": "signature verification failed"}}, 403)
        return raw, checked, None

    def __call__(self, environ: dict, start_response: Callable) -> list[bytes]:
        deadline = self.request_deadline()
        request_id = f"{os.getpid():x}-{next(_request_numbers):x}"
        started, observer = time.perf_counter(), self.observer
        raw, checked, refusal = self.verified_body(environ, start_response, request_id, started, "event")
        if refusal is not None:
            return refusal
        fields = normalise.parse_body(raw, environ.get("CONTENT_TYPE"))
        if not fields and raw:
            # backslashreplace, not replace: two bodies differing only in invalid bytes stay two events.
            fields = {"_unparsed": raw.decode("utf-8", "backslashreplace")}
        headers = {"X-Sautikit-Event-Id": environ.get("HTTP_X_SAUTIKIT_EVENT_ID"),
                   "X-Sautikit-Idempotency-Key": environ.get("HTTP_X_SAUTIKIT_IDEMPOTENCY_KEY"),
                   "X-Sautikit-Event": environ.get("HTTP_X_SAUTIKIT_EVENT"),
                   "X-Sautikit-Event-Kind": environ.get("HTTP_X_SAUTIKIT_EVENT_KIND")}
        query = normalise.parse_query(query_text(environ))
        token = query.pop(calls.TOKEN_PARAM, None)
        merged = {**query, **fields}
        event = normalise.event(merged, headers)
        if not event.readable:
            # Kept raw and keyed by its fields: name the exact bytes too, so two bodies that differ
            # only where they could not be decoded are two events, not a duplicate.
            event = dataclasses.replace(event, raw={**event.raw, "_bodySha256": hashlib.sha256(raw).hexdigest()})
        try:
            # The event's own headers change what it means, and the signature does not cover them.
            extra = "|" + "|".join(value or "" for value in headers.values())
            problem = self.events_signature_problem(checked, environ, deadline, event.room, token, extra)
        except Exception as exc:
            # A store past its deadline is an expected condition (bench/fuzz.py under load): one line, no traceback.
            log.log(logging.ERROR, "event on %s: could not check its signature against the store (%s); asking the "
                    "sender to retry", self.path, exc, exc_info=not isinstance(exc, StoreTimeout))
            observer.event(request_id, self.path, None, None, "unavailable", started)
            return respond(start_response, {"error": {"code": "store.unavailable", "message": "retry later"}}, 503)
        if problem:
            log.warning("event on %s refused: %s", self.path, problem)
            observer.event(request_id, self.path, None, None, "refused", started)
            return respond(start_response, {"error": {"code": "signature.invalid",
                                                      "message": "signature verification failed"}}, 403)
        try:
            before = time.perf_counter()
            if calls.call_end(fields, headers):
                believed_for = None if checked is not None or self.settings.signing_secret is None \
                    or self.settings.events_signature == "off" else event.room
                outcome = calls.call_end_event(self.store, merged, headers, only_room=believed_for)
            else:
                event = calls.identify(self.store, event)
                outcome = self.store.record(event, deadline=deadline)
                if outcome == "stored":
                    calls.after_join(self.store, event)
            observer.store_time("record", time.perf_counter() - before)
        except (ValueError, TypeError, OverflowError):
            # Retrying cannot help an event the store cannot hold: a 4xx tells the sender to stop.
            log.exception("event on %s cannot be stored as sent; refused: %r", self.path, raw[:2000])
            observer.event(request_id, self.path, event.call, event.room, "invalid", started)
            return respond(start_response, {"error": {"code": "event.invalid", "message": "event cannot be stored"}},
                           422)
        except Exception as exc:
            # Not stored means not acknowledged: Sautikit delivers at least once and will retry.
            log.log(logging.ERROR, "event on %s could not be stored (%s); asking the sender to retry: %r", self.path,
                    exc, raw[:2000], exc_info=not isinstance(exc, StoreTimeout))
            observer.event(request_id, self.path, event.call, event.room, "unavailable", started)
            return respond(start_response, {"error": {"code": "store.unavailable", "message": "retry later"}}, 503)
        if outcome == "unreadable":
            log.warning("event on %s kept raw, could not read it in full: %r", self.path, raw[:2000])
        elif event.clock:
            log.warning("event on %s: %s; stored with its arrival time instead", self.path, event.clock)
        observer.event(request_id, self.path, event.call, event.room, outcome, started)
        return respond(start_response, {"ok": True, "outcome": outcome})
