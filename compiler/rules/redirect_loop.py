"""RC206 redirect-loop: redirects that come back around without ever waiting for the caller.

Each hop is another webhook round trip; with no getDigits, record, dial or join on the way
the call spins between routes (or repeats a message) until the platform gives up.

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
from ..ir import WAITING_VERBS, Action, Policy

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
                        yield Diagnostic(CODE, SEVERITY,
                                         f"redirect loop that never waits for the caller: {loop}",
                                         action.span, action.path)
                elif target not in seen:
                    seen.add(target)
                    stack.append((target, trail + [target]))
