"""Pass 6, codegen: the IR becomes the route table, action templates in Sautikit's own JSON.

Template strings become `{"$t": source}`; links to this policy's own routes become
`{"$url": {"route": ..., "query": ...}}`, resolved by the runtime against its public URL
(so one compiled table serves staging and production); a `join` inside an action list
becomes `{"$join": {"room": ..., "role": ...}}`, expanded by the runtime with admission.
Everything else is a constant the runtime emits as is.
"""
from __future__ import annotations

from typing import Any

from .hours import DEFAULT_CLOSED_TEXT, compiled as compiled_schedule
from .ir import Action, Policy, Role, Room
from .templates import is_template

FULL_DEFAULT: tuple[dict[str, Any], ...] = ({"say": {"text": "Sorry, this meeting is full. Please try again later."}}, {"hangup": {}})
FALLBACK_DEFAULT: tuple[dict[str, Any], ...] = ({"say": {"text": "Sorry, we could not connect your call. Please try again later."}},
                    {"hangup": {}})
LAST_TRY_DEFAULT: tuple[dict[str, Any], ...] = ({"say": {"text": "Sorry, that was the last try. Goodbye."}}, {"hangup": {}})
DEFAULT_MEETING = "{{ query.meeting }}"  # where a PIN branch finds its meeting number unless it says
# The order conference keys are written in; JSON order does not matter to Sautikit, sorting keeps output stable.
CONFERENCE_KEYS = ("beep", "collectDigits", "digitsCallbackUrl", "endOnExit", "finishOnKey", "flags", "muted",
                   "numDigits", "record", "startOnEnter", "statusEvents", "statusEventsCallbackUrl", "waitUrl")


def _speech(params: dict[str, Any]) -> dict[str, str]:
    return {k: params[k] for k in ("voice", "language") if isinstance(params.get(k), str)}


def spoken(defaults: tuple[dict[str, Any], ...], params: dict[str, Any]) -> list[dict[str, Any]]:
    """Built-in answers with the policy's or room's default voice and language on their `say`s."""
    speech = _speech(params)
    return [{"say": {**item["say"], **speech}} if "say" in item and speech else item for item in defaults]


def value(text: Any) -> Any:
    """A string as a constant, or marked as a template when it has template syntax."""
    return {"$t": text} if is_template(text) else text


def _redirect(args: dict) -> dict:
    out: dict[str, Any] = {}
    query = {k: value(str(v)) for k, v in sorted((args.get("query") or {}).items())}
    if "route" in args:
        out["url"] = {"$url": {"route": args["route"], "query": query}}
    elif query:
        out["url"] = {"$url": {"base": value(args["url"]), "query": query}}
    else:
        out["url"] = value(args["url"])
    if "method" in args:
        out["method"] = args["method"]
    return {"redirect": out}


def action(node: Action) -> dict:
    """One IR action as its template."""
    if node.verb == "redirect":
        return _redirect(node.args)
    if node.verb == "join":
        return {"$join": {"room": node.args["room"], "role": node.args.get("role")}}
    args = {k: value(v) if isinstance(v, str) else v for k, v in node.args.items()}
    if node.verb == "getDigits" and node.nested:
        args["nested"] = [action(n) for n in node.nested]
    return {node.verb: args}


def actions(nodes: tuple[Action, ...]) -> list[dict]:
    """An action list as templates."""
    return [action(n) for n in nodes]


def conference(policy: Policy, room: Room, role: Role) -> dict:
    """The conference verb a role joins with."""
    params = role.params
    out: dict[str, Any] = {"name": {"$t": "{{ room }}"}}
    for key in CONFERENCE_KEYS:
        if key not in params:
            continue
        raw = params[key]
        out[key] = " ".join(raw) if key == "statusEvents" else value(raw) if isinstance(raw, str) else raw
    # Never left to the PBX: the SDK and the docs disagree on what unset means (docs/language.md).
    out["startOnEnter"] = room.start_on_enter(role)
    out["endOnExit"] = room.end_on_exit(role)
    digits = policy.digits_url(params, room)
    keys_route = policy.routes.get(digits) if isinstance(digits, str) else None
    if keys_route is not None and keys_route.kind == "keys":
        # Under the public URL, naming the room (the DigitsCollected body may not: docs/runtime.md).
        out["digitsCallbackUrl"] = {"$url": {"route": keys_route.path, "query": {"room": {"$t": "{{ room }}"}}}}
    events_route = policy.events_route_for(room)
    if "statusEventsCallbackUrl" not in out and events_route:
        out["statusEventsCallbackUrl"] = {"$url": {"route": events_route, "query": {}}}
    total = room.seat_total
    if total:
        # Every pool's seats (uncounted roles' and named pools' on top of the room's own), so the
        # platform never stalls a caller roomc admitted.
        out["maxParticipants"] = total
    return {"conference": dict(sorted(out.items()))}


def sends_away(nodes: tuple[Action, ...]) -> bool:
    """Whether a whenFull could take the caller to another room (a `join`, or a `redirect` that may lead to one)."""
    return any(n.verb in ("join", "redirect") for n in nodes)


def when_full(room: Room, role: Role) -> tuple[tuple[Action, ...], str]:
    """The whenFull a role's caller hears, and whose it is: the role's own, else its pool's, else the room's.

    A role that starts the room is never sent away from it by the pool's or room's overflow: it hears
    the built-in "full" message instead (docs/language.md, "Seats").
    """
    if role.when_full:
        return role.when_full, "role"
    pool = room.pools.get(role.pool) if role.pool else None
    found, whose = (pool.when_full, "pool") if pool and pool.when_full else (room.when_full, "room")
    if room.starts(role) and sends_away(found):
        return (), "host"
    return found, whose


