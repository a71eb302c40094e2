"""What roomc knows about a call across its requests, whichever way the platform talks back.

Sautikit's documentation leaves open where collected digits are posted, what conference
events look like, whether they are signed and whether a call's end is ever reported
(fact sheet §9, §9a). roomc holds up under every reading (docs/runtime.md, "Platform
readings"):

- the flow step awaiting a call's digits is kept in the store, so digits posted to the
  number's URL instead of the step's are still answered by that step;
- a participant event that names no call is matched to one by the participant id or the
  caller's number remembered when the seat was taken;
- a call-completed or call-failed event frees every seat the call holds;
- with the calls API configured, a background sweeper asks the platform whether a call is
  still live before its reservation lapses, and frees seats of calls that have ended;
- unsigned events can be told apart from forgeries by a per-room token in the events URL.
"""
from __future__ import annotations

import dataclasses
import hashlib
import hmac
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Mapping

import orjson

from . import normalise
from .normalise import Event
from .store import Store

log = logging.getLogger("roomc")

# A step awaits digits for as long as the caller might still be keying them: the prompt, the
# getDigits timeouts, and a margin. After that it is forgotten, so a stale step never captures
# digits meant for something else.
STEP_MARGIN = 120.0
PARTICIPANT_TTL = 24 * 3600.0
CALL_END_KINDS = frozenset({"callcompleted", "callfailed", "callended", "callhangup", "callnoanswer",
                            "callbusy", "callcanceled", "callcancelled"})
LIVE_STATUSES = frozenset({"queued", "initiated", "ringing", "answered", "in-progress", "inprogress", "active"})
ENDED_STATUSES = frozenset({"completed", "failed", "no_answer", "no-answer", "busy", "canceled", "cancelled",
                            "hung_up", "ended"})
EVENTS_SIGNATURE = ("required", "optional", "off")
DEFAULT_EVENTS_SIGNATURE = "optional"
TOKEN_PARAM = "k"
ANSWERED_TTL = 30.0  # how long a repeated delivery of the same digits gets the same answer
# How long a call's count of digit entries at a flow with `tries` is kept after its last entry: longer
# than any call spends keying PINs, so only a new call starts afresh (docs/runtime.md, "PIN tries").
TRIES_TTL = 3600.0


# -- the flow step awaiting digits ------------------------------------------------------
def step_key(call_id: str) -> str:
    return f"step:{call_id}"


def awaited_seconds(actions: list) -> float | None:
    """How long an answer may wait for digits (its getDigits timeouts plus a margin); None if it asks for none."""
    timeouts = [a["getDigits"].get("timeout", 10) for a in actions if isinstance(a, dict) and "getDigits" in a]
    if not timeouts:
        return None
    return STEP_MARGIN + sum(float(t) for t in timeouts if isinstance(t, (int, float)))


def answered_key(call_id: str) -> str:
    return f"answered:{call_id}"


def pending_step(store: Store, call_id: str, key: str | None = None) -> tuple[str, dict[str, str]] | None:
    """(route, query) of the flow step that asked this call for digits, if one is waiting."""
    found = _step(store, key or step_key(call_id))
    return None if found is None else (found[0], found[1])


def _step(store: Store, key: str) -> tuple[str, dict[str, str], str | None, str | None] | None:
    value = store.noted(key)
    if value is None:
        return None
    try:
        path, query, *rest = orjson.loads(value)
        room = rest[0] if rest and isinstance(rest[0], str) else None
        digits = rest[1] if len(rest) > 1 and isinstance(rest[1], str) else None
        return str(path), {str(k): str(v) for k, v in query.items()}, room, digits
    except (ValueError, TypeError, AttributeError):
        return None


def awaiting(store: Store, call_id: str) -> tuple[tuple[str, dict[str, str]] | None, str | None]:
    """(the step waiting for this call's digits, the room its own answer reserved): one read."""
    found = _step(store, step_key(call_id))
    return (None, None) if found is None else ((found[0], found[1]), found[2])


