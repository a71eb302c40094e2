"""Rendering: a route table compiled once into functions that answer a request with actions.

`roomc explain` and the server both answer through `Responder.answer`, so what an
operator previews is exactly what a caller gets.
"""
from __future__ import annotations

import datetime as dt
import re
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol
from urllib.parse import urlencode

from jinja2.exceptions import TemplateError, UndefinedError

from roomc.compiler.hours import Schedule, now_view, zone as time_zone
from roomc.compiler.templates import compile_condition, compile_text, name_frame, reads_now

from .calls import TOKEN_PARAM, events_token
from .store import EXTRA_POOL, MAIN_POOL

ROOM_NAME = re.compile(r"[A-Za-z0-9._-]{1,64}")
# Fields whose value is a URL: what a template substitutes into them is percent-encoded.
URL_FIELDS = frozenset({"url", "waitUrl", "statusEventsCallbackUrl", "digitsCallbackUrl", "action",
                        "transcribeCallback"})
MISSING = re.compile(r"has no attribute '([^']*)'|^'([^']*)' is undefined")
E164 = re.compile(r"\+[1-9][0-9]{6,14}")
MAX_JOIN_DEPTH = 4
# Redirects to the policy's own routes are answered inline, at most this many per answer; past
# that (a flow that redirects to itself for ever), the redirect itself is emitted.
MAX_INLINE = 3
BAD_ROOM = [{"say": {"text": "Sorry, that meeting number is not valid."}}, {"hangup": {}}]
NO_ROLE = [{"say": {"text": "Sorry, you cannot join this meeting."}}, {"hangup": {}}]
FULL = [{"say": {"text": "Sorry, this meeting is full. Please try again later."}}, {"hangup": {}}]
LAST_RESORT = [{"say": {"text": "Sorry, something went wrong. Please call again later."}}, {"hangup": {}}]


def _spoken(answer: list, speech: dict | None) -> list:
    """A built-in answer with the policy's or room's default voice and language on its `say`."""
    if not speech:
        return answer
    return [{"say": {**item["say"], **speech}} if "say" in item else item for item in answer]


class RenderError(Exception):
    """A template could not produce a value Sautikit would accept; the caller gets the fallback."""


class Seats(Protocol):
    """Takes a seat for the caller in `room` if fewer than `limit` of the role's pool are taken: (admitted, why)."""

    def __call__(self, room: str, role: "CompiledRole", limit: int) -> tuple[bool, str]: ...


def missing_value(field_name: str, exc: UndefinedError, context: dict) -> str:
    """A missing value in roomc's words (`query value 'ticket' is missing`), not Jinja's ('dict object' ...)."""
    found = MISSING.search(str(exc.message or ""))
    name = next((g for g in found.groups() if g), "") if found else ""
    if name and isinstance(context.get("query"), dict) and name not in context["query"] \
            and not (isinstance(context.get("call"), dict) and name in context["call"]):
        return f"{field_name}: query value '{name}' is missing from the request"
    if name and name in ("query", "call", "room", "role", "secret"):
        return f"{field_name}: '{name}' is not available here"
    return f"{field_name}: value '{name or '?'}' is missing from the request"


def _checked(field_name: str, render: Callable[[dict], str], *, allow_empty: bool = False) -> Callable[[dict], str]:
    """Wrap a template so its output is always a value the actions schema accepts for that field."""
    def run(context: dict) -> str:
        try:
            out = render(context)
        except UndefinedError as exc:
            raise RenderError(missing_value(field_name, exc, context)) from None
        except TemplateError as exc:
            raise RenderError(f"{field_name}: {exc}") from None
        except Exception as exc:  # e.g. a filter given a hostile value; the caller must still hear something
            raise RenderError(f"{field_name}: {type(exc).__name__}: {exc}") from None
        if not out and not allow_empty:
            raise RenderError(f"{field_name} rendered empty")
        if field_name in ("number", "numbers") and not E164.fullmatch(out):
            raise RenderError(f"{field_name} rendered {out[:32]!r}, not an E.164 number")
        if field_name == "sip" and not out.startswith(("sip:", "sips:")):
            raise RenderError(f"sip rendered {out[:32]!r}, not a SIP URI")
        return out
    return run


