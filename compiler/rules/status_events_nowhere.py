"""RC211 status-events-nowhere: a room subscribes to status events but nothing would receive them (a warning; RC212 is the error for recorded rooms).

With no `events` route and no `statusEventsCallbackUrl`, the conference action carries
`statusEvents` and no callback URL: roomc never hears a join, leave or end, so seats are
only freed when reservations lapse and the room's start, end and recording are never known.

Failing::

    rooms:
      support: {name: "support-{{ query.ticket }}", roles: {caller: {}}}
    routes:
      /support/join: {join: support}      # statusEvents default to all six; no events route

Passing::

    routes:
      /support/join: {join: support}
      /support/events: events
"""
from __future__ import annotations

from typing import Iterator

from ..diagnostics import Diagnostic, Severity
from ..ir import Policy

CODE = "RC211"
NAME = "status-events-nowhere"
SEVERITY = Severity.WARNING


def check(policy: Policy) -> Iterator[Diagnostic]:
    if policy.events_route is not None:
        return
    for room in policy.rooms.values():
        if any(r.params.get("statusEvents") and not r.params.get("statusEventsCallbackUrl") for r in room.roles):
            yield Diagnostic(CODE, SEVERITY, f"room '{room.id}' subscribes to status events but the policy has no "
                             "`events` route and the room no statusEventsCallbackUrl: they would go nowhere; add "
                             "a route like `/events: events`", policy.key_span(room.path), room.path)
