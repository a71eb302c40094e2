"""RC224 keys-without-join-events: a room sends in-room keys to a keys route but does not subscribe to join or leave.

`GET /rooms/<name>` and the live page list a raised hand (or an operator request) only while its
caller is in the room, and roomc knows who is in the room from the `join` and `leave` status
events. Without `join`, a caller's seat is only a reservation that lapses about a minute after
the answer, and every hand raised after that is never shown; without `leave`, a caller who hung
up keeps their hand raised and their operator request open for good.

Failing::

    rooms:
      townhall:
        name: "townhall-{{ query.room }}"
        collectDigits: true
        numDigits: 1
        statusEvents: [start, end]    # no join or leave: hands never show
        roles: {guest: {}}
    routes:
      /townhall/join: {join: townhall}
      /townhall/keys: {keys: {"1": raiseHand}}
      /townhall/events: events

Passing::

    rooms:
      townhall:
        name: "townhall-{{ query.room }}"
        collectDigits: true
        numDigits: 1
        statusEvents: [start, end, join, leave]
        roles: {guest: {}}
    routes:
      /townhall/join: {join: townhall}
      /townhall/keys: {keys: {"1": raiseHand}}
      /townhall/events: events
"""
from __future__ import annotations

from typing import Iterator

from ..diagnostics import Diagnostic, Severity
from ..ir import Policy
from ._keys import Sender

CODE = "RC224"
NAME = "keys-without-join-events"
SEVERITY = Severity.WARNING


def check(policy: Policy) -> Iterator[Diagnostic]:
    keys_routes = {r.path for r in policy.routes.values() if r.kind == "keys"}
    reported: set[tuple] = set()
    for room in policy.rooms.values():
        for role in room.roles:  # each role: its statusEvents may differ from its room's
            params = role.params
            if params.get("collectDigits") is not True:
                continue
            sender = Sender(room, True, policy.digits_url(params, room), False, 0, None)
            route = sender.route(policy)
            if route not in keys_routes:
                continue
            # Like the conference it emits: the role's statusEvents, else its room's (defaults filled in).
            missing = [name for name in ("join", "leave") if name not in (params.get("statusEvents") or [])]
            path = sender.where(policy, "statusEvents", role.path)
            if not missing or path in reported:
                continue
            reported.add(path)
            effect = ("hands raised after the caller's seat reservation lapses (about a minute) are never shown"
                      if "join" in missing else "a caller who leaves keeps their hand raised until the room ends")
            yield Diagnostic(CODE, SEVERITY, f"room '{room.id}' sends in-room keys to '{route}' but does not subscribe "
                             f"to {' or '.join(missing)}: {effect}; add them to statusEvents", policy.span(path), path)