Node = Callable[[dict], Any]


def _compiled(source: str, field_name: str, *, url: bool = False) -> Callable[[dict], str]:
    """A template's renderer; one that cannot compile (lint refused it, the finding was silenced) always fails.

    Failing at render time, not at start-up, keeps every other route answering and gives this one the fallback.
    """
    try:
        return compile_text(source, url=url)
    except TemplateError as exc:
        message = f"{field_name}: template does not compile: {exc.message}"

        def broken(context: dict) -> str:
            raise RenderError(message)
        return broken


def _condition(source: str) -> Callable[[dict], bool]:
    """A condition; one that cannot compile never holds (conditions are false on any error)."""
    try:
        return compile_condition(source)
    except TemplateError:
        return lambda context: False


class Responder:
    """A compiled route table: give it a route and a request context, get the actions."""

    def __init__(self, table: dict, *, public_url: str | None = None, secrets: dict[str, str] | None = None,
                 events_key: bytes | None = None, clock: Callable[[], float] = time.time,
                 directory: Any = None):
        self.table = table
        self.directory = directory  # the meeting directory (runtime/directory.py), loaded at start-up
        # Unix time of a request: the wall clock, or a scenario's (roomc simulate) or --at's (roomc explain).
        self.clock = clock
        self.hours: dict[str, Schedule | str] = {}
        for schedule_id, spec in (table.get("hours") or {}).items():
            try:
                self.hours[schedule_id] = Schedule(schedule_id, spec)
            except (ValueError, KeyError, TypeError) as exc:
                # A hand-edited table: this schedule's callers get the fallback, every other route still answers.
                self.hours[schedule_id] = f"hours '{schedule_id}' cannot be used: {exc}"
        try:
            self.zone: dt.tzinfo = time_zone(table["zone"]) if "zone" in table else dt.timezone.utc
        except ValueError:
            self.zone = dt.timezone.utc
        # `now` is built per request only for tables whose templates read it: others pay nothing.
        self.uses_now = _reads_now(table)
        self._now: tuple[float, dict] = (float("nan"), {})
        self.events_key = events_key  # signs each room's events URL with a token (runtime/calls.py)
        self.public_url = (public_url or table["server"].get("publicUrl") or "").rstrip("/")
        self.secrets = dict(secrets or {})
        self.routes = table["routes"]
        self.rooms = {rid: CompiledRoom(self, rid, room) for rid, room in table["rooms"].items()}
        # Which room definition each rendered name could belong to: a join never lands in another's conference.
        self.frames = [(rid, name_frame(room["name"]["$t"] if isinstance(room["name"], dict) else room["name"]))
                       for rid, room in table["rooms"].items()]
        self.frame_of = dict(self.frames)
        # The guard reads names case-insensitively, as lint's RC213 does (docs/runtime.md): folded and ranked once
        # here, so a join pays one lower() of its (ASCII) name and nothing more.
        self.folded_frames = [(rid, _folded(frame), _specificity(frame)) for rid, frame in self.frames]
        self.flows = {fid: CompiledFlow(self, fid, flow) for fid, flow in table["flows"].items()}
        self.closed_answers = {sid: self.actions(spec.get("closed") or [])
                               for sid, spec in (table.get("hours") or {}).items()}
        self.fallback_template = self.actions(table["server"]["fallback"])
        self.last_resort = _spoken(LAST_RESORT, table.get("speech"))

    # -- compiling templates -------------------------------------------------
    def node(self, template: Any, field_name: str = "") -> tuple[bool, Any]:
        """(is_constant, value or function of the context) for one template tree."""
        if isinstance(template, dict):
            if "$t" in template:
                return False, _checked(field_name, _compiled(template["$t"], field_name, url=field_name in URL_FIELDS))
            if "$url" in template:
                return False, self._url(template["$url"])
            parts = [(key, *self.node(value, key)) for key, value in template.items()]
            if all(constant for _, constant, _ in parts):
                return True, template
            return False, lambda context: {k: (v if c else v(context)) for k, c, v in parts}
        if isinstance(template, list):
            items = [self.node(v, field_name) for v in template]
            if all(constant for constant, _ in items):
                return True, template
            return False, lambda context: [v if c else v(context) for c, v in items]
        return True, template

    def _url(self, spec: dict) -> Node:
        query = [(k, *self.node(v, "query")) for k, v in spec.get("query", {}).items()]
        if "route" in spec:
            route = spec["route"]

            def start(context: dict) -> str:
                return self.public_url + route  # read at render time: serve and explain may set it late
        else:
            constant, base = self.node(spec["base"], "url")
            start = (lambda context: base) if constant else base

        # Events and keys URLs carry the room's token: an unsigned post is believed for that room alone.
        to_events = "route" in spec and self.routes.get(spec["route"], {}).get("kind") in ("events", "keys")

        def render(context: dict) -> str:
            url = start(context)
            pairs = [(k, v if c else v(context)) for k, c, v in query]
            if to_events and self.events_key and context.get("room"):
                pairs.append((TOKEN_PARAM, events_token(self.events_key, context["room"])))
            if pairs:
                url += ("&" if "?" in url else "?") + urlencode(pairs)
            return url
        return render

    def _own_route(self, item: dict) -> tuple[str, list] | None:
        """(route, query nodes) when `item` redirects to a join or flow route of this policy."""
        redirect = item.get("redirect")
        url = redirect.get("url") if isinstance(redirect, dict) else None
        spec = url.get("$url") if isinstance(url, dict) else None
        if not isinstance(spec, dict) or self.routes.get(spec.get("route", ""), {}).get("kind") not in ("flow", "join"):
            return None
        return spec["route"], [(k, *self.node(v, "query")) for k, v in spec.get("query", {}).items()]

    def actions(self, templates: list) -> Callable[[dict, "Answer", int], list]:
        """An action list as a function; `$join` items splice in the joined room's answer, and a redirect
        to a route of this policy splices in that route's answer (no round trip, and nothing for the PBX
        to refuse: the redirect page says it may refuse URLs that are not Sautikit's)."""
        steps: list[tuple[str, Any]] = []
        for item in templates:
            if "$join" in item:
                steps.append(("join", item["$join"]))
                continue
            constant, value = self.node(item)
            own = self._own_route(item)
            if own is not None:
                steps.append(("inline", (own, constant, value)))
                continue
            steps.append(("const" if constant else "render", value))

        def run(context: dict, answer: "Answer", depth: int) -> list:
            out: list = []
            for kind, value in steps:
                if kind == "const":
                    out.append(value)
                elif kind == "render":
                    out.append(value(context))
                elif kind == "inline":
                    (route, query), constant, redirect = value
                    # Digits keyed at a getDigits before the redirect belong to this step, not the target's.
                    if answer.inlined >= MAX_INLINE or any("getDigits" in a for a in out):
                        out.append(redirect if constant else redirect(context))
                        return out
                    answer.inlined += 1
                    out.extend(self.inline(route, {k: v if c else v(context) for k, c, v in query}, context,
                                           answer, depth))
                    return out  # nothing after a redirect ever runs
                else:
                    out.extend(self.rooms[value["room"]].join(context, answer, value.get("role"), depth + 1))
            return out
        return run

    def inline(self, route: str, query: dict, context: dict, answer: "Answer", depth: int) -> list:
        """What `route` answers a fresh request (no digits) carrying `query`, as the redirect would have fetched."""
        answer.note(f"redirect to {route} answered inline")
        spec = self.routes[route]
        target = {"query": query, "call": {**context["call"], "digits": ""}, "secret": context["secret"]}
        if "now" in context:
            target["now"] = context["now"]
        if spec.get("hours"):
            closed = self.closed(spec["hours"], target, answer, depth + 1)
            if closed is not None:
                return closed
        if spec["kind"] == "flow":
            answer.step = (route, query)
            return self.flows[spec["flow"]].run(target, answer, False)
        return self.rooms[spec["room"]].join(target, answer, spec.get("role"), depth + 1)

    # -- answering -----------------------------------------------------------
    def answer(self, path: str, query: dict, call: dict, *, digits_sent: bool, seats: Seats,
               explain: bool = False, at: float | None = None,
               tries: Callable[[str, str], int] | None = None) -> "Answer":
        """The actions for one voice request on one route, as of `at` (default: the clock); with `explain`,
        also a trace of why.

        `tries(flow, digits)` counts a digit entry at a flow with `tries` and says which entry it is
        (the store's count, runtime/calls.py); only such flows call it."""
        route = self.routes[path]
        answer = Answer(seats=seats, trace=[] if explain else None, at=self.clock() if at is None else at,
                        tries=tries)
        context = {"query": query, "call": call, "secret": self.secrets}
        try:
            if self.uses_now:
                context["now"] = self.now_view(answer.at)
            closed = self.closed(route["hours"], context, answer, 0) if route.get("hours") else None
            if closed is not None:
                answer.actions = closed
                if route["kind"] == "join":  # counted like a closed room (roomc_refusals, reason closed)
                    answer.joins.append((route["room"], "closed"))
            elif route["kind"] == "join":
                answer.actions = self.rooms[route["room"]].join(context, answer, route.get("role"), 0)
            else:
                answer.actions = self.flows[route["flow"]].run(context, answer, digits_sent)
        except RenderError as exc:
            answer.error = str(exc)
            answer.note(f"fallback: {exc}")
            answer.actions = self.fallback(context)
            answer.failed = True
        return answer

    def now_view(self, instant: float) -> dict:
        """`now` for an instant; the view of the last second asked about is reused (templates cannot change it:
        the sandbox is immutable), so a busy line builds it once a second, not once a request."""
        second = instant // 1
        last = self._now
        if last[0] == second:
            return last[1]
        try:
            view = now_view(dt.datetime.fromtimestamp(second, self.zone))
        except (ValueError, OverflowError, OSError):
            raise RenderError(_outside_calendar(instant)) from None
        self._now = (second, view)
        return view

    def closed(self, schedule_id: str, context: dict, answer: "Answer", depth: int) -> list | None:
        """The schedule's closed answer when it is closed at the answer's time, else None (open).

        Precomputed ranges and one zone conversion: no store read, a few microseconds per request.
        """
        schedule = self.hours.get(schedule_id)
        if not isinstance(schedule, Schedule):
            raise RenderError(schedule or f"hours '{schedule_id}' is not in the route table")
        try:
            if answer.trace is not None:
                is_open, why = schedule.explain(answer.at)
                answer.note(why)
            else:
                is_open = schedule.is_open(answer.at)
        except (ValueError, OverflowError, OSError):
            raise RenderError(_outside_calendar(answer.at)) from None
        if is_open:
            return None
        answer.closed = schedule_id
        return self.closed_answers[schedule_id](context, answer, depth)

    def fallback(self, context: dict) -> list:
        """The configured fallback; if even that cannot render, the built-in apology."""
        try:
            return self.fallback_template(context, Answer(), MAX_JOIN_DEPTH)
        except Exception:
            return self.last_resort


