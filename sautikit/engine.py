"""The local platform's engine: calls that POST to webhooks and play the actions they get back.

It behaves as Sautikit's pages describe (fact sheet §2-§4, §7): actions run in order;
`getDigits` posts the collected `Digits` back to the same URL; a conference starts when a
`startOnEnter` participant joins (unset counts as true, the SDK's default) and the others
hold; `endOnExit` ends it for everyone; a caller past `maxParticipants` stalls in silence;
status events go to `statusEventsCallbackUrl`, signed like every webhook; a recorded room's
recording URL comes with `end`; responses the actions schema refuses drop the call.
Time is a `Clock`: virtual for `roomc simulate`, scaled real time for `roomc sautikit-local`.
"""
from __future__ import annotations

import heapq
import itertools
import json
import math
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable

from roomc.compiler.schemas import ACTIONS, validator
from roomc.runtime.signatures import sign

SAY_CHARS_PER_SECOND = 15  # how long `say` takes: text length at a steady speaking pace
PLAY_SECONDS = 5
RING_SECONDS = 3
OUTBOUND_MINOR_PER_MINUTE = 300  # KES 3.00 a minute, in minor units; inbound legs are free


class VirtualClock:
    """Simulated time that jumps straight to the next thing that happens."""

    def __init__(self) -> None:
        self.t = 0.0

    def now(self) -> float:
        return self.t

    def wait_until(self, when: float, condition: threading.Condition) -> None:
        self.t = max(self.t, when)


class ScaledClock:
    """Real time, sped up: `speed` simulated seconds pass each real second."""

    def __init__(self, speed: float = 1.0) -> None:
        self.speed, self.start = speed, time.monotonic()

    def now(self) -> float:
        return (time.monotonic() - self.start) * self.speed

    def wait_until(self, when: float, condition: threading.Condition) -> None:
        condition.wait(timeout=max(0.0, min(1.0, (when - self.now()) / self.speed)))


