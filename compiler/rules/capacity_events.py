"""RC209 capacity-events: a capped room whose join/leave events cannot reach roomc.

roomc holds seats from the moment it answers and frees them on `leave`/`end`; without
those events a seat is only freed when its reservation expires, so the room looks fuller
than it is.

Failing::

    maxParticipants: 10
    statusEvents: [start, end]     # no join/leave; or no `events` route

Passing::

    maxParticipants: 10
    statusEvents: [start, end, join, leave]
    # and routes: {/conference/events: events}
"""
from __future__ import annotations

from typing import Iterator

from ..diagnostics import Diagnostic, Severity
from ..ir import Policy

CODE = "RC209"
NAME = "capacity-events"
SEVERITY = Severity.WARNING


def check(policy: Policy) -> Iterator[Diagnostic]:
    for room in policy.rooms.values():
        if not room.capacity:
            continue
        path = room.path + ("maxParticipants",)
        if policy.events_route is None and not room.params.get("statusEventsCallbackUrl"):
            yield Diagnostic(CODE, SEVERITY, f"room '{room.id}' has a capacity but the policy has no `events` route "
                             "to receive join/leave events", policy.span(path), path)
            continue
        missing = [e for e in ("join", "leave", "end") if e not in (room.params.get("statusEvents") or [])]
        if missing:
            yield Diagnostic(CODE, SEVERITY, f"room '{room.id}' has a capacity but does not subscribe to "
                             f"{', '.join(missing)}; seats would only free when reservations expire",
                             policy.span(path), path)