@dataclass
class Answer:
    """The actions for one request, and (for `roomc explain`) the reasons behind them."""

    actions: list = field(default_factory=list)
    trace: list[str] | None = None
    seats: Any = None
    room: str | None = None
    role: str | None = None
    failed: bool = False
    error: str | None = None
    # (room definition, admitted|full|bad_name|no_role|closed)
    joins: list[tuple[str, str]] = field(default_factory=list)
    step: tuple[str, dict] | None = None  # the flow route (and query) an inlined redirect reached
    inlined: int = 0
    at: float = 0.0  # the Unix time the answer is for (open hours, `now`)
    closed: str | None = None  # the schedule whose closed actions answered, if one did
    full: set[tuple[str, str]] = field(default_factory=set)  # (room name, pool) found full in this answer
    tries: Any = None  # counts a digit entry at a flow with `tries` (Responder.answer)
    pin: tuple[str, str, str | None] | None = None  # (meeting, digits, which PIN): hashed once per request

    def note(self, line: str) -> None:
        if self.trace is not None:
            self.trace.append(line)


class CompiledRole:
    def __init__(self, responder: Responder, role: dict, room: dict):
        self.id = role["id"]
        self.when_source = role["when"]
        self.when = _condition(role["when"]) if role["when"] else None
        self.counts = role["counts"]
        self.muted = role["muted"]
        self.actions = responder.actions(role["actions"])
        self.when_full = responder.actions(role["whenFull"]) if "whenFull" in role else None
        # The pool this role's seats are counted in (None: not counted), its seats, and the seats held
        # in it for roles that start the room. A table without `pools` (no pools, no held seats, or
        # compiled by an older roomc) counts as before: the room's seats, or the uncounted roles' pool.
        pools = room.get("pools")
        if pools is not None:
            self.pool: str | None = role.get("pool")
            spec = pools.get(self.pool, {}) if self.pool is not None else {}
            self.limit = int(spec.get("seats", 0))
            self.held: dict[str, int] | None = dict(spec.get("held") or {}) or None
        else:
            self.pool = (MAIN_POOL if self.counts else EXTRA_POOL) if room["capacity"] else None
            self.limit = room["capacity"] if self.counts else room["extraSeats"]
            self.held = None


