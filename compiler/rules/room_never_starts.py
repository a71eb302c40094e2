"""RC202 room-never-starts: every role joins with `startOnEnter: false` (written, or muted), so no caller can start the room.

Everyone would sit on hold music forever, and hold time is billed as call time.

Failing::

    roles:
      participant: {startOnEnter: false}

Passing::

    roles:
      host: {when: "query.host == '1'", startOnEnter: true}
      participant: {startOnEnter: false}
"""
from __future__ import annotations

from typing import Iterator

from ..diagnostics import Diagnostic, Severity
from ..ir import Policy

CODE = "RC202"
NAME = "room-never-starts"
SEVERITY = Severity.ERROR


def check(policy: Policy) -> Iterator[Diagnostic]:
    for room in policy.rooms.values():
        # What codegen emits (unset is decided, never left to the PBX): a muted role does not start a room.
        if room.roles and not any(room.start_on_enter(role) for role in room.roles):
            yield Diagnostic(CODE, SEVERITY,
                             f"no role of room '{room.id}' can start it (all join with startOnEnter: false); "
                             "callers would wait on hold forever", policy.key_span(room.path + ("roles",)),
                             room.path + ("roles",))
