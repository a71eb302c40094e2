"""Passes 3 and 4: merge the files of one policy, then build the typed IR from the data."""
from __future__ import annotations

import os
from typing import Any

from .diagnostics import Diagnostic, Severity, Span
from .ir import DEFAULT_STATUS_EVENTS, Action, Branch, Directory, Flow, Policy, Pool, Role, Room, Route, Schedule, Server
from .load import SourceFile

SECTIONS = ("server", "defaults", "hours", "directory", "rooms", "flows", "routes")
# Room keys that are not conference parameters (so not merged into the roles' parameters).
ROOM_ONLY = ("name", "roles", "whenFull", "extraSeats", "hours", "pools")
SPEECH_KEYS = ("voice", "language")
ROLE_ONLY = ("when", "say", "actions", "countsTowardCapacity", "pool", "reservedSeats", "whenFull")


def merge(sources: list[SourceFile]) -> tuple[dict, dict, dict, list[Diagnostic]]:
    """Merge files into one document; an id or key defined twice is an error naming both places.

    Linear in the size of the input: each file's spans are copied once.
    """
    merged: dict[str, Any] = {"roomc": 1, "secrets": []}
    spans: dict[tuple, Span] = {}
    key_spans: dict[tuple, Span] = {}
    found: list[Diagnostic] = []
    for source in sources:
        data = source.data if isinstance(source.data, dict) else {}
        if not spans and not key_spans and "secrets" not in data:
            # The first file (often the only one) without secrets: nothing to keep or leave out, copied whole.
            spans.update(source.value_spans)
            key_spans.update(source.key_spans)
        else:
            for path, span in source.value_spans.items():
                if path[:1] != ("secrets",):
                    spans.setdefault(path, span)
            for path, span in source.key_spans.items():
                if path[:1] != ("secrets",):
                    key_spans.setdefault(path, span)
        known_secrets = set(merged["secrets"])
        for index, name in enumerate(data.get("secrets") or []):
            if name not in known_secrets:
                spans[("secrets", len(merged["secrets"]))] = source.span(("secrets", index))
                merged["secrets"].append(name)
                known_secrets.add(name)
        for section in SECTIONS:
            entries = data.get(section)
            if not isinstance(entries, dict):
                continue
            target = merged.setdefault(section, {})
            for key, value in entries.items():
                if key in target and section == "server" and target[key] == value:
                    # Files of one deployment may each name its public URL (so each also works alone).
                    continue
                if key in target:
                    first = key_spans[(section, key)]
                    here = source.key_spans.get((section, key), source.span((section, key)))
                    found.append(Diagnostic(
                        "RC010", Severity.ERROR,
                        f"'{section}.{key}' is defined twice: first at {first.file}:{first.line}:{first.column}",
                        here, (section, key)))
                    continue
                target[key] = value
                # The entry's inner spans came in with the setdefault above: a path under a new entry
                # can only have been set by an earlier file that defined the entry too, and that is RC010.
                spans[(section, key)] = source.span((section, key))
    return merged, spans, key_spans, found


def _action(raw: dict, path: tuple, spans: dict, speech: dict | None = None) -> Action:
    verb, value = next(iter(raw.items()))
    span = spans.get(path + (verb,), spans.get(path, Span()))
    if verb == "say":
        args = {"text": value} if isinstance(value, str) else dict(value)
        # The policy's or room's default voice and language, where the say names none (docs/language.md).
        for key, default in (speech or {}).items():
            args.setdefault(key, default)
    elif verb == "play":
        args = {"url": value} if isinstance(value, str) else dict(value)
    elif verb in ("hangup", "reject"):
        args = dict(value or {})
    elif verb == "redirect":
        if isinstance(value, str):
            args = {"route": value} if value.startswith("/") else {"url": value}
        else:
            args = dict(value)
    elif verb == "join":
        args = {"room": value} if isinstance(value, str) else dict(value)
    else:
        args = dict(value or {})
    nested: tuple[Action, ...] = ()
    if verb == "getDigits":
        items = args.pop("nested", None) or []
        nested = tuple(_action(item, path + (verb, "nested", i), spans, speech) for i, item in enumerate(items))
    return Action(verb, args, span, path + (verb,), nested)


def _actions(raw: Any, path: tuple, spans: dict, speech: dict | None = None) -> tuple[Action, ...]:
    return tuple(_action(item, path + (i,), spans, speech) for i, item in enumerate(raw or []))


def _speech(own: dict, inherited: dict) -> dict:
    """The voice and language a `say` gets when it names none: the owner's own, else the inherited ones."""
    return {k: own.get(k, inherited.get(k)) for k in SPEECH_KEYS if own.get(k, inherited.get(k)) is not None}