def remember_step(store: Store, call_id: str, path: str, query: Mapping[str, str], seconds: float,
                  room: str | None = None) -> None:
    """Remember that this call's next digits answer `path` with `query` (and which room that answer
    reserved, so a later answer that seats the call elsewhere can give that seat back)."""
    store.note(step_key(call_id), orjson.dumps([path, dict(query), room]).decode(), ttl=seconds)


def digits_tag(call_id: str, digits: str) -> str:
    """What the store keeps of an entry's digits (they may be a PIN): a hash that tells the same entry
    delivered again from another, never the digits themselves."""
    return hashlib.sha256(f"roomc-digits|{call_id}|{digits}".encode()).hexdigest()[:32]


def remember_answered(store: Store, call_id: str, path: str, query: Mapping[str, str], digits: str) -> None:
    """Remember, briefly, which step answered these digits: the platform may deliver them twice, and
    a repeat must get the same answer, not be read afresh (a PIN read as a meeting number)."""
    store.note(answered_key(call_id), orjson.dumps([path, dict(query), None, digits_tag(call_id, digits)]).decode(),
               ttl=ANSWERED_TTL)


def answered_step(store: Store, call_id: str, digits: str) -> tuple[str, dict[str, str]] | None:
    """The step that answered exactly these digits for this call a moment ago, if one did."""
    found = _step(store, answered_key(call_id))
    if found is None or found[3] != digits_tag(call_id, digits):
        return None
    return found[0], found[1]


def count_try(store: Store, call_id: str, flow: str, digits: str, deadline: float | None = None) -> int:
    """Count this digit entry of the call at `flow` (a flow with `tries`): the entry's number. The same
    digits again within ANSWERED_TTL of the last counted entry are the platform delivering it again
    (at least once, fact sheet §5.5) and keep the count; a caller re-keying the same wrong PIN that
    quickly learns nothing new, so nothing is given away."""
    return store.count_try(call_id, flow, digits_tag(call_id, digits), window=ANSWERED_TTL, ttl=TRIES_TTL,
                           deadline=deadline)


# -- events that name no call, and calls that end --------------------------------------
def _folded(fields: Mapping[str, Any]) -> dict[str, Any]:
    return {normalise.fold(str(k)): v for k, v in fields.items()}


def call_end(fields: Mapping[str, Any], headers: Mapping[str, str | None]) -> bool:
    """Whether a delivery is a call-completed/failed event (`call.completed` envelopes, either spelling)."""
    folded = _folded(fields)
    kinds = [folded.get(k) for k in ("kind", "eventkind", "event", "eventtype", "type")]
    kinds += [headers.get("X-Sautikit-Event"), headers.get("X-Sautikit-Event-Kind")]
    return any(isinstance(k, str) and normalise.fold(k) in CALL_END_KINDS for k in kinds)


def caller_of(fields: Mapping[str, Any]) -> str | None:
    """The caller's number as a participant event gives it, if it does."""
    folded = _folded(fields)
    for alias in normalise.EVENT_ALIASES["caller"]:
        value = folded.get(alias)
        if isinstance(value, (str, int)) and str(value).strip():
            # Past the field cap it is no number a caller has: ignored, as an over-long call id is
            # (an uncapped value went into indexed columns PostgreSQL refuses past ~2.7 KB).
            text = str(value).strip()
            return text if len(text) <= normalise.MAX_FIELD_CHARS else None
    return None


def identify(store: Store, event: Event) -> Event:
    """A participant event with no call id gets one: by the participant id seen before, else by the
    caller's number remembered with the seat, else a stand-in that pairs its join with its leave."""
    if event.call is not None or event.room is None or event.kind not in ("join", "leave", "mute", "unmute"):
        return event
    caller = caller_of(event.raw)
    key = f"participant:{event.room}:{event.participant}" if event.participant else None
    call = store.noted(key) if key else None
    if call is not None and event.kind == "join" and event.room not in store.live_rooms_of_call(call):
        # The platform numbers participants afresh each session: a number whose call has left
        # belongs to someone new, found by the caller's number instead.
        store.forget(key)  # type: ignore[arg-type]
        call = None
    if call is None and caller:
        call = store.call_by_caller(event.room, caller, event.kind)
        if call is not None and key:
            store.note(key, call, ttl=PARTICIPANT_TTL)
    if call is None:
        if event.participant:
            call = f"participant:{event.participant}"
        elif caller:
            call = f"caller:{caller}"
        else:
            return event
    return dataclasses.replace(event, call=call)