class CompiledRoom:
    def __init__(self, responder: Responder, room_id: str, room: dict):
        self.id = room_id
        self.responder = responder
        # Not checked for emptiness here: join() refuses any invalid name with a spoken message.
        source = room["name"]["$t"] if isinstance(room["name"], dict) else room["name"]
        self.name = _checked("room name", _compiled(source, "room name"), allow_empty=True)
        self.capacity = room["capacity"]
        self.extra_seats = room["extraSeats"]
        self.roles = [CompiledRole(responder, r, room) for r in room["roles"]]
        self.by_id = {r.id: r for r in self.roles}
        self.when_full = responder.actions(room["whenFull"])
        self.hours = room.get("hours")
        self.bad_room = _spoken(BAD_ROOM, room.get("speech"))
        self.no_role = _spoken(NO_ROLE, room.get("speech"))
        self.full_message = _spoken(FULL, room.get("speech"))

    def join(self, context: dict, answer: Answer, fixed_role: str | None, depth: int) -> list:
        if depth > MAX_JOIN_DEPTH:
            raise RenderError(f"joins nested deeper than {MAX_JOIN_DEPTH} (whenFull rooms that send back)")
        if self.hours:
            # Before the name and the seat: a closed room takes no seat and needs no request value.
            closed = self.responder.closed(self.hours, context, answer, depth + 1)
            if closed is not None:
                answer.joins.append((self.id, "closed"))
                return closed
        name = self.name(context)
        if not ROOM_NAME.fullmatch(name):
            answer.note(f"room name {name[:80]!r} is not a valid Sautikit room name (1-64 of A-Z a-z 0-9 . _ -); refused")
            answer.joins.append((self.id, "bad_name"))
            return list(self.bad_room)
        prefix, suffix, exact = self.responder.frame_of[self.id]
        if not exact and len(name) == len(prefix) + len(suffix):
            answer.note(f"room name {name!r} has nothing from the request in it (an empty value); refused")
            return list(self.bad_room)
        owner = self.other_owner(name)
        if owner is not None:
            answer.note(f"room name {name!r} could also be a conference of room '{owner}'; refused, "
                        "so no caller lands in another room's conference (RC213)")
            return list(self.bad_room)
        context = {**context, "room": name}
        role = self.by_id.get(fixed_role) if fixed_role else self._choose(context, answer)
        if role is None:
            answer.note(f"no role of room '{self.id}' matched; refused")
            answer.joins.append((self.id, "no_role"))
            return list(self.no_role)
        context["role"] = role.id
        answer.room, answer.role = name, role.id
        if role.pool is not None:
            if (name, role.pool) in answer.full:
                # An overflow chain came back to a pool already found full: no second store trip, no loop.
                answer.note(f"room {name!r} was already full for this caller (an overflow loop); the built-in "
                            "full message answers")
                answer.joins.append((self.id, "full"))
                return list(self.full_message)
            admitted, why = answer.seats(name, role, role.limit)
            answer.note(why)
            answer.joins.append((self.id, "admitted" if admitted else "full"))
            if not admitted:
                answer.full.add((name, role.pool))
                if role.when_full is not None:
                    return role.when_full(context, answer, depth)
                return self.when_full(context, answer, depth)
        else:
            answer.joins.append((self.id, "admitted"))
        return role.actions(context, answer, depth)

    def other_owner(self, name: str) -> str | None:
        """Another room that can claim `name` at least as specifically as this one (frames: templates.name_frame).

        Names compare case-insensitively: the platform does not document whether it tells case apart (RC213).

        A name belongs to the room with the most specific frame (`bridge-…` over a bare `{{ query.room }}`);
        when two frames are as specific, neither may use it.
        """
        mine = _specificity(self.responder.frame_of[self.id])
        folded = name.lower()  # the name already matched ROOM_NAME: ASCII, so lower() is its case fold
        for room_id, frame, specificity in self.responder.folded_frames:
            if room_id != self.id and specificity >= mine and frame_holds(frame, folded):
                return room_id
        return None

    def _choose(self, context: dict, answer: Answer) -> CompiledRole | None:
        explaining = answer.trace is not None
        for role in self.roles:
            if role.when is None:
                if explaining:
                    answer.note(f"role '{role.id}' chosen: the default (no `when`)")
                return role
            if role.when(context):
                if explaining:
                    answer.note(f"role '{role.id}' chosen: `{role.when_source}` holds")
                return role
            if explaining:
                answer.note(f"role '{role.id}' skipped: `{role.when_source}` does not hold")
        return None


