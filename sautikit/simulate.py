"""`roomc simulate`: a scenario of callers run through the local platform and the real runtime.

The runtime is the real app (`create_app`) on a loopback port with its own SQLite store (or
the store `db` names: a SQLite path or a PostgreSQL URL);
the platform is the engine with a virtual clock, so an hour-long meeting takes as long as
its webhooks do. Scenario format: docs/simulate.md.
"""
from __future__ import annotations

import functools
import tempfile
import time
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping
from urllib.parse import urlencode

import yaml

from roomc.compiler import pipeline
from roomc.runtime import Settings, create_app
from roomc.runtime.storage import open_store

from .engine import Platform, ScaledClock, VirtualClock
from .local_server import report
from .readings import Readings

SECRET = b"roomc-simulate-secret"


class ScenarioError(Exception):
    """A scenario that cannot run, with a message for the user."""


@dataclass
class Outcome:
    report: dict
    rooms: dict[str, Any]  # what the runtime's store says about each room afterwards


def _load(path: Path) -> dict:
    try:
        scenario = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ScenarioError(f"{path}: {exc}") from None
    if not isinstance(scenario, dict) or not isinstance(scenario.get("calls"), list) or "policy" not in scenario:
        raise ScenarioError(f"{path}: a scenario needs `policy` and a list of `calls` (docs/simulate.md)")
    return scenario


def platform_section(scenario: dict, overrides: Mapping[str, Any] | None = None) -> tuple[Readings, dict]:
    """The scenario's `platform:` readings (with `overrides` on top) and its number routing (`events_url`)."""
    section = scenario.get("platform") or {}
    if not isinstance(section, dict):
        raise ScenarioError("`platform` must be a mapping of switch: value (docs/simulate.md)")
    merged = {**section, **(overrides or {})}
    routing = {key: merged.pop(key) for key in ("events_url",) if key in merged}
    try:
        return Readings.from_mapping(merged), routing
    except ValueError as exc:
        raise ScenarioError(str(exc)) from None


def _epoch(scenario: dict) -> float:
    """Unix time of simulated second 0. By default a week ago: the runtime takes event times up to 8 days
    old as the sender's (newer than now + 5 min it sets aside), so a simulated day of meetings keeps its times."""
    if "epoch" in scenario:
        return float(scenario["epoch"])
    return float(int(time.time()) - 7 * 24 * 3600)


def _wall_clock(scenario: dict) -> float | None:
    """The scenario's `at:` (the wall-clock instant of simulated second 0, for open hours and `now`) as Unix time."""
    import datetime as dt

    value = scenario.get("at")
    if value is None:
        return None
    try:
        instant = value if isinstance(value, dt.datetime) else dt.datetime.fromisoformat(str(value).strip())
    except ValueError:
        raise ScenarioError(f"`at` takes an ISO 8601 time with an offset, e.g. 2026-12-24T16:58:00+03:00, "
                            f"not {str(value)[:64]!r}") from None
    if instant.tzinfo is None or instant.utcoffset() is None:
        raise ScenarioError(f"`at: {value}` has no offset: add one (+03:00, Z) so it names one instant")
    if not 1970 <= instant.year <= 9998:
        raise ScenarioError(f"`at: {value}` is outside the years 1970 to 9998")
    return instant.timestamp()


