"""RC403 too-many-actions: a response could hold more than Sautikit's 50 actions (MaxActionSteps).

Sautikit refuses the whole response, so the caller hears nothing. Joins are counted as the
runtime expands them (the role's actions plus the conference, or the room's whenFull).

Failing::

    actions: [{say: "1"}, {say: "2"}, ...]   # 51 of them

Passing::

    actions: [{say: "Welcome"}, {join: meeting}]
"""
from __future__ import annotations

from typing import Iterator

from ..diagnostics import Diagnostic, Severity
from ..ir import Action, Policy
from ._sites import action_lists

CODE = "RC403"
NAME = "too-many-actions"
SEVERITY = Severity.ERROR
MAX_ACTIONS = 50


def response_length(policy: Policy, actions: tuple[Action, ...], visiting: frozenset[str] = frozenset()) -> int:
    """The most actions this list can put in one response once joins are expanded."""
    total = 0
    for action in actions:
        if action.verb != "join":
            total += 1
            continue
        room = policy.rooms.get(action.args["room"])
        if room is None or room.id in visiting:
            total += 1
            continue
        inner = visiting | {room.id}
        roles = [r for r in room.roles if r.id == action.args.get("role")] or list(room.roles)
        longest = max([len(r.actions) + 1 for r in roles] + [response_length(policy, room.when_full, inner)])
        if room.hours in policy.hours:  # a closed room answers its schedule's closed actions instead
            longest = max(longest, response_length(policy, policy.hours[room.hours].closed, inner))
        total += longest
    return total


def check(policy: Policy) -> Iterator[Diagnostic]:
    for owner, actions, _ in action_lists(policy):
        count = response_length(policy, actions)
        if count > MAX_ACTIONS and actions:
            path = actions[0].path[:-2]
            yield Diagnostic(CODE, SEVERITY, f"{owner} can answer with {count} actions; Sautikit accepts at most "
                             f"{MAX_ACTIONS}", policy.span(path), path)