def _specificity(frame: tuple[str, str, bool]) -> float:
    return float("inf") if frame[2] else len(frame[0]) + len(frame[1])


def _folded(frame: tuple[str, str, bool]) -> tuple[str, str, bool]:
    return frame[0].casefold(), frame[1].casefold(), frame[2]


def frame_holds(frame: tuple[str, str, bool], name: str) -> bool:
    """Whether a rendered name fits a room's frame: its exact constant, or its literal prefix and suffix.

    Compares as given: the join guard passes a case-folded frame and a lower-cased name (Responder.folded_frames).
    """
    prefix, suffix, exact = frame
    if exact:
        return name == prefix
    return len(name) >= len(prefix) + len(suffix) and name.startswith(prefix) and name.endswith(suffix)


def _outside_calendar(instant: float) -> str:
    # Only a scenario's clock reaches such an instant (`at: 9998-12-31...` and a long timeline, or inf):
    # the caller hears the fallback with this reason, not a 500 and a traceback.
    return f"the time {instant!r} has no date on the calendar (years 1 to 9999)"


def _reads_now(table: dict) -> bool:
    """Whether any template or condition of the table reads `now`."""
    def walk(node: Any, key: str = "") -> bool:
        if isinstance(node, dict):
            if "$t" in node:
                return reads_now(str(node["$t"]))
            return any(walk(v, k) for k, v in node.items())
        if isinstance(node, list):
            return any(walk(v, key) for v in node)
        return key == "when" and isinstance(node, str) and reads_now(node, True)
    return any(walk(table.get(section) or {}) for section in ("rooms", "flows", "hours", "server"))


