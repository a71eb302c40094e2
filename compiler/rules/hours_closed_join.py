"""RC611 closed-join-closed: a schedule's closed actions join a room kept by the same schedule.

Whenever the closed answer is given the room is closed too, so its join answers the closed
actions again, and again, until roomc gives up on the nesting: every caller hears the fallback
apology, never the closed message.

Failing::

    hours:
      office:
        weekly: {mon-fri: "08:00-17:00"}
        closed: [{join: support}]
    rooms:
      support: {name: "support-{{ query.ticket }}", hours: office}

Passing::

    hours:
      office:
        weekly: {mon-fri: "08:00-17:00"}
        closed: [{join: voicemail}]
    rooms:
      support: {name: "support-{{ query.ticket }}", hours: office}
      voicemail: {name: "voicemail-{{ query.ticket }}"}
"""
from __future__ import annotations

from typing import Iterator

from ..diagnostics import Diagnostic, Severity
from ..ir import Policy

CODE = "RC611"
NAME = "closed-join-closed"
SEVERITY = Severity.ERROR


def check(policy: Policy) -> Iterator[Diagnostic]:
    for schedule in policy.hours.values():
        for action in schedule.closed:
            room = policy.rooms.get(str(action.args.get("room"))) if action.verb == "join" else None
            if room is not None and room.hours == schedule.id:
                yield Diagnostic(CODE, SEVERITY, f"hours '{schedule.id}' answers closed callers by joining room "
                                 f"'{room.id}', which keeps the same hours: it is closed then too, so callers get the "
                                 "fallback apology; join an after-hours room or leave the join out",
                                 policy.span(action.path), action.path)
