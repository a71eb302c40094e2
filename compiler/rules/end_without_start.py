"""RC203 end-without-start: `endOnExit: true` on a role that cannot start the room.

A caller who only waits (startOnEnter: false) can end everyone's meeting by hanging up
while on hold; that is rarely intended.

Failing::

    participant: {startOnEnter: false, endOnExit: true}

Passing::

    host: {startOnEnter: true, endOnExit: true}
"""
from __future__ import annotations

from typing import Iterator

from ..diagnostics import Diagnostic, Severity
from ..ir import Policy

CODE = "RC203"
NAME = "end-without-start"
SEVERITY = Severity.WARNING


def check(policy: Policy) -> Iterator[Diagnostic]:
    for room in policy.rooms.values():
        for role in room.roles:
            if room.end_on_exit(role) and not room.start_on_enter(role):
                yield Diagnostic(CODE, SEVERITY,
                                 f"role '{role.id}' of room '{room.id}' ends the room on exit but cannot start it",
                                 policy.span(role.path + ("endOnExit",)), role.path + ("endOnExit",))