def run(path: str | Path, *, realtime: bool = False, rounding: str | None = None,
        platform: Mapping[str, Any] | None = None, db: str | None = None) -> Outcome:
    """Run one scenario file and return the platform's report and the runtime's rooms (stored in
    `db`, a SQLite path or PostgreSQL URL; default a new SQLite file).

    `platform` overrides the scenario's `platform:` switches (how the local Sautikit reads each
    open question), so one scenario can be run under every reading.
    """
    from werkzeug.serving import make_server

    import logging

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # the runtime's access log is not the timeline
    path = Path(path)
    scenario = _load(path)
    readings, routing = platform_section(scenario, platform)
    wall = _wall_clock(scenario)
    compilation = pipeline.run([str((path.parent / scenario["policy"]).resolve())])
    if compilation.table is None:
        problems = "; ".join(f"{d.span.file}:{d.span.line}: {d.message}" for d in compilation.diagnostics[:5])
        raise ScenarioError(f"the policy does not compile: {problems}")
    if db is None:
        db = str(Path(tempfile.mkdtemp(prefix="roomc-simulate-")) / "roomc.db")
    store = open_store(db)
    # The app's callback URLs need the port, and the port is known once the socket is bound.
    served: dict[str, Any] = {}
    start = wall if wall is not None else _epoch(scenario)

    def scenario_clock() -> float:
        # Open hours and `now` follow the simulation: second t of the scenario is `at` (else the epoch) + t.
        engine = served.get("engine")
        return start + (engine.clock.now() if engine is not None else 0.0)
    server = make_server("127.0.0.1", 0, lambda environ, start: served["app"](environ, start), threaded=True)
    serving = threading.Thread(target=server.serve_forever, daemon=True)
    base = f"http://127.0.0.1:{server.server_port}"
    try:
        served["app"] = create_app(compilation.table, store=store, settings=Settings(
            public_url=base, signing_secret=SECRET,
            secrets={k: str(v) for k, v in (scenario.get("secrets") or {}).items()}, clock=scenario_clock))
        serving.start()
        events_url = routing.get("events_url")
        if events_url and str(events_url).startswith("/"):
            events_url = base + str(events_url)  # a route of the policy, on the runtime being simulated
        engine = Platform(ScaledClock(1.0) if realtime else VirtualClock(), secret=SECRET,
                          rounding=rounding or scenario.get("billing", "per-second"),
                          recording_base="https://recordings.sautikit.local", epoch=_epoch(scenario),
                          readings=readings, events_url=events_url)
        served["engine"] = engine
        number = str(scenario.get("number", "+254700000001"))
        for index, call in enumerate(scenario["calls"]):
            if not isinstance(call, dict) or "route" not in call:
                raise ScenarioError(f"call {index + 1}: needs at least `route`")
            if call["route"] not in compilation.table["routes"]:
                raise ScenarioError(f"call {index + 1}: no route {call['route']!r} in the policy")
            query = {k: str(v) for k, v in (call.get("query") or {}).items()}
            url = base + call["route"] + ("?" + urlencode(query) if query else "")
            direction = call.get("direction", "outbound")
            engine.place_call(local=number, remote=str(call.get("number", f"+2547330{index:05d}")), url=url,
                              direction=direction, label=str(call.get("name", f"caller-{index + 1}")),
                              digits=[str(d) for d in call.get("digits") or []],
                              hangup_after=call.get("hangupAfter"), when=float(call.get("at", 0)),
                              room_keys=_room_keys(call, index))
        snapshots: list[dict] = []
        for index, look in enumerate(scenario.get("snapshots") or []):
            if not isinstance(look, dict) or "room" not in look or not isinstance(look.get("at"), (int, float)):
                raise ScenarioError(f"snapshot {index + 1}: needs `at` (seconds) and `room` (a room name)")
            engine.at(float(look["at"]), functools.partial(_take_snapshot, snapshots, engine, store, float(look["at"]),
                                                           str(look["room"])))
        engine.run_until_idle()
        names = sorted({e.room for e in engine.timeline if e.room})
        rooms = {name: store.room(name) for name in names}
    finally:
        # Whatever failed, nothing is left listening or open: the socket, the server thread, the store.
        if serving.is_alive():
            server.shutdown()
        server.server_close()
        store.close()
    clock_start = {} if wall is None else {"at": _iso(wall, scenario.get("at"))}
    return Outcome({**report(engine), "platform": readings.as_dict(), "snapshots": snapshots, **clock_start}, rooms)


def _take_snapshot(into: list, engine: Platform, store: Any, at: float, name: str) -> None:
    into.append(_snapshot(engine, store, at, name))


def _snapshot(engine: Platform, store: Any, at: float, name: str) -> dict:
    """The runtime's view of a room at a moment of the scenario (GET /rooms/<name>), callers named."""
    view = store.room(name)
    for entry in (view or {}).get("handsRaised", []) + (view or {}).get("operatorRequested", []):
        leg = engine.legs.get(entry["callId"])
        entry["who"] = leg.label if leg else entry["callId"]
    return {"at": at, "room": name, "view": view}


