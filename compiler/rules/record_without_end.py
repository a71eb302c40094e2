"""RC205 record-without-end: `record: true` while the `end` status event is not subscribed.

The recording URL is delivered with the `end` event; without it the recording is never found.

Failing::

    record: true
    statusEvents: [join, leave]

Passing::

    record: true
    statusEvents: [start, end, join, leave]
"""
from __future__ import annotations

from typing import Iterator

from ..diagnostics import Diagnostic, Severity
from ..ir import Policy

CODE = "RC205"
NAME = "record-without-end"
SEVERITY = Severity.ERROR


def check(policy: Policy) -> Iterator[Diagnostic]:
    for room in policy.rooms.values():
        if any(r.params.get("record") is True and "end" not in (r.params.get("statusEvents") or [])
               for r in room.roles):
            yield Diagnostic(CODE, SEVERITY,
                             f"room '{room.id}' is recorded but does not subscribe to the 'end' status event; "
                             "the recording URL would never arrive", policy.span(room.path + ("record",)),
                             room.path + ("record",))
