"""The local platform's engine: calls that POST to webhooks and play the actions they get back.

It behaves as Sautikit's pages describe (fact sheet §2-§4, §7): actions run in order;
`getDigits` posts the collected `Digits` back; a conference starts when a `startOnEnter`
participant joins and the others hold; `endOnExit` ends it for everyone; a caller past
`maxParticipants` stalls in silence; status events go to `statusEventsCallbackUrl`; a
recorded room's recording URL comes with `end`; responses the actions schema refuses drop
the call. Where the platform's pages leave a question open, `Readings` (readings.py)
chooses the answer: where digits go, how events are spelled and signed, what an unset
`startOnEnter` means, how retries are signed and timed, whether redirects are followed.
Time is a `Clock`: virtual for `roomc simulate`, scaled real time for `roomc sautikit-local`.
"""
from __future__ import annotations

import functools
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

from roomc.compiler.schemas import actions_problems
from roomc.runtime.signatures import sign

from .readings import RETRY_SCHEDULES, Readings

SAY_CHARS_PER_SECOND = 15  # how long `say` takes: text length at a steady speaking pace
PLAY_SECONDS = 5
RING_SECONDS = 3
OUTBOUND_MINOR_PER_MINUTE = 300  # KES 3.00 a minute, in minor units; inbound legs are free
STREAM_SECONDS = 30  # a connected `stream` holds the call this long locally: no socket is opened
AI_AGENT_SECONDS = 60  # how long the (absent) AI agent keeps a caller before it hands back
WORKSPACE_ID = "ws_local"
# A supervisor leg is billed from answer to leave: KES 0.50/min from a browser or SIP, the outbound rate by phone.
SUPERVISOR_MINOR_PER_MINUTE = {"client": 50, "sip": 50, "phone": OUTBOUND_MINOR_PER_MINUTE}
LIVE = ("ringing", "answered")


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