def _digits_equal(expected: str) -> Callable[[dict], bool]:
    return lambda context: context["call"]["digits"] == expected


def _digits_match(pattern: re.Pattern) -> Callable[[dict], bool]:
    return lambda context: pattern.fullmatch(context["call"]["digits"]) is not None


class CompiledFlow:
    def __init__(self, responder: Responder, flow_id: str, flow: dict):
        self.id = flow_id
        self.responder = responder
        self.hours = flow.get("hours")
        self.actions = responder.actions(flow["actions"])
        self.otherwise = responder.actions(flow["otherwise"])
        self.tries: int | None = flow.get("tries")
        self.after_last_try = responder.actions(flow.get("afterLastTry") or [])
        self.branches: list[tuple[Callable[[dict, Answer], bool], str, Callable]] = []
        for branch in flow["branches"]:
            matcher: Callable[[dict], bool]
            if branch.get("directory"):
                checks, label = _in_directory(responder, branch)
                self.branches.append((checks, label, responder.actions(branch["actions"])))
                continue
            if branch["digits"] is not None:
                matcher = _digits_equal(branch["digits"])
                label = f"digits == {branch['digits']!r}"
            elif branch["match"] is not None:
                matcher = _digits_match(re.compile(branch["match"]))
                label = f"digits match {branch['match']}"
            else:
                matcher = _condition(branch["when"])
                label = f"`{branch['when']}` holds"
            self.branches.append((_with_answer(matcher), label, responder.actions(branch["actions"])))

    def run(self, context: dict, answer: Answer, digits_sent: bool) -> list:
        if self.hours:
            # Digits that arrive after closing time get the closed answer too, not the next step.
            closed = self.responder.closed(self.hours, context, answer, 0)
            if closed is not None:
                return closed
        if not digits_sent:
            answer.note("no digits in the request: the flow's actions")
            return self.actions(context, answer, 0)
        last = False
        if self.tries:
            # Counted before any branch is tried: past the last try nothing is compared, so keying on
            # (or posting straight to roomc) cannot go on guessing once the tries are used up.
            entry = answer.tries(self.id, context["call"]["digits"]) if answer.tries else 1
            if entry > self.tries:
                answer.note(f"try {entry} of {self.tries}: past the last try, no branch is tried: afterLastTry")
                return self.after_last_try(context, answer, 0)
            answer.note(f"try {entry} of {self.tries}")
            last = entry == self.tries
        for matcher, label, actions in self.branches:
            if matcher(context, answer):
                answer.note(f"branch taken: {label}")
                return actions(context, answer, 0)
        if last:
            answer.note("no branch matched the digits on the last try: afterLastTry")
            return self.after_last_try(context, answer, 0)
        answer.note("no branch matched the digits: otherwise")
        return self.otherwise(context, answer, 0)


