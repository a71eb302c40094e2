"""RC208 status-event-name: a `statusEvents` entry Sautikit does not send.

Documented names are start, end, join, leave, mute and unmute; a typo silently subscribes to nothing.

Failing::

    statusEvents: [start, joined]

Passing::

    statusEvents: [start, join]
"""
from __future__ import annotations

import difflib
from typing import Iterator

from ..diagnostics import Diagnostic, Severity
from ..ir import STATUS_EVENTS, Policy

CODE = "RC208"
NAME = "status-event-name"
SEVERITY = Severity.ERROR


def _declared(policy: Policy) -> Iterator[tuple[tuple, list]]:
    """Each statusEvents list as written (not as merged), with its path."""
    yield ("defaults", "statusEvents"), policy.defaults.get("statusEvents") or []
    for room in policy.rooms.values():
        if room.path + ("statusEvents", 0) in policy.spans:
            yield room.path + ("statusEvents",), room.params.get("statusEvents") or []
        for role in room.roles:
            if role.path + ("statusEvents", 0) in policy.spans:
                yield role.path + ("statusEvents",), role.params.get("statusEvents") or []


def check(policy: Policy) -> Iterator[Diagnostic]:
    for path, events in _declared(policy):
        for index, name in enumerate(events):
            if isinstance(name, str) and name not in STATUS_EVENTS:
                near = difflib.get_close_matches(name, STATUS_EVENTS, n=1)
                hint = f"did you mean '{near[0]}'?" if near else f"known: {' '.join(STATUS_EVENTS)}"
                yield Diagnostic(CODE, SEVERITY, f"unknown status event '{name}'",
                                 policy.span(path + (index,)), path + (index,), hint)