def _role(role_id: str, raw: dict, room_params: dict, path: tuple, spans: dict, speech: dict | None = None) -> Role:
    actions = list(_actions(raw.get("actions"), path + ("actions",), spans, speech))
    if raw.get("say") is not None:
        actions.append(_action({"say": raw["say"]}, path, spans, speech))
    params = {**room_params, **{k: v for k, v in raw.items() if k not in ROLE_ONLY}}
    reserved = raw.get("reservedSeats")
    return Role(role_id, raw.get("when"), tuple(actions), bool(raw.get("countsTowardCapacity", True)),
                params, spans.get(path, Span()), path, raw.get("pool"),
                int(reserved) if isinstance(reserved, int) else None,
                _actions(raw.get("whenFull"), path + ("whenFull",), spans, speech))


def build(data: dict, spans: dict, key_spans: dict, files: tuple[str, ...]) -> Policy:
    """Turn merged, schema-valid data into the typed IR."""
    defaults = dict(data.get("defaults") or {})
    defaults.setdefault("statusEvents", list(DEFAULT_STATUS_EVENTS))
    policy_speech = _speech(defaults, {})
    rooms = {}
    for room_id, raw in (data.get("rooms") or {}).items():
        path = ("rooms", room_id)
        params = {**defaults, **{k: v for k, v in raw.items() if k not in ROOM_ONLY}}
        speech = _speech(raw, policy_speech)
        roles = tuple(_role(rid, rraw or {}, params, path + ("roles", rid), spans, speech)
                      for rid, rraw in (raw.get("roles") or {}).items())
        # `extraSeats` (deprecated, RC242) sizes the pool of uncounted roles that name no pool of their own.
        extra = raw.get("extraSeats", 2 if any(not r.counts and r.pool is None for r in roles) else 0)
        pools = {pid: Pool(pid, int(praw.get("seats") or 0),
                           _actions(praw.get("whenFull"), path + ("pools", pid, "whenFull"), spans, speech),
                           spans.get(path + ("pools", pid), Span()), path + ("pools", pid))
                 for pid, praw in (raw.get("pools") or {}).items() if isinstance(praw, dict)}
        rooms[room_id] = Room(room_id, raw["name"], params, roles,
                              _actions(raw.get("whenFull"), path + ("whenFull",), spans, speech), int(extra),
                              spans.get(path, Span()), path, raw.get("hours"), pools)
    flows = {}
    for flow_id, raw in (data.get("flows") or {}).items():
        path = ("flows", flow_id)
        speech = _speech(raw, policy_speech)
        branches = tuple(
            Branch(None if b.get("digits") is None else str(b["digits"]), b.get("match"), b.get("when"),
                   _actions(b.get("actions"), path + ("onDigits", i, "actions"), spans, speech),
                   spans.get(path + ("onDigits", i), Span()), path + ("onDigits", i),
                   b.get("directory"), b.get("meeting"))
            for i, b in enumerate(raw.get("onDigits") or []))
        flows[flow_id] = Flow(flow_id, _actions(raw.get("actions"), path + ("actions",), spans, speech), branches,
                              _actions(raw.get("otherwise"), path + ("otherwise",), spans, speech),
                              spans.get(path, Span()), path, raw.get("hours"), speech, raw.get("tries"),
                              _actions(raw.get("afterLastTry"), path + ("afterLastTry",), spans, speech))
    hours = {}
    for schedule_id, raw in (data.get("hours") or {}).items():
        path = ("hours", schedule_id)
        hours[schedule_id] = Schedule(schedule_id, raw.get("zone", defaults.get("zone")), raw.get("weekly"),
                                      raw.get("closures"),
                                      _actions(raw.get("closed"), path + ("closed",), spans, policy_speech),
                                      spans.get(path, Span()), path)
    routes = {}
    for route_path, raw in (data.get("routes") or {}).items():
        path = ("routes", route_path)
        if raw == "events":
            kind, target, role = "events", None, None
        elif "join" in raw:
            kind, target, role = "join", raw["join"], raw.get("role")
        elif "keys" in raw:
            kind, target, role = "keys", None, None
        else:
            kind, target, role = "flow", raw["flow"], None
        keys = {str(k): str(v) for k, v in raw["keys"].items()} if kind == "keys" else None
        routes[route_path] = Route(route_path, kind, target, role, key_spans.get(path, spans.get(path, Span())), path,
                                   keys, raw.get("hours") if isinstance(raw, dict) else None)
    server_raw = data.get("server") or {}
    server = Server(server_raw.get("publicUrl"), server_raw.get("signatureSecretEnv"),
                    int(server_raw.get("reservationTtl", 60)),
                    _actions(server_raw.get("fallback"), ("server", "fallback"), spans, policy_speech),
                    server_raw.get("eventsSignature"))
    directory = None
    if isinstance(data.get("directory"), dict):
        raw_dir, span = data["directory"], spans.get(("directory",), Span())
        file = raw_dir.get("file")
        if file is not None:
            # Relative to the policy file that names it, written as the sources are (relative to the caller's cwd).
            named_in = spans.get(("directory", "file"), span).file or files[0]
            file = os.path.normpath(os.path.join(os.path.dirname(named_in), file))
        directory = Directory(file, raw_dir.get("fileEnv"), span)
    return Policy(int(data.get("roomc", 1)), server, tuple(data.get("secrets") or ()), rooms, flows, routes,
                  files, dict(data.get("defaults") or {}), hours, directory, spans, key_spans)