def _with_answer(matcher: Callable[[dict], bool]) -> Callable[[dict, "Answer"], bool]:
    return lambda context, answer: matcher(context)


def _in_directory(responder: Responder, branch: dict) -> tuple[Callable[[dict, Answer], bool], str]:
    """A `directory:` branch's matcher and label. The digits are never part of a label or a note."""
    kind = branch["directory"]
    if kind == "meeting":
        def known(context: dict, answer: Answer) -> bool:
            found = responder.directory is not None and responder.directory.has(context["call"]["digits"])
            answer.note(f"digits are {'' if found else 'not '}a meeting number in the directory")
            return found
        return known, "directory: meeting"
    constant, meeting_node = responder.node(branch.get("meeting") or "{{ query.meeting }}", "meeting")

    def pin(context: dict, answer: Answer) -> bool:
        try:
            meeting = meeting_node if constant else meeting_node(context)
        except RenderError as exc:  # no meeting number in the request: no PIN can match
            answer.note(f"no meeting number to check the PIN against ({exc})")
            return False
        digits = context["call"]["digits"]
        if answer.pin is None or answer.pin[:2] != (meeting, digits):
            role = responder.directory.pin_role(meeting, digits) if responder.directory is not None else None
            answer.pin = (meeting, digits, role)
        return answer.pin[2] == kind
    return pin, f"directory: digits are the {'host' if kind == 'hostPin' else 'participant'} PIN of the meeting"
