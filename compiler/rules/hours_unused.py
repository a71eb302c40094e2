"""RC605 unused-hours: a schedule under `hours` that no room, flow or route names.

It is checked but closes nothing; usually the `hours: office` that should have been on a
route or room was forgotten (or misspelt there, which RC201 reports).

Failing::

    hours:
      office: {zone: Africa/Nairobi, weekly: {mon-fri: "08:00-17:00"}}
    routes:
      /support: {join: support}

Passing::

    hours:
      office: {zone: Africa/Nairobi, weekly: {mon-fri: "08:00-17:00"}}
    routes:
      /support: {join: support, hours: office}
"""
from __future__ import annotations

from typing import Iterator

from ..diagnostics import Diagnostic, Severity
from ..ir import Policy

CODE = "RC605"
NAME = "unused-hours"
SEVERITY = Severity.WARNING


def check(policy: Policy) -> Iterator[Diagnostic]:
    used = {r.hours for r in policy.rooms.values()} | {f.hours for f in policy.flows.values()} \
        | {r.hours for r in policy.routes.values()}
    for schedule in policy.hours.values():
        if schedule.id not in used:
            yield Diagnostic(CODE, SEVERITY, f"hours '{schedule.id}' is never used: name it with `hours: "
                             f"{schedule.id}` on a room, flow or route", policy.key_span(schedule.path), schedule.path)