def iso(epoch: float, t: float | None) -> str | None:
    """Simulated second `t` as an RFC 3339 UTC time, `epoch` being the wall-clock time of second 0."""
    if t is None:
        return None
    return datetime.fromtimestamp(epoch + t, timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def with_label(url: str, label: str | None) -> str:
    """The URL a voice callback is POSTed to: the call's label rides as `?clientRequestId=` (SDK 0.4.0), unless
    its encoded form is over 2048 bytes (SDK 0.4.1: the body still carries it) or the URL already has one."""
    if not label:
        return url
    encoded = urllib.parse.urlencode({"clientRequestId": label})
    if len(encoded) - len("clientRequestId=") > 2048 or "clientRequestId=" in urllib.parse.urlsplit(url).query:
        return url
    return url + ("&" if urllib.parse.urlsplit(url).query else "?") + encoded


@dataclass
class Leg:
    """One call: the platform's call record plus where its actions have got to."""

    id: str
    session_id: str
    direction: str
    local: str
    remote: str
    url: str | None
    client_request_id: str | None = None
    label: str = ""
    digits: list[str] = field(default_factory=list)
    status: str = "ringing"
    created_at: float = 0.0
    answered_at: float | None = None
    ended_at: float | None = None
    updated_at: float = 0.0
    actions: list[dict] = field(default_factory=list)
    room: str | None = None
    meeting: str | None = None  # the room this leg joined (or stalled at), for the bill per meeting
    muted: bool = False
    end_on_exit: bool = False
    hold_started: float | None = None
    held_seconds: float = 0.0
    stalled: bool = False
    origin_url: str | None = None  # the voice_callback_url the call was placed with (or the number's)
    caller_id: str | None = None
    failure_code: str | None = None
    member_id: str | None = None  # the PBX's participant id while in a room
    events: list[dict] = field(default_factory=list)  # the PBX lifecycle events GET /v1/calls/{id} lists
    recording: dict | None = None  # {"state": "pending" | "ready", "url", "ready_at"}
    supervision: dict | None = None  # the current (or last) supervision, as the API returns it
    supervisors: list["Supervisor"] = field(default_factory=list)  # every one, for the bill
    control: str | None = None
    fallback_actions: list[dict] | None = None
    control_timeout_ms: int = 10000
    room_keys: list[tuple[float, str]] = field(default_factory=list)  # (seconds after joining, keys) pressed in rooms

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
        """The call object as GET /v1/calls/{id} returns it (the SDK's `Call`), without client_request_id.

        The real API carries client_request_id only in the create response and in callbacks, so it
        is left out here: code that finds calls by it would work locally and nowhere else.
        """
        return {"id": self.id, "workspace_id": WORKSPACE_ID, "session_id": self.session_id,
                "direction": self.direction, "local_e164": self.local, "remote_e164": self.remote,
                "country": "KE" if self.remote.startswith("+254") else None,
                "started_at": iso(epoch, self.created_at), "answered_at": iso(epoch, self.answered_at),
                "ended_at": iso(epoch, self.ended_at),
                "duration_seconds": self.duration if self.ended_at is not None else None,
                "status": self.status, "cost_minor": self.cost_minor(rounding), "cost_currency": "KES",
                "rate_per_minute_minor": OUTBOUND_MINOR_PER_MINUTE if self.direction == "outbound" else 0,
                "failure_code": self.failure_code,
                "metadata": {"voice_callback_url": self.origin_url, "label": self.label,
                             **({"caller_id": self.caller_id} if self.caller_id else {})},
                "created_at": iso(epoch, self.created_at), "updated_at": iso(epoch, self.updated_at),
                "events": [{**e, "occurred_at": iso(epoch, e["occurred_at"]), "created_at": iso(epoch, e["created_at"])}
                           for e in self.events]}


@dataclass
class Supervisor:
    """A supervisor leg on a call: billed from when it connects to when it leaves."""

    kind: str  # client, sip or phone
    connected_at: float | None = None
    ended_at: float | None = None

    @property
    def duration(self) -> int:
        if self.connected_at is None or self.ended_at is None:
            return 0
        return int(round(self.ended_at - self.connected_at))

    def cost_minor(self, rounding: str = "per-second") -> int:
        rate = SUPERVISOR_MINOR_PER_MINUTE[self.kind]
        if rounding == "per-minute":
            return math.ceil(self.duration / 60) * rate
        return self.duration * rate // 60


@dataclass
class Room:
    name: str
    session: int = 1
    started: bool = False
    legs: dict[str, dict] = field(default_factory=dict)  # leg id -> its conference action
    recorded: bool = False
    status_url: str | None = None
    status_events: set[str] = field(default_factory=set)
    members: itertools.count = field(default_factory=lambda: itertools.count(1))
    session_legs: set[str] = field(default_factory=set)  # every leg that joined this session


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
                 epoch: float | None = None, readings: Readings | None = None, events_url: str | None = None,
                 voice_url: str | None = None):
        self.clock, self.secret, self.recording_base, self.rounding = clock, secret, recording_base, rounding
        self.readings = readings or Readings()
        # The number's routing (PATCH /v1/numbers/{id}/routing): where calls without their own URL go,
        # and where call.* events are posted when the platform emits them.
        self.events_url, self.voice_url = events_url, voice_url
        # Simulated second 0 is this wall-clock moment, so event timestamps look like real ones.
        self.epoch = time.time() if epoch is None else epoch
        self.legs: dict[str, Leg] = {}
        self.rooms: dict[str, Room] = {}
        self.acknowledged: dict[str, int] = {}  # room -> status events its sink acknowledged
        self.timeline: list[Entry] = []
        self.queue: list[tuple[float, int, Callable[[], object]]] = []
        self.sequence = itertools.count()
        self.lock = threading.Condition()

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

    def find(self, call_id: str) -> Leg | None:
        """A call by its id or its HD_ session id, as GET and hangup take either."""
        return self.legs.get(call_id) or next((leg for leg in self.legs.values() if leg.session_id == call_id), None)

    # -- calls -----------------------------------------------------------------
    def place_call(self, *, local: str, remote: str, url: str | None, direction: str = "outbound",
                   client_request_id: str | None = None, label: str = "", digits: list[str] | None = None,
                   hangup_after: float | None = None, when: float | None = None, caller_id: str | None = None,
                   control: str | None = None, opening_actions: list[dict] | None = None,
                   fallback_actions: list[dict] | None = None, control_timeout_ms: int = 10000,
                   room_keys: list[tuple[float, str]] | None = None) -> Leg:
        """A new call: rings, is answered, then POSTs to `url` (or plays its mcp actions) and plays the answer."""
        start = self.clock.now() if when is None else when
        url = url or (None if control else self.voice_url)
        leg = Leg(id=str(uuid.uuid4()), session_id="HD_" + uuid.uuid4().hex[:16], direction=direction,
                  local=local, remote=remote, url=url, origin_url=url, client_request_id=client_request_id,
                  label=label or remote, digits=list(digits or []), created_at=start, updated_at=start,
                  caller_id=caller_id, control=control, actions=list(opening_actions or []),
                  fallback_actions=list(fallback_actions or []) if control else None,
                  control_timeout_ms=control_timeout_ms, room_keys=list(room_keys or []))
        self.legs[leg.id] = leg
        self._record(leg, "call.initiated", {"direction": direction}, at=start)
        ring = RING_SECONDS if direction == "outbound" else 0
        self.at(start + ring, lambda: self._answer(leg))
        if hangup_after is not None:
            self.at(start + ring + hangup_after, lambda: self.hangup(leg.id, by="caller"))
        return leg

    def _record(self, leg: Leg, kind: str, payload: dict | None = None, *, at: float | None = None) -> None:
        when = self.clock.now() if at is None else at
        leg.updated_at = when
        leg.events.append({"id": str(uuid.uuid4()), "call_id": leg.id, "kind": kind, "payload": payload,
                           "occurred_at": when, "created_at": when})

    def _answer(self, leg: Leg) -> None:
        if leg.status != "ringing":
            return
        leg.status, leg.answered_at = "answered", self.clock.now()
        self._record(leg, "call.answered")
        self._call_event(leg, "call.answered")
        if leg.control == "mcp":
            self.note(leg.label, "is answered under mcp control")
            self._next(leg)
        elif leg.url:
            self._fetch(leg, leg.url, {})
        else:
            self._end(leg, "completed", "is answered, but has no voice_callback_url and the number no routing; "
                      "the call ends", failure_code="no_voice_url")

    def hangup(self, call_id: str, *, by: str = "api") -> Leg | None:
        leg = self.find(call_id)
        if leg is None or leg.status not in LIVE:
            return leg
        self._end(leg, "completed" if leg.status == "answered" else "canceled",
                  "hangs up" if by == "caller" else "is hung up via the API")
        return leg

    def _end(self, leg: Leg, status: str, why: str, *, failure_code: str | None = None) -> None:
        leg.status, leg.ended_at, leg.actions = status, self.clock.now(), []
        leg.failure_code = failure_code
        self._record(leg, f"call.{'completed' if status == 'completed' else 'failed'}",
                     {"status": status, **({"failure_code": failure_code} if failure_code else {})})
        self.note(leg.label, why)
        if leg.recording and leg.recording["state"] == "pending":
            self._recording_ready(leg, f"{self.recording_base}/{leg.id}.mp3")
        self.end_supervision(leg)
        if leg.room:
            self._leave(leg)
        self._call_event(leg, "call.completed" if status == "completed" else "call.failed")

    def _recording_ready(self, leg: Leg, url: str) -> None:
        leg.recording = {"state": "ready", "url": url, "ready_at": self.clock.now()}
        self._record(leg, "call.recording.ready", {"download_url": url})

    def supervise(self, leg: Leg, params: dict) -> dict:
        """Attach a supervisor to a live call: it rings, then connects (SDK ≥0.5.0 supervision)."""
        target = params["supervisor"]
        leg.supervision = {"supervision_id": str(uuid.uuid4()), "call_id": leg.id, "session_id": leg.session_id,
                           "supervisor_leg_id": "sv_" + uuid.uuid4().hex[:12], "mode": params["mode"],
                           "announce": params.get("announce", "none"),
                           "supervisor": {**target, **({"label": params["label"]} if "label" in params else {})},
                           "notify_agent": params.get("notify_agent", True), "state": "connecting",
                           "created_at": iso(self.epoch, self.clock.now())}
        supervision, supervisor = leg.supervision, Supervisor(target["type"])
        leg.supervisors.append(supervisor)
        self.note(leg.label, f"is supervised ({params['mode']}) by {target.get('identity') or target.get('number')}")
        self._supervision_event(leg, "call.supervision.started")

        def connect() -> None:
            if supervision["state"] == "connecting" and leg.status in LIVE:
                supervision.update(state="connected", connected_at=iso(self.epoch, self.clock.now()))
                supervisor.connected_at = self.clock.now()
                self._supervision_event(leg, "call.supervision.connected")
        self.at(self.clock.now() + RING_SECONDS, connect)
        return supervision

    def end_supervision(self, leg: Leg) -> None:
        """The supervisor leaves (DELETE, or the call ended); idempotent."""
        if leg.supervision is None or leg.supervision["state"] in ("ended", "failed"):
            return
        leg.supervision.update(state="ended", ended_at=iso(self.epoch, self.clock.now()))
        if leg.supervisors:
            leg.supervisors[-1].ended_at = self.clock.now()
        self._supervision_event(leg, "call.supervision.ended")

    def _supervision_event(self, leg: Leg, kind: str) -> None:
        if self.readings.call_events != "emitted" or not self.events_url or leg.supervision is None:
            return
        event_id = str(uuid.uuid4())
        data = {key: leg.supervision[key] for key in ("supervision_id", "call_id", "session_id", "mode", "state",
                                                      "supervisor")}
        body = json.dumps({"kind": kind, "event_id": event_id, "workspace_id": WORKSPACE_ID,
                           "occurred_at": iso(self.epoch, self.clock.now()), "data": data}).encode()
        self._deliver(self.events_url, body, signed=True, what=f"{kind} for {leg.label}",
                      headers={"X-Sautikit-Event-Id": event_id, "X-Sautikit-Event": kind})

    # -- webhooks --------------------------------------------------------------
    def _http(self, url: str, body: bytes, content_type: str, *, signed: bool, age: float = 0.0,
              headers: dict | None = None) -> tuple[int, bytes]:
        """POST `body`; signed with a `t` that is `age` simulated seconds old (a retry that was not re-signed)."""
        sent = {"Content-Type": content_type, **(headers or {})}
        if self.secret and signed:
            sent["X-Sautikit-Signature"] = sign(self.secret, body, int(time.time() - age))
        try:
            with urllib.request.urlopen(urllib.request.Request(url, data=body, headers=sent), timeout=10) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as error:
            return error.code, error.read()
        except (OSError, ValueError) as error:  # ValueError: a URL urllib cannot use, e.g. a bare "/lobby"
            return 0, str(error).encode()

    def _deliver(self, url: str, body: bytes, *, signed: bool, what: str, headers: dict | None = None,
                 room: str | None = None) -> None:
        """Deliver an event at least once: retried on any non-2xx by the reading's schedule."""
        delays = RETRY_SCHEDULES[self.readings.retry_schedule]
        first = self.clock.now()

        def attempt(number: int) -> None:
            age = 0.0 if self.readings.retry_resign else self.clock.now() - first
            status, _ = self._http(url, body, "application/json", signed=signed, age=age, headers=headers)
            if 200 <= status < 300:
                if room is not None:
                    self.acknowledged[room] = self.acknowledged.get(room, 0) + 1
                return
            if number >= len(delays):
                self.note("platform", f"{what} was not acknowledged after {number + 1} attempts; dead-lettered")
                return
            if delays[number] == 0:
                attempt(number + 1)
            else:
                self.at(self.clock.now() + delays[number], lambda: attempt(number + 1))
        attempt(0)

    def _call_event(self, leg: Leg, kind: str) -> None:
        """A call.* event to the number's events_url, when the platform is read as emitting them (§5.4)."""
        if self.readings.call_events != "emitted" or not self.events_url:
            return
        data: dict[str, Any] = {"call_id": leg.id, "pbx_call_id": leg.session_id, "direction": leg.direction,
                                "from": leg.remote if leg.direction == "inbound" else leg.local,
                                "to": leg.local if leg.direction == "inbound" else leg.remote,
                                "number_id": "num_local", "status": leg.status,
                                "answered_at": iso(self.epoch, leg.answered_at)}
        if kind != "call.answered":
            data.update(ended_at=iso(self.epoch, leg.ended_at), duration_seconds=leg.duration,
                        hangup_cause=leg.failure_code or "normal_clearing")
        if kind == "call.failed":
            data["failure_reason"] = leg.failure_code or leg.status
        if leg.client_request_id:
            data["clientRequestId"] = leg.client_request_id
        event_id = str(uuid.uuid4())
        body = json.dumps({"kind": kind, "event_id": event_id, "workspace_id": WORKSPACE_ID,
                           "occurred_at": iso(self.epoch, self.clock.now()), "data": data}).encode()
        self._deliver(self.events_url, body, signed=True, what=f"{kind} for {leg.label}",
                      headers={"X-Sautikit-Event-Id": event_id, "X-Sautikit-Event": kind})

    def _fetch(self, leg: Leg, url: str, extra: dict) -> None:
        """POST call state to a voice URL and queue the actions it answers with."""
        fields = {"CallId": leg.id, "SessionId": leg.session_id, "From": leg.remote if leg.direction == "inbound"
                  else leg.local, "To": leg.local if leg.direction == "inbound" else leg.remote,
                  "Direction": leg.direction, "CallStatus": leg.status, **extra}
        if leg.client_request_id:
            fields["clientRequestId"] = leg.client_request_id
        leg.url = url
        form = self.readings.voice_body == "form"
        body = (urllib.parse.urlencode(fields) if form else json.dumps(fields)).encode()
        status, answer = self._http(with_label(url, leg.client_request_id), body,
                                    "application/x-www-form-urlencoded" if form else "application/json", signed=True)
        try:
            reply = json.loads(answer) if status == 200 else None
        except ValueError:
            reply = None
        if reply is None or actions_problems(reply):
            self._end(leg, "failed", f"call dropped: {url} answered {status} with no actions Sautikit accepts",
                      failure_code="invalid_voice_response")
            return
        leg.actions = list(reply["actions"])
        self._next(leg)

    def _owned(self, url: str) -> bool:
        host = urllib.parse.urlsplit(url).hostname or ""
        return host == "sautikit.com" or host.endswith(".sautikit.com")

    def _next(self, leg: Leg) -> None:
        """Play the leg's next action; each schedules the one after it."""
        if leg.status != "answered" or leg.room or leg.stalled:
            return
        if not leg.actions and leg.fallback_actions is not None:
            # mcp: no controller answers locally, so after two control timeouts the fallback plays.
            wait, leg.actions, leg.fallback_actions = 2 * leg.control_timeout_ms / 1000, leg.fallback_actions, None
            self.note(leg.label, f"holds for the mcp controller ({wait:g} s); none answers, the fallback plays")
            self.at(self.clock.now() + wait, lambda: self._next(leg))
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
                # Where the digits go is an open question (§9a): the URL that asked, or the call's own URL.
                target = leg.url if self.readings.digits_to == "answering-url" else (leg.origin_url or leg.url)
                assert target is not None
                self.note(leg.label, f"keys {digits or '(nothing)'}#")
                self.at(now + 2 + len(digits), lambda: self._fetch(leg, target, {"Digits": digits}))
            else:
                self.at(now + args.get("timeout", 5), lambda: self._next(leg))
        elif verb == "redirect":
            if self.readings.redirect_own_server == "refuse" and not self._owned(args["url"]):
                self._end(leg, "failed", f"call dropped: the PBX refuses to redirect to {args['url']} "
                          "(not a Sautikit-owned endpoint)", failure_code="redirect_refused")
                return
            self.at(now, lambda: self._fetch(leg, args["url"], {}))
        elif verb in ("hangup", "reject"):
            self._end(leg, "completed" if verb == "hangup" else "busy", "is hung up by the policy")
        elif verb == "conference":
            self._join(leg, args)
        elif verb == "record":
            self.note(leg.label, "is recorded")
            leg.recording = {"state": "pending"}
            seconds = args.get("maxLength", 30)

            def recorded() -> None:
                if leg.status == "answered" and leg.recording and leg.recording["state"] == "pending":
                    self._recording_ready(leg, f"{self.recording_base}/{leg.id}.mp3")
                self._next(leg)
            self.at(now + seconds, recorded)
        elif verb == "stream":
            self._stream(leg, args, now)
        elif verb == "aiAgent":
            self._ai_agent(leg, args, now)
        else:  # dial: not simulated; the call moves on
            self.note(leg.label, f"{verb} is not simulated locally; skipped")
            self.at(now, lambda: self._next(leg))

    def _stream(self, leg: Leg, args: dict, now: float) -> None:
        # Nothing is connected locally; the time a stream would take is still spent (and billed).
        if args.get("connect"):
            self.note(leg.label, f"is streamed to {args['url']} for {STREAM_SECONDS} s (nothing connected locally)")
            self.at(now + STREAM_SECONDS, lambda: self._next(leg))
        else:
            self.note(leg.label, f"forks audio to {args['url']} (fire-and-forget; nothing connected locally)")
            self.at(now + 1, lambda: self._next(leg))

    def _ai_agent(self, leg: Leg, args: dict, now: float) -> None:
        self.note(leg.label, f"talks to AI agent {args['agentId']} for {AI_AGENT_SECONDS} s (played locally by silence)")
        handover = args.get("handover") or {}

        def hand_back() -> None:
            if leg.status != "answered":
                return
            if "callbackUrl" in handover:
                self.note(leg.label, f"is handed back to {handover['callbackUrl']}")
                self._fetch(leg, handover["callbackUrl"], {"AgentHandover": "true"})
            elif "forward" in handover:
                self._end(leg, "completed", "is forwarded by the agent (forwarding is not simulated); the call ends")
            elif "voicemail" in handover:
                self._end(leg, "completed", "leaves a voicemail for the agent; the call ends")
            else:
                self._end(leg, "completed", "is handed back to the number's own configuration; the call ends")
        self.at(now + AI_AGENT_SECONDS, hand_back)

    # -- conferences -----------------------------------------------------------
    def _event(self, room: Room, kind: str, leg: Leg | None = None, recording: str | None = None) -> None:
        if not room.status_url or kind not in room.status_events:
            return
        shape, now, event_id = self.readings.event_shape, self.clock.now(), str(uuid.uuid4())
        headers: dict[str, str] = {}
        fields: dict[str, Any]
        if shape == "thirdparty":
            # The shape third-party integrator code parses: no event id, no time, the caller's number.
            fields = {"conferenceName": room.name, "event": kind, "participants": len(room.legs)}
            if leg is not None:
                fields.update(participant_id=leg.member_id, caller=leg.remote)
            if recording:
                fields["recording_url"] = recording
        elif shape == "sautikit-envelope":
            data: dict[str, Any] = {"conference_name": room.name, "event": kind, "participants": len(room.legs)}
            if leg is not None:
                data.update(call_id=leg.id, session_id=leg.session_id, participant_id=leg.member_id, caller=leg.remote)
            if recording:
                data["recording_url"] = recording
            fields = {"kind": f"conference.{kind}", "event_id": event_id, "workspace_id": WORKSPACE_ID,
                      "occurred_at": iso(self.epoch, now), "data": data}
            headers = {"X-Sautikit-Event-Id": event_id, "X-Sautikit-Event": f"conference.{kind}"}
        else:
            fields = {"ConferenceName": room.name, "StatusCallbackEvent": kind,
                      "Timestamp": round(self.epoch + now, 3), "EventId": event_id}
            if leg is not None:
                fields["CallId"] = leg.id
            if recording:
                fields["RecordingUrl"] = recording
        self._deliver(room.status_url, json.dumps(fields).encode(), signed=self.readings.events_signed,
                      what=f"status event {kind} for {room.name}", headers=headers, room=room.name)

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
        room.session_legs.add(leg.id)
        leg.member_id = str(next(room.members))
        leg.room, leg.muted, leg.end_on_exit = name, bool(conference.get("muted")), bool(conference.get("endOnExit"))
        self.note(leg.label, "joins " + name + (" muted (listen-only)" if leg.muted else "")
                  + (" (beep)" if conference.get("beep") else ""), name)
        self._event(room, "join", leg)
        for after, keys in leg.room_keys:
            self.at(self.clock.now() + after, functools.partial(self._press, leg, room, room.session, conference, keys))
        if conference.get("startOnEnter", self.readings.start_on_enter_default) and not room.started:
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

    def _press(self, leg: Leg, room: Room, session: int, conference: dict, keys: str) -> None:
        """Keys pressed in a room: with `collectDigits`, posted to `digitsCallbackUrl` (DigitsCollected,
        undocumented: fact sheet §9) in the reading's event shape, signed like status events, retried."""
        if leg.room != room.name or room.session != session:
            return  # left (or the room ended) before pressing
        self.note(leg.label, f"presses {keys} in {room.name}", room.name)
        url = conference.get("digitsCallbackUrl")
        if not conference.get("collectDigits") or not url:
            self.note("platform", f"{room.name} collects no in-room digits; the keys go nowhere", room.name)
            return
        finish = conference.get("finishOnKey")
        digits = keys[:keys.index(finish)] if finish and finish in keys else keys  # the finish key submits
        limit = int(conference.get("numDigits") or 0)
        digits = digits[:limit] if limit else digits
        shape, now, event_id = self.readings.event_shape, self.clock.now(), str(uuid.uuid4())
        headers: dict[str, str] = {}
        fields: dict[str, Any]
        if shape == "thirdparty":
            fields = {"conferenceName": room.name, "event": "digits", "participant_id": leg.member_id,
                      "caller": leg.remote, "digits": digits}
        elif shape == "sautikit-envelope":
            fields = {"kind": "conference.digits_collected", "event_id": event_id, "workspace_id": WORKSPACE_ID,
                      "occurred_at": iso(self.epoch, now), "data": {
                          "conference_name": room.name, "call_id": leg.id, "session_id": leg.session_id,
                          "participant_id": leg.member_id, "caller": leg.remote, "digits": digits}}
            headers = {"X-Sautikit-Event-Id": event_id, "X-Sautikit-Event": "conference.digits_collected"}
        else:
            fields = {"ConferenceName": room.name, "StatusCallbackEvent": "DigitsCollected", "CallId": leg.id,
                      "Digits": digits, "Timestamp": round(self.epoch + now, 3), "EventId": event_id}
        self._deliver(url, json.dumps(fields).encode(), signed=self.readings.events_signed,
                      what=f"in-room keys {digits} of {leg.label}", headers=headers)

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
        recording = f"{self.recording_base}/{room.name}-{room.session}.mp3" if room.recorded else None
        if recording:
            # Which call a room recording belongs to is undocumented (§9.9): here, every leg of the session.
            for leg_id in room.session_legs:
                self._recording_ready(self.legs[leg_id], recording)
        self.note("platform", f"{room.name} ends" + (f"; recording at {recording}" if recording else ""), room.name)
        self._event(room, "end", None, recording)
        room.started, room.session, room.recorded, room.session_legs = False, room.session + 1, False, set()
