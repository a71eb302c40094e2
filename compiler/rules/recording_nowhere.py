"""RC212 recording-nowhere: a recorded room whose recording URL could never reach roomc.

The recording URL arrives with the room's `end` status event; a recorded room with no
`events` route and no `statusEventsCallbackUrl` records every meeting and loses every
recording.

Failing::

    rooms:
      recorded: {name: "meeting-{{ query.room }}", record: true, roles: {host: {}}}
    routes:
      /recorded/join: {join: recorded}

Passing::

    routes:
      /recorded/join: {join: recorded}
      /recorded/events: events
"""
from __future__ import annotations

from typing import Iterator

from ..diagnostics import Diagnostic, Severity
from ..ir import Policy

CODE = "RC212"
NAME = "recording-nowhere"
SEVERITY = Severity.ERROR


def check(policy: Policy) -> Iterator[Diagnostic]:
    if policy.events_route is not None:
        return
    for room in policy.rooms.values():
        recorded = [r for r in room.roles if r.params.get("record") is True
                    and not r.params.get("statusEventsCallbackUrl")]
        if recorded:
            path = room.path + ("record",) if room.path + ("record",) in policy.spans else recorded[0].path
            yield Diagnostic(CODE, SEVERITY, f"room '{room.id}' is recorded but its recording URL could never reach "
                             "roomc (no `events` route, no statusEventsCallbackUrl): every recording would be lost",
                             policy.span(path), path)
