"""RC610 name-from-clock: a room's name reads `now`.

Each value of the name is a conference of its own, with its own seats: a name from `now.minute`
splits callers a minute apart into different rooms, `now.date` splits a meeting at midnight, and
`maxParticipants` then counts per value, not per line. A time of day belongs in `hours` or a
role's `when`; the name should come from the request.

Failing::

    rooms:
      support:
        name: "support-{{ now.hour }}"

Passing::

    rooms:
      support:
        name: "support-{{ query.ticket }}"
        roles:
          caller: {when: "now.hour < 17"}
"""
from __future__ import annotations

from typing import Iterator

from ..diagnostics import Diagnostic, Severity
from ..ir import Policy
from ..templates import reads_now

CODE = "RC610"
NAME = "name-from-clock"
SEVERITY = Severity.WARNING


def check(policy: Policy) -> Iterator[Diagnostic]:
    for room in policy.rooms.values():
        if isinstance(room.name, str) and reads_now(room.name):
            path = room.path + ("name",)
            yield Diagnostic(CODE, SEVERITY, f"room '{room.id}' takes its name from `now`: each new value is a new "
                             "conference with its own seats, so callers a moment apart (or either side of midnight) "
                             "are split up and maxParticipants counts per value; name the room from the request and "
                             "keep times in `hours` or a role's `when`", policy.span(path), path)