@dataclass
class Leg:
    """One call: the platform's call record plus where its actions have got to."""

    id: str
    session_id: str
    direction: str
    local: str
    remote: str
    url: str
    client_request_id: str | None = None
    label: str = ""
    digits: list[str] = field(default_factory=list)
    status: str = "ringing"
    created_at: float = 0.0
    answered_at: float | None = None
    ended_at: float | None = None
    actions: list[dict] = field(default_factory=list)
    room: str | None = None
    meeting: str | None = None  # the room this leg joined (or stalled at), for the bill per meeting
    muted: bool = False
    end_on_exit: bool = False
    hold_started: float | None = None
    held_seconds: float = 0.0
    stalled: bool = False

    @property
    def duration(self) -> int:
        if self.answered_at is None:
            return 0
        return int(round((self.ended_at if self.ended_at is not None else self.answered_at) - self.answered_at))

    def cost_minor(self, rounding: str = "per-second") -> int:
        """What the leg costs: outbound only, answered time (hold included), per second or per started minute."""
        if self.direction != "outbound" or not self.duration:
            return 0
        if rounding == "per-minute":
            return math.ceil(self.duration / 60) * OUTBOUND_MINOR_PER_MINUTE
        return self.duration * OUTBOUND_MINOR_PER_MINUTE // 60

    def as_call(self, rounding: str = "per-second", epoch: float = 0.0) -> dict:
        """The call object as GET /v1/calls/{id} returns it; `epoch` is the wall-clock time of simulated second 0."""
        def iso(t: float | None) -> str | None:
            if t is None:
                return None
            return datetime.fromtimestamp(epoch + t, timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")
        return {"id": self.id, "session_id": self.session_id, "direction": self.direction,
                "local_e164": self.local, "remote_e164": self.remote, "status": self.status,
                "started_at": iso(self.created_at), "answered_at": iso(self.answered_at),
                "ended_at": iso(self.ended_at), "duration_seconds": self.duration,
                "cost_minor": self.cost_minor(rounding), "cost_currency": "KES",
                "rate_per_minute_minor": OUTBOUND_MINOR_PER_MINUTE if self.direction == "outbound" else 0,
                "client_request_id": self.client_request_id,
                "metadata": {"voice_callback_url": self.url, "label": self.label}}


@dataclass
class Room:
    name: str
    session: int = 1
    started: bool = False
    legs: dict[str, dict] = field(default_factory=dict)  # leg id -> its conference action
    recorded: bool = False
    status_url: str | None = None
    status_events: set[str] = field(default_factory=set)


@dataclass
class Entry:
    """One line of the timeline: simulated second, who, what happened."""

    at: float
    who: str
    what: str
    room: str | None = None


class Platform:
    """The local Sautikit: calls, rooms, a scheduler and the webhooks it sends."""

    def __init__(self, clock: VirtualClock | ScaledClock, *, secret: bytes | None = None,
                 recording_base: str = "http://127.0.0.1/recordings", rounding: str = "per-second",
                 epoch: float | None = None):
        self.clock, self.secret, self.recording_base, self.rounding = clock, secret, recording_base, rounding
        # Simulated second 0 is this wall-clock moment, so event timestamps look like real ones.
        self.epoch = time.time() if epoch is None else epoch
        self.legs: dict[str, Leg] = {}
        self.rooms: dict[str, Room] = {}
        self.timeline: list[Entry] = []
        self.queue: list[tuple[float, int, Callable[[], object]]] = []
        self.sequence = itertools.count()
        self.lock = threading.Condition()
        self.check = validator(ACTIONS)

    # -- scheduling ------------------------------------------------------------
    def at(self, when: float, action: Callable[[], object]) -> None:
        with self.lock:
            heapq.heappush(self.queue, (when, next(self.sequence), action))
            self.lock.notify_all()

    def run_until_idle(self) -> None:
        """Run everything scheduled: in virtual time as fast as HTTP allows, or paced by a scaled clock."""
        while True:
            with self.lock:
                if not self.queue:
                    return
                when, _, action = heapq.heappop(self.queue)
                while self.clock.now() < when:
                    self.clock.wait_until(when, self.lock)
            action()

    def run_forever(self, stop: threading.Event) -> None:
        """Run in real (scaled) time until `stop` is set, for the HTTP server."""
        while not stop.is_set():
            with self.lock:
                if not self.queue:
                    self.lock.wait(timeout=1.0)  # `at` notifies when a call is placed
                    continue
                if self.queue[0][0] > self.clock.now():
                    self.clock.wait_until(self.queue[0][0], self.lock)
                    continue
                _, _, action = heapq.heappop(self.queue)
            try:
                action()
            except Exception as exc:  # one broken call must not stop the platform
                self.note("platform", f"internal error: {exc}")

    def note(self, who: str, what: str, room: str | None = None) -> None:
        self.timeline.append(Entry(self.clock.now(), who, what, room))

    # -- calls -----------------------------------------------------------------
    def place_call(self, *, local: str, remote: str, url: str, direction: str = "outbound",
                   client_request_id: str | None = None, label: str = "", digits: list[str] | None = None,
                   hangup_after: float | None = None, when: float | None = None) -> Leg:
        """A new call: rings, is answered, then POSTs to `url` and plays what comes back."""
        start = self.clock.now() if when is None else when
        leg = Leg(id=str(uuid.uuid4()), session_id="HD_" + uuid.uuid4().hex[:16], direction=direction,
                  local=local, remote=remote, url=url, client_request_id=client_request_id,
                  label=label or remote, digits=list(digits or []), created_at=start)
        self.legs[leg.id] = leg
        ring = RING_SECONDS if direction == "outbound" else 0
        self.at(start + ring, lambda: self._answer(leg))
        if hangup_after is not None:
            self.at(start + ring + hangup_after, lambda: self.hangup(leg.id, by="caller"))
        return leg

    def _answer(self, leg: Leg) -> None:
        if leg.status != "ringing":
            return
        leg.status, leg.answered_at = "answered", self.clock.now()
        self._fetch(leg, leg.url, {})

    def hangup(self, call_id: str, *, by: str = "api") -> Leg | None:
        leg = self.legs.get(call_id)
        if leg is None or leg.status in ("completed", "canceled", "failed"):
            return leg
        self._end(leg, "completed" if leg.status == "answered" else "canceled",
                  "hangs up" if by == "caller" else "is hung up via the API")
        return leg

    def _end(self, leg: Leg, status: str, why: str) -> None:
        leg.status, leg.ended_at, leg.actions = status, self.clock.now(), []
        self.note(leg.label, why)
        if leg.room:
            self._leave(leg)

    # -- webhooks --------------------------------------------------------------
    def _post(self, url: str, fields: dict, *, form: bool) -> tuple[int, bytes]:
        body = (urllib.parse.urlencode(fields) if form else json.dumps(fields)).encode()
        headers = {"Content-Type": "application/x-www-form-urlencoded" if form else "application/json"}
        if self.secret:
            headers["X-Sautikit-Signature"] = sign(self.secret, body)
        try:
            with urllib.request.urlopen(urllib.request.Request(url, data=body, headers=headers), timeout=10) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as error:
            return error.code, error.read()
        except OSError as error:
            return 0, str(error).encode()

    def _fetch(self, leg: Leg, url: str, extra: dict) -> None:
        """POST call state to a voice URL and queue the actions it answers with."""
        fields = {"CallId": leg.id, "SessionId": leg.session_id, "From": leg.remote if leg.direction == "inbound"
                  else leg.local, "To": leg.local if leg.direction == "inbound" else leg.remote,
                  "Direction": leg.direction, "CallStatus": leg.status, **extra}
        if leg.client_request_id:
            fields["clientRequestId"] = leg.client_request_id
        leg.url = url
        status, body = self._post(url, fields, form=True)
        try:
            reply = json.loads(body) if status == 200 else None
        except ValueError:
            reply = None
        if reply is None or not self.check.is_valid(reply):
            self._end(leg, "failed", f"call dropped: {url} answered {status} with no actions Sautikit accepts")
            return
        leg.actions = list(reply["actions"])
        self._next(leg)

    def _next(self, leg: Leg) -> None:
        """Play the leg's next action; each schedules the one after it."""
        if leg.status != "answered" or leg.room or leg.stalled:
            return
        if not leg.actions:
            self._end(leg, "completed", "reaches the end of its actions; the call ends")
            return
        (verb, args), = leg.actions.pop(0).items()
        now = self.clock.now()
        if verb == "say":
            seconds = max(1, math.ceil(len(args["text"]) / SAY_CHARS_PER_SECOND)) * (1 + args.get("loop", 0))
            self.note(leg.label, f'hears "{args["text"]}"')
            self.at(now + seconds, lambda: self._next(leg))
        elif verb == "play":
            self.note(leg.label, f"hears audio {args['url']}")
            self.at(now + PLAY_SECONDS * (1 + args.get("loop", 0)), lambda: self._next(leg))
        elif verb == "getDigits":
            for prompt in args.get("nested", []):
                (kind, value), = prompt.items()
                self.note(leg.label, f'hears "{value["text"]}"' if kind == "say" else f"hears audio {value['url']}")
            if leg.digits:
                digits = leg.digits.pop(0)
                self.note(leg.label, f"keys {digits or '(nothing)'}#")
                self.at(now + 2 + len(digits), lambda: self._fetch(leg, leg.url, {"Digits": digits}))
            else:
                self.at(now + args.get("timeout", 5), lambda: self._next(leg))
        elif verb == "redirect":
            self.at(now, lambda: self._fetch(leg, args["url"], {}))
        elif verb in ("hangup", "reject"):
            self._end(leg, "completed" if verb == "hangup" else "busy", "is hung up by the policy")
        elif verb == "conference":
            self._join(leg, args)
        elif verb == "record":
            self.note(leg.label, "is recorded")
            self.at(now + args.get("maxLength", 30), lambda: self._next(leg))
        else:  # dial: not simulated; the call moves on
            self.note(leg.label, f"{verb} is not simulated locally; skipped")
            self.at(now, lambda: self._next(leg))

    # -- conferences -----------------------------------------------------------
    def _event(self, room: Room, kind: str, leg: Leg | None = None, **extra: Any) -> None:
        if not room.status_url or kind not in room.status_events:
            return
        fields = {"ConferenceName": room.name, "StatusCallbackEvent": kind, "Timestamp": round(self.epoch + self.clock.now(), 3),
                  "EventId": str(uuid.uuid4()), **extra}
        if leg is not None:
            fields["CallId"] = leg.id
        for _ in range(3):  # delivered at least once
            status, _ = self._post(room.status_url, fields, form=False)
            if 200 <= status < 300:
                return
        self.note("platform", f"status event {kind} for {room.name} was not acknowledged")

    def _join(self, leg: Leg, conference: dict) -> None:
        name = conference["name"]
        room = self.rooms.setdefault(name, Room(name))
        leg.meeting = name
        cap = conference.get("maxParticipants", 0)
        if cap and len(room.legs) >= cap:
            leg.stalled = True
            self.note(leg.label, f"stalls in silence: {name} is at its platform cap of {cap}", name)
            return
        room.status_url = conference.get("statusEventsCallbackUrl", room.status_url)
        room.status_events = set(conference.get("statusEvents", "").split()) or room.status_events
        room.recorded = room.recorded or bool(conference.get("record"))
        room.legs[leg.id] = conference
        leg.room, leg.muted, leg.end_on_exit = name, bool(conference.get("muted")), bool(conference.get("endOnExit"))
        self.note(leg.label, "joins " + name + (" muted (listen-only)" if leg.muted else "")
                  + (" (beep)" if conference.get("beep") else ""), name)
        self._event(room, "join", leg)
        if conference.get("startOnEnter", True) and not room.started:
            room.started = True
            self.note(leg.label, f"starts {name}", name)
            self._event(room, "start")
            for other_id in room.legs:
                other = self.legs[other_id]
                if other.hold_started is not None:
                    other.held_seconds += self.clock.now() - other.hold_started
                    other.hold_started = None
        elif not room.started:
            leg.hold_started = self.clock.now()
            music = conference.get("waitUrl", "the PBX's default music")
            self.note(leg.label, f"waits on hold ({music})", name)

    def _leave(self, leg: Leg) -> None:
        assert leg.room is not None
        room = self.rooms[leg.room]
        room.legs.pop(leg.id, None)
        if leg.hold_started is not None:
            leg.held_seconds += self.clock.now() - leg.hold_started
            leg.hold_started = None
        self._event(room, "leave", leg)
        self.note(leg.label, f"leaves {room.name}", room.name)
        leg.room = None
        if leg.end_on_exit and room.started or (not room.legs and room.started):
            self._end_room(room)

    def _end_room(self, room: Room) -> None:
        for other_id in list(room.legs):
            other = self.legs[other_id]
            room.legs.pop(other_id)
            if other.hold_started is not None:
                other.held_seconds += self.clock.now() - other.hold_started
                other.hold_started = None
            self._event(room, "leave", other)
            other.room = None
            self._end(other, "completed", f"is disconnected: {room.name} ended")
        extra: dict[str, Any] = {}
        if room.recorded:
            extra["RecordingUrl"] = f"{self.recording_base}/{room.name}-{room.session}.mp3"
        self.note("platform", f"{room.name} ends" + (f"; recording at {extra['RecordingUrl']}" if extra else ""),
                  room.name)
        self._event(room, "end", None, **extra)
        room.started, room.session, room.recorded = False, room.session + 1, False