def end_call(store: Store, call_id: str, at: float, reason: str, event_id: str | None = None,
             timed: bool = True, only_room: str | None = None) -> int:
    """Free every seat the call holds (in `only_room` alone, when given): a `leave` in each of its
    rooms, stored like a platform event (so delivery order cannot undo it). How many rooms it was in."""
    rooms = [room for room in store.rooms_of_call(call_id) if only_room is None or room == only_room]
    for room in rooms:
        store.record(Event("leave", room, call_id, None, at, None, f"{event_id or 'none'}:{reason}:{room}:{call_id}",
                           {"roomc": reason, "callId": call_id}, timed))
    return len(rooms)


def call_end_event(store: Store, fields: dict, headers: Mapping[str, str | None], now: float | None = None,
                   only_room: str | None = None) -> str:
    """Store a call-completed/failed event and free the call's seats; the route's outcome.

    An unsigned event believed for its room's events token (`only_room`) speaks for that room
    only: it frees the call's seat there and nowhere else."""
    parsed = normalise.event(fields, headers, now=now)
    call = parsed.call
    if call is None:
        folded = _folded(fields)
        value = folded.get("callid") or folded.get("sessionid") or folded.get("id")
        call = None if value is None or len(str(value)) > normalise.MAX_FIELD_CHARS else str(value)
    if call is None:
        return store.record(dataclasses.replace(parsed, kind=None))  # kept raw: nothing to free
    stored = store.record(dataclasses.replace(parsed, kind="callend", room=only_room or "", call=call))
    # Also for a duplicate: the first delivery may have been stored and then failed to free a seat (its
    # leave's write timed out, so it was answered 503); each leave is keyed, so a repeat changes nothing.
    for name in [call] + [other for other in other_ids(fields) if other != call]:
        end_call(store, name, parsed.at, "call-ended", parsed.event_id, parsed.timed, only_room)
    return stored


def other_ids(fields: Mapping[str, Any]) -> list[str]:
    """The other names a call-end event gives its call: the PBX's id (`pbx_call_id`) and the session
    id, each also in the SDK's `HD_` form and without it. Voice callbacks pass the PBX's id through
    (fact sheet §5.2), so roomc may have seated the call under any of them (docs/runtime.md)."""
    folded = _folded(fields)
    names: list[str] = []
    for key in ("pbxcallid", "sessionid", "callsessionid"):
        value = folded.get(key)
        if isinstance(value, (str, int)) and str(value).strip():
            value = str(value).strip()
            bare = value[3:] if value.startswith("HD_") else value
            names += [value, bare, "HD_" + bare]
    return list(dict.fromkeys(name for name in names if name))


def after_join(store: Store, event: Event) -> None:
    """A join that arrives after its call's end event (delivery is unordered) is closed at once."""
    if event.kind == "join" and event.call is not None and event.room:
        step_waiting, ended = store.after_join_facts(event.call, event.room, step_key(event.call))
        if step_waiting:
            # In the room now: a step still waiting (its prompt timed out into the fallback join)
            # must not capture the keys the caller presses in the room.
            store.forget(step_key(event.call))
        if ended is not None:
            store.record(Event("leave", event.room, event.call, None, max(ended, event.at), None,
                               f"callend-after-join:{event.room}:{event.call}", {"roomc": "call-ended", "callId": event.call}, event.timed))


# -- signatures on the events route ----------------------------------------------------
TOKEN_DAYS = 2  # a token is believed on the UTC day it was issued and the next