def _seats(room: Room) -> dict:
    """The pools of a room that uses pools or held seats; nothing for one that does not (the table stays as it was)."""
    if not room.pools and not room.held_by_pool:
        return {}
    keys = sorted({key for key in map(room.pool_key, room.roles) if key is not None} | set(room.pools))
    return {"pools": {key: {"seats": room.limit(key), "held": dict(sorted(room.held_by_pool.get(key, {}).items()))}
                      for key in keys}}


def _role(policy: Policy, room: Room, role: Role, seats: dict) -> dict:
    out: dict[str, Any] = {
        "id": role.id,
        "when": role.when,
        "counts": role.counts and role.pool is None,  # takes one of the room's own seats
        "muted": bool(role.params.get("muted", False)),
        "actions": actions(role.actions) + [conference(policy, room, role)],
    }
    if seats:
        out["pool"] = room.pool_key(role)
    full, whose = when_full(room, role)
    if whose != "room":
        out["whenFull"] = actions(full) if full else spoken(FULL_DEFAULT, room.params)
    return out


def _room(policy: Policy, room: Room) -> dict:
    seats = _seats(room)
    return {
        "name": value(room.name),
        "capacity": room.capacity,
        "extraSeats": room.extra_seats,
        **seats,
        "roles": [_role(policy, room, role, seats) for role in room.roles],
        "whenFull": actions(room.when_full) if room.when_full else spoken(FULL_DEFAULT, room.params),
        # Only when written, so tables of rooms without hours stay as they were.
        **({"hours": room.hours} if room.hours else {}),
        # The runtime's own messages for this room (an invalid name, no role) are spoken with it too.
        **({"speech": _speech(room.params)} if _speech(room.params) else {}),
    }


def _branch(branch) -> dict:
    out: dict[str, Any] = {"digits": branch.digits, "match": branch.match, "when": branch.when}
    if branch.directory:
        out["directory"] = branch.directory
        if branch.directory != "meeting":
            out["meeting"] = value(branch.meeting or DEFAULT_MEETING)
    out["actions"] = actions(branch.actions)
    return out


def _flow(flow) -> dict:
    out = {
        "actions": actions(flow.actions),
        "branches": [_branch(b) for b in flow.branches],
        # No `otherwise`: ask again, which is what a caller who mistyped expects.
        "otherwise": actions(flow.otherwise) if flow.otherwise else actions(flow.actions),
        **({"hours": flow.hours} if flow.hours else {}),
    }
    if flow.tries:
        # Only when written, so tables of flows without a limit stay as they were.
        out["tries"] = flow.tries
        out["afterLastTry"] = actions(flow.after_last_try) if flow.after_last_try else spoken(LAST_TRY_DEFAULT,
                                                                                             flow.speech)
    return out


def _route(route) -> dict:
    out: dict[str, Any] = {"kind": route.kind, "methods": ["GET", "POST"]}
    if route.kind == "join":
        out.update(room=route.target, role=route.role)
    elif route.kind == "flow":
        out["flow"] = route.target
    elif route.kind == "keys":
        out["keys"] = dict(sorted((route.keys or {}).items()))
    if route.hours:
        out["hours"] = route.hours
    return out


CLOSED_DEFAULT: tuple[dict[str, Any], ...] = ({"say": {"text": DEFAULT_CLOSED_TEXT}}, {"hangup": {}})


def _hours(policy: Policy) -> dict:
    """Each schedule parsed once at compile time, so the runtime only compares numbers."""
    return {sid: {**compiled_schedule(s.zone or "UTC", s.weekly, s.closures),
                  "closed": actions(s.closed) if s.closed else spoken(CLOSED_DEFAULT, policy.defaults)}
            for sid, s in sorted(policy.hours.items())}


def codegen(policy: Policy, *, version: str, digest: str, sources: list[str]) -> dict:
    """The whole route table for a linted policy."""
    return {
        "roomc": version,
        "format": 1,
        "digest": digest,
        "sources": sorted(sources),
        "server": {
            "publicUrl": policy.server.public_url,
            "signatureSecretEnv": policy.server.signature_secret_env,
            "reservationTtl": policy.server.reservation_ttl,
            "fallback": actions(policy.server.fallback) if policy.server.fallback
            else spoken(FALLBACK_DEFAULT, policy.defaults),
            # Only when written, so tables of policies that leave it to the default stay as they were.
            **({"eventsSignature": policy.server.events_signature} if policy.server.events_signature else {}),
        },
        "secrets": sorted(policy.secrets),
        # Where the directory is read at start-up; its PINs never enter the table.
        **({"directory": {"file": policy.directory.file, "fileEnv": policy.directory.file_env}}
           if policy.directory else {}),
        "routes": {path: _route(r) for path, r in sorted(policy.routes.items())},
        "rooms": {rid: _room(policy, r) for rid, r in sorted(policy.rooms.items())},
        "flows": {fid: _flow(f) for fid, f in sorted(policy.flows.items())},
        # Open hours and the zone of `now`: only when written, so other policies' tables stay as they were.
        **({"hours": _hours(policy)} if policy.hours else {}),
        **({"zone": policy.defaults["zone"]} if isinstance(policy.defaults.get("zone"), str) else {}),
        **({"speech": _speech(policy.defaults)} if _speech(policy.defaults) else {}),
    }
