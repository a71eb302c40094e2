"""RC204 shared-room-name: the room name has no request value in it, so every meeting shares one room.

Sautikit room names are workspace-wide; the platform page warns to make them unique per session.

Failing::

    name: meeting

Passing::

    name: "meeting-{{ query.room }}"
"""
from __future__ import annotations

from typing import Iterator

from ..diagnostics import Diagnostic, Severity
from ..ir import Policy
from ..templates import uses_request

CODE = "RC204"
NAME = "shared-room-name"
SEVERITY = Severity.WARNING


def check(policy: Policy) -> Iterator[Diagnostic]:
    for room in policy.rooms.values():
        if not uses_request(room.name):
            yield Diagnostic(CODE, SEVERITY,
                             f"room '{room.id}' name '{room.name}' has no request value (query or call) in it; "
                             "every meeting on this route would share one Sautikit room",
                             policy.span(room.path + ("name",)), room.path + ("name",))
