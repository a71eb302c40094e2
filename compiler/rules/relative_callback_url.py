"""RC406 relative-callback-url: a callback URL the platform would get without a host, because the policy has no `server.publicUrl`.

roomc writes links to its own routes (each room's `statusEventsCallbackUrl`, a `redirect` to a
route) under the public URL; without one they go out as `/townhall/events` or `/lobby`, which
the platform cannot call: every join, leave, end and recording URL is lost, and a caller is
dropped at the redirect. A callback written as a bare path (`digitsCallbackUrl: /keys`) is the
same. `ROOMC_PUBLIC_URL` still overrides `server.publicUrl` at run time; `roomc serve` refuses
a table with no public URL unless it is set.

Failing::

    routes:
      /townhall/join: {join: townhall}
      /townhall/events: events      # no server.publicUrl

Passing::

    server: {publicUrl: https://rooms.example.com}
    routes:
      /townhall/join: {join: townhall}
      /townhall/events: events
"""
from __future__ import annotations

from typing import Iterator

from ..diagnostics import Diagnostic, Severity
from ..ir import Policy
from ._sites import CONFERENCE_URL_PARAMS, URL_FIELDS, action_lists, walk_actions

CODE = "RC406"
NAME = "relative-callback-url"
SEVERITY = Severity.ERROR
CALLBACK_PARAMS = tuple(k for k in CONFERENCE_URL_PARAMS if k != "waitUrl")
CALLBACK_FIELDS = {("record", "action"), ("record", "transcribeCallback")} & URL_FIELDS


def _bare_path(value: object) -> bool:
    return isinstance(value, str) and value.startswith("/")


def check(policy: Policy) -> Iterator[Diagnostic]:
    if policy.server.public_url:
        return
    hint = "set server.publicUrl (ROOMC_PUBLIC_URL overrides it at run time)"
    events = policy.events_route
    if events is not None and any(not r.params.get("statusEventsCallbackUrl") for r in policy.rooms.values()):
        route = policy.routes[events]
        yield Diagnostic(CODE, SEVERITY, f"rooms would send their status events to '{events}', a path with no "
                         f"host the platform cannot call; {hint}", policy.key_span(route.keypath), route.keypath)
    keys_users = sorted({str(policy.keys_route_for(room)) for room in policy.rooms.values() for role in room.roles
                         if role.params.get("collectDigits") is True and role.params.get("digitsCallbackUrl") is None
                         and policy.keys_route_for(room)})
    for keys_path in keys_users:
        route = policy.routes[keys_path]
        yield Diagnostic(CODE, SEVERITY, f"rooms would send their in-room keys to '{keys_path}', a path with no host the "
                         f"platform cannot call; {hint}", policy.key_span(route.keypath), route.keypath)
    for room in policy.rooms.values():
        owners: list[tuple[tuple, dict]] = [(room.path, room.params)] + [(r.path, r.params) for r in room.roles]
        for path, params in owners:
            for key in CALLBACK_PARAMS:
                if path + (key,) in policy.spans and _bare_path(params.get(key)):
                    yield Diagnostic(CODE, SEVERITY, f"{key} '{params[key]}' has no host; {hint}",
                                     policy.span(path + (key,)), path + (key,))
    for _, actions, _ in action_lists(policy):
        for action in walk_actions(actions):
            if action.verb == "redirect" and "route" in action.args:
                yield Diagnostic(CODE, SEVERITY, f"redirect to '{action.args['route']}' would be emitted with no host "
                                 f"when roomc cannot answer it inline; {hint}", action.span, action.path)
            for verb, key in CALLBACK_FIELDS:
                if action.verb == verb and _bare_path(action.args.get(key)):
                    yield Diagnostic(CODE, SEVERITY, f"{verb}.{key} '{action.args[key]}' has no host; {hint}",
                                     policy.span(action.path + (key,)), action.path + (key,))
