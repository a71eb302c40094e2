"""RC206 redirect-loop: redirects that come back around without ever waiting for the caller.

Each hop is another webhook round trip; with no getDigits, record, dial or join on the way
the call spins between routes (or repeats a message) until the platform gives up. A full room's
`whenFull` counts too: overflow rooms chained by redirects that lead back spin a caller who finds
them all full (overflow with `join`, which roomc stops at the first full room it revisits).

Failing::

    flows:
      a: {actions: [{redirect: /b}]}
      b: {actions: [{say: Hello}, {redirect: /a}]}

Passing::

    flows:
      a: {actions: [{getDigits: {numDigits: 1}}, {redirect: /a}]}
"""
from __future__ import annotations

from typing import Iterator

from ..diagnostics import Diagnostic, Severity
from ..codegen import when_full
from ..ir import WAITING_VERBS, Action, Policy, Room

CODE = "RC206"
NAME = "redirect-loop"
SEVERITY = Severity.ERROR


def _busy_redirects(actions: tuple[Action, ...]) -> Iterator[Action]:
    """Redirects reached before anything waits for the caller."""
    for action in actions:
        if action.verb in WAITING_VERBS:
            return
        if action.verb == "redirect" and "route" in action.args:
            yield action
            return
        if action.verb == "hangup" or action.verb == "reject":
            return


def _edges(policy: Policy) -> dict[str, list[tuple[str, Action]]]:
    edges: dict[str, list[tuple[str, Action]]] = {}
    for route in policy.routes.values():
        # A redirect arrives without digits, so only a flow's entry `actions` can continue a loop.
        entry = policy.flows[route.target].actions if route.kind == "flow" and route.target in policy.flows else ()
        edges[route.path] = [(a.args["route"], a) for a in _busy_redirects(entry)]
        # While closed, the route (or its room or flow) answers its schedule's closed actions instead.
        target = policy.flows.get(route.target or "") if route.kind == "flow" else \
            policy.rooms.get(route.target or "") if route.kind == "join" else None
        for schedule_id in (route.hours, getattr(target, "hours", None)):
            if schedule_id in policy.hours:
                edges[route.path] += [(a.args["route"], a) for a in _busy_redirects(policy.hours[schedule_id].closed)]
        # While full, each role answers its whenFull (its own, its pool's or the room's): overflow rooms
        # chained by redirects that lead back send a caller who finds them all full round them for ever.
        if route.kind == "join" and isinstance(target, Room):
            for role in target.roles:
                if route.role in (None, role.id):
                    edges[route.path] += [(a.args["route"], a) for a in _busy_redirects(when_full(target, role)[0])]
    return edges


def check(policy: Policy) -> Iterator[Diagnostic]:
    edges = _edges(policy)
    reported: set[tuple] = set()
    for start in sorted(edges):
        stack = [(start, [start])]
        seen = set()
        while stack:
            node, trail = stack.pop()
            for target, action in edges.get(node, []):
                if target == start:
                    loop = " -> ".join(trail + [start])
                    if action.path not in reported:
                        reported.add(action.path)
                        why = (" when every room on the way is full (overflow rooms that lead back)"
                               if "whenFull" in action.path else "")
                        yield Diagnostic(CODE, SEVERITY,
                                         f"redirect loop that never waits for the caller{why}: {loop}",
                                         action.span, action.path)
                elif target not in seen:
                    seen.add(target)
                    stack.append((target, trail + [target]))
