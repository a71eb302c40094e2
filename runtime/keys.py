"""The keys route: in-room digits (`digitsCallbackUrl`, Sautikit's undocumented DigitsCollected post)
mapped to effects stored as room events (raise or lower a hand, call or cancel the operator).

It is a webhook like the events route, not a voice route: its answer is not played to anyone
(docs/runtime.md, "In-room keys"). Same signature rules and binding as events, the same
deduplication of retries, and the state it feeds (`handsRaised`, `operatorRequested` in
`GET /rooms/<name>`) is re-derived from the stored set, so delivery order does not matter.
"""
from __future__ import annotations

import hashlib
import logging
import os
import re
import time
from typing import Callable

from . import calls, normalise
from .normalise import Event
from .observe import Observer
from .render import ROOM_NAME, Responder
from .store import KEY_EFFECTS, Store, StoreTimeout
from .webhooks import EventsRoute, _request_numbers, query_text, respond

log = logging.getLogger("roomc")
ROOM_PARAM = "room"  # roomc writes the room's name into every digitsCallbackUrl it emits (compiler/codegen.py)
# Keys a caller can press, at most this many: anything else is not a key press.
DIGITS = re.compile(r"[0-9#*]{1,32}")
FINISH_KEYS = "#*"


def effect_for(keys: dict[str, str], digits: str) -> str | None:
    """The effect mapped to `digits`; a trailing finish key is dropped when only that makes it match,
    since nothing says whether the platform includes the key that submitted the digits."""
    if digits in keys:
        return keys[digits]
    if len(digits) > 1 and digits[-1] in FINISH_KEYS and digits[:-1] in keys:
        return keys[digits[:-1]]
    return None


class KeysRoute(EventsRoute):
    """A `keys` route: stores each mapped key press once, answers 2xx at once, 503 if it cannot store."""

    def __init__(self, path: str, responder: Responder, store: Store, settings, observer: Observer | None = None,
                 keys: dict[str, str] | None = None):
        super().__init__(path, responder, store, settings, observer)
        self.keys = {k: v for k, v in (keys or {}).items() if v in KEY_EFFECTS}

    def ignored(self, start_response: Callable, request_id: str, started: float, reason: str, room: str | None,
                call: str | None, detail: str = "") -> list[bytes]:
        """A post that changes nothing, acknowledged so the platform stops retrying (a retry cannot help)."""
        log.warning("keys on %s ignored: %s%s", self.path, reason, f" ({detail})" if detail else "")
        self.observer.event(request_id, self.path, call, room, "ignored", started)
        return respond(start_response, {"ok": True, "outcome": "ignored", "reason": reason})

    def __call__(self, environ: dict, start_response: Callable) -> list[bytes]:
        try:
            return self.handle(environ, start_response)
        except Exception:
            # A bug, not the post: logged with its traceback, answered JSON; not stored, so the platform retries.
            log.exception("keys on %s failed; asking the sender to retry", self.path)
            return respond(start_response, {"error": {"code": "server.error", "message": "retry later"}}, 503)

    def handle(self, environ: dict, start_response: Callable) -> list[bytes]:
        """Read, check, map and store one post (see the class and docs/runtime.md, "In-room keys")."""
        deadline = self.request_deadline()
        request_id = f"{os.getpid():x}-{next(_request_numbers):x}"
        started, observer = time.perf_counter(), self.observer
        raw, checked, refusal = self.verified_body(environ, start_response, request_id, started, "keys")
        if refusal is not None:
            return refusal
        query = normalise.parse_query(query_text(environ))
        token = query.pop(calls.TOKEN_PARAM, None)
        url_room = query.pop(ROOM_PARAM, None)
        # A GET carries its fields in the query string, if anywhere.
        fields = normalise.parse_body(raw, environ.get("CONTENT_TYPE")) if raw else query
        headers = {"X-Sautikit-Event-Id": environ.get("HTTP_X_SAUTIKIT_EVENT_ID"),
                   "X-Sautikit-Idempotency-Key": environ.get("HTTP_X_SAUTIKIT_IDEMPOTENCY_KEY")}
        press = normalise.event(fields, headers)  # room, call, participant, time and id, each checked
        room = press.room or url_room
        try:
            # The headers change what the post means, and the signature does not cover them. An unsigned
            # post's token must be the room's that roomc wrote into the URL.
            extra = "|keys|" + "|".join(value or "" for value in headers.values())
            problem = self.events_signature_problem(checked, environ, deadline, url_room or room, token, extra)
        except Exception as exc:
            log.log(logging.ERROR, "keys on %s: could not check the signature against the store (%s); asking the "
                    "sender to retry", self.path, exc, exc_info=not isinstance(exc, StoreTimeout))
            observer.event(request_id, self.path, None, room, "unavailable", started)
            return respond(start_response, {"error": {"code": "store.unavailable", "message": "retry later"}}, 503)
        if problem:
            log.warning("keys on %s refused: %s", self.path, problem)
            observer.event(request_id, self.path, None, room, "refused", started)
            return respond(start_response, {"error": {"code": "signature.invalid",
                                                      "message": "signature verification failed"}}, 403)
        if press.room is not None and url_room is not None and press.room != url_room:
            # roomc wrote the URL's room; a body naming another is a forgery or a platform surprise.
            return self.ignored(start_response, request_id, started, "the body names another room than the URL",
                                url_room, press.call, f"{press.room!r} vs {url_room!r}")
        if room is None or not ROOM_NAME.fullmatch(room):
            return self.ignored(start_response, request_id, started, "no readable room", None, press.call,
                                repr(raw[:200]))
        digits = normalise.call_fields(fields)["digits"].strip()
        if not DIGITS.fullmatch(digits):
            return self.ignored(start_response, request_id, started, "no readable digits", room, press.call,
                                repr(digits[:40]))
        effect = effect_for(self.keys, digits)
        if effect is None:
            return self.ignored(start_response, request_id, started, "key not mapped", room, press.call, digits)
        try:
            call = self.caller(press, room, fields)
            if call is None or room not in self.store.rooms_of_call(call):
                return self.ignored(start_response, request_id, started, "caller not in the room", room, call,
                                    f"call {call!r}")
            event_id = press.event_id
            if event_id is None and not press.timed:
                # No id, no time: a retry is the same bytes, a second press (almost always) is not.
                event_id = "body:" + hashlib.sha256(raw or query_text(environ).encode()).hexdigest()[:32]
            outcome = self.store.record(Event(effect, room, call, press.participant, press.at, None, event_id,
                                              {**fields, "roomc": "keys", "digits": digits}, press.timed, press.clock),
                                        deadline=deadline)
        except (ValueError, TypeError, OverflowError):
            log.exception("keys on %s cannot be stored as sent; refused: %r", self.path, raw[:2000])
            observer.event(request_id, self.path, None, room, "invalid", started)
            return respond(start_response, {"error": {"code": "event.invalid", "message": "cannot be stored"}}, 422)
        except Exception as exc:
            # Not stored means not acknowledged: the platform delivers at least once and will retry.
            log.log(logging.ERROR, "keys on %s could not be stored (%s); asking the sender to retry", self.path, exc,
                    exc_info=not isinstance(exc, StoreTimeout))
            observer.event(request_id, self.path, None, room, "unavailable", started)
            return respond(start_response, {"error": {"code": "store.unavailable", "message": "retry later"}}, 503)
        log.info("keys on %s: %s pressed %s in %s: %s (%s)", self.path, call, digits, room, effect, outcome)
        observer.event(request_id, self.path, call, room, outcome, started)
        return respond(start_response, {"ok": True, "outcome": outcome, "effect": effect})

    def caller(self, press: Event, room: str, fields: dict) -> str | None:
        """The call that pressed: its id, else the call its participant id was matched to, else the
        one call in the room now with its number (events may name a participant only so)."""
        call = press.call or normalise.call_fields(fields)["id"] or None
        if call is None and press.participant:
            call = self.store.noted(f"participant:{room}:{press.participant}")
        if call is None:
            number = calls.caller_of(fields)
            if number:
                call = self.store.call_by_caller(room, number, "keys")  # only if one call in the room has it
        return call


