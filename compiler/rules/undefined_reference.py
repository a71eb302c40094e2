"""RC201 undefined-reference: a route, redirect, join or `hours:` names something the policy does not define.

Sautikit would call a path roomc does not serve, and the caller would hear silence.

Failing::

    routes:
      /join: {join: meting}        # no room 'meting'

Passing::

    routes:
      /join: {join: meeting}
"""
from __future__ import annotations

import difflib
from typing import Iterable, Iterator

from ..diagnostics import Diagnostic, Severity
from ..ir import Policy
from ._sites import action_lists, walk_actions

CODE = "RC201"
NAME = "undefined-reference"
SEVERITY = Severity.ERROR


def _near(name: object, choices: Iterable[str]) -> str:
    """ "; did you mean 'x'?" for the closest defined id, as unknown keys get."""
    close = difflib.get_close_matches(str(name), sorted(choices), n=1, cutoff=0.7)
    return f"; did you mean '{close[0]}'?" if close else ""


def _roles(policy: Policy, room_id: str | None) -> list[str]:
    return [r.id for r in policy.rooms[room_id].roles] if room_id in policy.rooms else []


def _missing_role(policy: Policy, room_id: str | None, role: str | None) -> bool:
    return role is not None and room_id in policy.rooms and role not in {r.id for r in policy.rooms[room_id].roles}


def check(policy: Policy) -> Iterator[Diagnostic]:
    for route in policy.routes.values():
        if route.kind == "join" and route.target not in policy.rooms:
            yield Diagnostic(CODE, SEVERITY, f"route '{route.path}' joins undefined room '{route.target}'"
                             f"{_near(route.target, policy.rooms)}",
                             policy.span(route.keypath + ("join",)), route.keypath)
        if route.kind == "join" and _missing_role(policy, route.target, route.role):
            yield Diagnostic(CODE, SEVERITY, f"route '{route.path}' names undefined role '{route.role}'"
                             f"{_near(route.role, _roles(policy, route.target))}",
                             policy.span(route.keypath + ("role",)), route.keypath)
        if route.kind == "flow" and route.target not in policy.flows:
            yield Diagnostic(CODE, SEVERITY, f"route '{route.path}' runs undefined flow '{route.target}'"
                             f"{_near(route.target, policy.flows)}",
                             policy.span(route.keypath + ("flow",)), route.keypath)
    named = [(f"route '{r.path}'", r.hours, r.keypath) for r in policy.routes.values()] + \
        [(f"room '{r.id}'", r.hours, r.path) for r in policy.rooms.values()] + \
        [(f"flow '{f.id}'", f.hours, f.path) for f in policy.flows.values()]
    for owner, schedule, path in named:
        if schedule is not None and schedule not in policy.hours:
            yield Diagnostic(CODE, SEVERITY, f"{owner} names undefined hours '{schedule}'{_near(schedule, policy.hours)}",
                             policy.span(path + ("hours",)), path + ("hours",))
    for owner, actions, _ in action_lists(policy):
        for action in walk_actions(actions):
            if action.verb == "redirect" and "route" in action.args and action.args["route"] not in policy.routes:
                yield Diagnostic(CODE, SEVERITY,
                                 f"{owner} redirects to undefined route '{action.args['route']}'"
                                 f"{_near(action.args['route'], policy.routes)}"
                                 " (a route path starts with '/'; an absolute URL starts with https://)",
                                 action.span, action.path)
            if action.verb == "join":
                room_id = action.args["room"]
                if room_id not in policy.rooms:
                    yield Diagnostic(CODE, SEVERITY, f"{owner} joins undefined room '{room_id}'"
                                     f"{_near(room_id, policy.rooms)}", action.span, action.path)
                elif _missing_role(policy, room_id, action.args.get("role")):
                    yield Diagnostic(CODE, SEVERITY, f"{owner} joins undefined role '{action.args['role']}' "
                                     f"of room '{room_id}'{_near(action.args['role'], _roles(policy, room_id))}",
                                     action.span, action.path)
