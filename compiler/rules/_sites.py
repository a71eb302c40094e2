"""Walks shared by several rules: every action list, every action, every template string."""
from __future__ import annotations

from typing import Iterator, NamedTuple

from ..ir import Action, Policy

URL_FIELDS = {("play", "url"), ("record", "action"), ("record", "transcribeCallback"), ("redirect", "url"),
              ("dial", "sip")}
CONFERENCE_URL_PARAMS = ("waitUrl", "statusEventsCallbackUrl", "digitsCallbackUrl")


class Site(NamedTuple):
    """One template-bearing string and what its context lacks there (a tuple: made for every string of a policy)."""

    path: tuple
    source: str
    expression: bool
    unavailable: frozenset[str]
    spoken: bool = False


# The last policy walked and its action lists: eight rules and the template sites walk them in a row.
_last_lists: tuple[Policy | None, tuple[tuple[str, tuple[Action, ...], frozenset[str]], ...]] = (None, ())


def action_lists(policy: Policy) -> tuple[tuple[str, tuple[Action, ...], frozenset[str]], ...]:
    """Every action list with its owner and the context names it cannot use (walked once per policy)."""
    global _last_lists
    if _last_lists[0] is not policy:
        _last_lists = (policy, tuple(_walk_action_lists(policy)))
    return _last_lists[1]


def _walk_action_lists(policy: Policy) -> Iterator[tuple[str, tuple[Action, ...], frozenset[str]]]:
    no_room = frozenset({"room", "role"})
    for room in policy.rooms.values():
        for role in room.roles:
            yield f"room '{room.id}' role '{role.id}'", role.actions, frozenset()
        yield f"room '{room.id}' whenFull", room.when_full, frozenset()
    for flow in policy.flows.values():
        yield f"flow '{flow.id}'", flow.actions, no_room
        for branch in flow.branches:
            yield f"flow '{flow.id}' branch", branch.actions, no_room
        yield f"flow '{flow.id}' otherwise", flow.otherwise, no_room
        if flow.after_last_try:
            yield f"flow '{flow.id}' afterLastTry", flow.after_last_try, no_room
    yield "server.fallback", policy.server.fallback, frozenset({"room", "role", "secret"})
    for schedule in policy.hours.values():
        yield f"hours '{schedule.id}' closed", schedule.closed, no_room


def walk_actions(actions: tuple[Action, ...]) -> Iterator[Action]:
    """Actions and the say/play nested in their getDigits."""
    for action in actions:
        yield action
        yield from action.nested


# The last policy walked and its sites: several rules walk the same policy in a row.
_last: tuple[Policy | None, tuple[Site, ...]] = (None, ())


def sites(policy: Policy) -> tuple[Site, ...]:
    """Every string that may hold a template, with what its context lacks there (walked once per policy)."""
    global _last
    if _last[0] is not policy:
        _last = (policy, tuple(_walk_sites(policy)))
    return _last[1]


_NO_ROOM, _NO_ROLE, _ALL = frozenset({"room", "role"}), frozenset({"role"}), frozenset[str]()
_SITE_PARAMS = CONFERENCE_URL_PARAMS + ("flags",)


def _walk_sites(policy: Policy) -> Iterator[Site]:
    for room in policy.rooms.values():
        yield Site(room.path + ("name",), room.name, False, _NO_ROOM)
        for key in _SITE_PARAMS:
            if isinstance(room.params.get(key), str):
                yield Site(room.path + (key,), room.params[key], False, _NO_ROLE)
        for role in room.roles:
            if role.when:
                yield Site(role.path + ("when",), role.when, True, _NO_ROLE)
            for key in _SITE_PARAMS:
                # Only values written on the role itself; inherited ones are checked where they are written.
                if isinstance(role.params.get(key), str) and role.path + (key,) in policy.spans:
                    yield Site(role.path + (key,), role.params[key], False, _ALL)
    for flow in policy.flows.values():
        for branch in flow.branches:
            if branch.when:
                yield Site(branch.path + ("when",), branch.when, True, _NO_ROOM)
            if branch.meeting:
                yield Site(branch.path + ("meeting",), branch.meeting, False, _NO_ROOM)
    for _, actions, unavailable in action_lists(policy):
        for action in walk_actions(actions):
            for key, value in action.args.items():
                if isinstance(value, str):
                    yield Site(action.path + (key,), value, False, unavailable,
                               spoken=(action.verb == "say" and key == "text"))
                elif isinstance(value, dict):
                    for qkey, qvalue in value.items():
                        if isinstance(qvalue, str):
                            yield Site(action.path + (key, qkey), qvalue, False, unavailable)