def _room_keys(call: dict, index: int) -> list[tuple[float, str]]:
    """A call's in-room key presses: `keys: [{after: seconds in the room, digits: "1"}]`."""
    out = []
    for press in call.get("keys") or []:
        if not isinstance(press, dict) or not isinstance(press.get("after"), (int, float)) or "digits" not in press:
            raise ScenarioError(f"call {index + 1}: each of `keys` needs `after` (seconds in the room) and `digits`")
        out.append((float(press["after"]), str(press["digits"])))
    return out


def _iso(instant: float, written: Any) -> str:
    """The scenario's start instant in the offset it was written with."""
    import datetime as dt

    given = written if isinstance(written, dt.datetime) else dt.datetime.fromisoformat(str(written).strip())
    return dt.datetime.fromtimestamp(instant, given.tzinfo).isoformat(timespec="seconds")


def clock(seconds: float) -> str:
    whole = int(round(seconds))
    return f"{whole // 3600:02d}:{whole % 3600 // 60:02d}:{whole % 60:02d}"


def _at(seconds: float | None) -> str:
    return "-" if seconds is None else clock(seconds)


def _disagreement(name: str, room: dict | None, played: list[dict]) -> str | None:
    """Why the runtime's view of a room differs from what the platform played, when it does."""
    started = any(s["startedAt"] is not None for s in played)
    ended = any(s["endedAt"] is not None for s in played)
    stored_started = bool(room and room["started"])
    stored_ended = bool(room and room["ended"])
    if (started, ended) == (stored_started, stored_ended):
        return None
    if not any(s["statusEventsUrl"] for s in played):
        return ("the runtime never heard the room start or end: the policy subscribes no status events, "
                "so the platform sent none")
    acknowledged = sum(s["statusEventsAcknowledged"] for s in played)
    return (f"the runtime acknowledged {acknowledged} status event(s) for {name} but stored no "
            f"{'start' if started and not stored_started else 'end'}: it could not read them")


def render_text(outcome: Outcome) -> str:
    """The timeline, then who waited and how long, the rooms as stored, and the bill."""
    data = outcome.report
    width = max([len(e["who"]) for e in data["timeline"]] + [8])
    lines = [f"(second 0 is {data['at']}: open hours and `now` follow the scenario's clock)"] if data.get("at") else []
    lines += [f"{clock(e['at'])}  {e['who']:<{width}}  {e['what']}" for e in data["timeline"]]
    lines += ["", "Rooms (as the platform played them, then as the runtime stored them):"]
    for session in data["sessions"]:
        lines.append(f"  {session['room']}: started {_at(session['startedAt'])}, ended {_at(session['endedAt'])}, "
                     f"{session['joined']} joined, recording {session['recordingUrl'] or '-'}")
    for name, room in outcome.rooms.items():
        stored = "nothing stored" if room is None else (
            f"{len(room['participants'])} participant(s), started {room['started'] or '-'}, "
            f"ended {room['ended'] or '-'}, recording {room['recordingUrl'] or '-'}")
        lines.append(f"  {name} in the runtime's store: {stored}")
        why = _disagreement(name, room, [s for s in data["sessions"] if s["room"] == name])
        if why:
            lines.append(f"    ({why})")
    for look in data.get("snapshots") or []:
        view = look["view"]
        if view is None:
            lines.append(f"  at {clock(look['at'])} {look['room']}: not in the runtime's store")
            continue
        present = sum(1 for p in view["participants"] if p["leftAt"] is None)
        hands = ", ".join(h["who"] for h in view["handsRaised"]) or "none"
        operator = ", ".join(o["who"] for o in view["operatorRequested"]) or "none"
        lines.append(f"  at {clock(look['at'])} {look['room']} (GET /rooms/{look['room']}): {present} seat(s) held, "
                     f"hands raised: {hands}; operator requested: {operator}")
    lines += ["", f"Bill ({data['rounding']}, outbound KES 3.00/min, inbound free, hold time billed):"]
    for leg in data["legs"]:
        lines.append(f"  {leg['label']:<{width}}  {leg['direction']:<8}  {clock(leg['durationSeconds'])} "
                     f"(held {clock(leg['heldSeconds'])})  KES {leg['costMinor'] / 100:>8.2f}")
    for meeting, minor in data["meetingsMinor"].items():
        lines.append(f"  {'meeting ' + meeting:<{width + 36}}  KES {minor / 100:>8.2f}")
    lines.append(f"  {'total':<{width + 36}}  KES {data['totalMinor'] / 100:>8.2f}")
    return "\n".join(lines) + "\n"