def events_token(secret: bytes, room: str, day: int | None = None) -> str:
    """The per-room token roomc puts in the events URL it gives the platform: an unsigned event that
    carries it came from whoever was given that URL. It changes each UTC day (and is believed for
    TOKEN_DAYS), so a leaked URL stops working."""
    day = int(time.time() // 86400) if day is None else day
    return hmac.new(secret, f"roomc-events|{day}|".encode() + room.encode(), hashlib.sha256).hexdigest()[:32]


def token_matches(secret: bytes, room: str | None, token: str | None, now: float | None = None) -> bool:
    """Whether `token` is `room`'s events token of today or the day before."""
    if not (room and token):
        return False
    today = int((time.time() if now is None else now) // 86400)
    matched = False
    for day in range(today - TOKEN_DAYS + 1, today + 1):
        matched |= hmac.compare_digest(events_token(secret, room, day), token)
    return matched


# -- the sweeper: ask the platform before letting a seat go ----------------------------
class Sweeper:
    """Asks the calls API (GET /v1/calls/{id}) about seats it cannot vouch for, off the request path.

    A reservation whose `join` never became readable would lapse after `reservationTtl` while its
    caller is in the room, and the room would admit callers past its cap; a joined seat whose
    `leave` was lost would be held forever. Each round (every `every` seconds) claims such calls
    from the store `batch` at a time, least recently asked first, and asks up to `parallel` of them
    at once, until none is left (past `every` seconds it warns: the room is busier than this worker
    can follow). Claims are shared by every worker on the store, so workers split the calls instead
    of all asking about the same ones. A live call keeps its reservation another `ttl`; an ended one
    is freed. Each question is bounded by the client's total timeout; an unreachable API changes nothing.
    """

    def __init__(self, store: Store, get_call: Callable[[str], dict], *, ttl: float, every: float | None = None,
                 batch: int = 50, recheck_joined: float | None = None, parallel: int = 8):
        self.store, self.get_call, self.ttl = store, get_call, ttl
        self.parallel = parallel
        self.every = every if every is not None else max(1.0, ttl / 4)
        self.batch = batch
        self.recheck_joined = recheck_joined if recheck_joined is not None else max(self.every, ttl)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def sweep_once(self, now: float | None = None) -> dict[str, int]:
        """One round; counts of calls held, freed and unknown (for the log and the tests).

        With `now` given (tests) the round runs at that instant; otherwise each batch is claimed at
        the time it starts. A batch's questions are asked `parallel` at a time, so one slow answer
        does not hold up the rest; the round goes on until nothing is left to claim."""
        fixed = now
        started = time.monotonic()
        counts = {"held": 0, "freed": 0, "unknown": 0}
        warned = False
        with ThreadPoolExecutor(max_workers=self.parallel, thread_name_prefix="roomc-sweep-ask") as pool:
            for _ in range(10_000):  # bounded: claims are never handed out twice within a round
                at = time.time() if fixed is None else fixed
                claimed = self.store.claim_calls_to_confirm(within=2 * self.every, limit=self.batch,
                                                            hold=self.every, hold_joined=self.recheck_joined, now=at)
                for outcome in pool.map(lambda seat: self._ask(seat["call_id"], fixed), claimed):
                    counts[outcome] += 1
                if len(claimed) < self.batch or self._stop.is_set():
                    break
                if not warned and time.monotonic() - started > self.every:
                    warned = True
                    log.warning("seat sweep: %d calls asked in %.1f s and more are waiting; the calls API or this "
                                "worker cannot keep up, so some reservations may lapse", sum(counts.values()),
                                time.monotonic() - started)
        return counts

    def _ask(self, call: str, fixed: float | None) -> str:
        """Ask about one call and act on the answer; which count it adds to."""
        try:
            status = str(self.get_call(call).get("status", "")).lower()
        except Exception as exc:  # a 404, a timeout, a refused key: keep the seat as it is
            log.info("calls API could not vouch for call %s: %s", call, exc)
            return "unknown"
        now = time.time() if fixed is None else fixed
        if status in LIVE_STATUSES:
            self.store.extend_reservations(call, until=now + self.ttl, now=now)
            return "held"
        if status in ENDED_STATUSES:
            if end_call(self.store, call, now, "calls-api-ended"):
                log.info("call %s has %s on the platform; its seats are freed", call, status)
            return "freed"
        return "unknown"

    def start(self) -> None:
        """Sweep in a daemon thread of this worker until `stop`."""
        if self._thread is not None:
            return

        def run() -> None:
            while not self._stop.wait(self.every):
                try:
                    self.sweep_once()
                except Exception:
                    log.exception("seat sweep failed; trying again next round")

        self._thread = threading.Thread(target=run, name="roomc-sweeper", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
