"""RC207 unreachable: a room or flow that no route, redirect or join leads to.

Usually a typo in a route or a leftover; it is compiled and checked but nobody can reach it.

Failing::

    rooms: {old-meeting: ...}     # no route joins it

Passing::

    routes: {/old: {join: old-meeting}}
"""
from __future__ import annotations

from typing import Iterator

from ..diagnostics import Diagnostic, Severity
from ..ir import Policy
from ._sites import action_lists, walk_actions

CODE = "RC207"
NAME = "unreachable"
SEVERITY = Severity.WARNING


def check(policy: Policy) -> Iterator[Diagnostic]:
    rooms = {r.target for r in policy.routes.values() if r.kind == "join"}
    flows = {r.target for r in policy.routes.values() if r.kind == "flow"}
    for _, actions, _ in action_lists(policy):
        rooms.update(a.args["room"] for a in walk_actions(actions) if a.verb == "join")
    for room in policy.rooms.values():
        if room.id not in rooms:
            yield Diagnostic(CODE, SEVERITY, f"room '{room.id}' is not reachable from any route, redirect or join",
                             policy.key_span(room.path), room.path)
    for flow in policy.flows.values():
        if flow.id not in flows:
            yield Diagnostic(CODE, SEVERITY, f"flow '{flow.id}' is not served by any route",
                             policy.key_span(flow.path), flow.path)