def explain(keys: dict[str, str], fields: dict, query: dict) -> tuple[dict, list[str]]:
    """What the keys route would answer this post, and why (`roomc explain --route /keys --form Digits=1`).

    The store is not consulted: whether the caller holds a seat in the room, and whether the post is a
    retry, are said as conditions rather than checked.
    """
    trace: list[str] = []
    press = normalise.event(fields)
    url_room = query.get(ROOM_PARAM)
    room = press.room or url_room
    if press.room is not None and url_room is not None and press.room != url_room:
        trace.append(f"the body names room {press.room!r}, the URL {url_room!r}: ignored (2xx, logged)")
        return {"ok": True, "outcome": "ignored", "reason": "the body names another room than the URL"}, trace
    if room is None or not ROOM_NAME.fullmatch(room):
        trace.append("no readable room in the body or the URL's ?room= (roomc writes it there): ignored")
        return {"ok": True, "outcome": "ignored", "reason": "no readable room"}, trace
    trace.append(f"room {room!r} (from the {'body' if press.room else 'URL roomc emitted'})")
    digits = normalise.call_fields(fields)["digits"].strip()
    if not DIGITS.fullmatch(digits):
        trace.append(f"digits {digits[:40]!r} are not 1-32 of 0-9 # *: ignored (2xx, logged)")
        return {"ok": True, "outcome": "ignored", "reason": "no readable digits"}, trace
    effect = effect_for(keys, digits)
    if effect is None:
        trace.append(f"digits {digits!r} map to nothing (keys: {', '.join(sorted(keys))}): ignored (2xx, logged)")
        return {"ok": True, "outcome": "ignored", "reason": "key not mapped"}, trace
    trace.append(f"digits {digits!r} -> {effect}")
    call = press.call or normalise.call_fields(fields)["id"] or None
    who = f"call {call!r}" if call else "the call named by its participant id or number"
    trace.append(f"stored as a room event for {who}, if it holds a seat in {room!r} (else ignored); a retry is "
                 "stored once")
    flag = "handsRaised" if effect in ("raiseHand", "lowerHand") else "operatorRequested"
    verb = "adds it to" if effect in ("raiseHand", "callOperator") else "removes it from"
    trace.append(f"GET /rooms/{room} then {verb} {flag}")
    return {"ok": True, "outcome": "stored", "effect": effect}, trace
