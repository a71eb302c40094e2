"""RC606 always-closed: a schedule whose weekly hours open on no day.

Every caller would hear the closed message. `weekly: {}`, or every day `closed`, is what
this looks like; leave `weekly` out for a line open every day apart from its closures.

Failing::

    hours:
      office:
        zone: Africa/Nairobi
        weekly: {sat-sun: closed}

Passing::

    hours:
      office:
        zone: Africa/Nairobi
        weekly: {mon-fri: "08:00-17:00", sat-sun: closed}
"""
from __future__ import annotations

from typing import Iterator

from ..diagnostics import Diagnostic, Severity
from ..hours import parse_days, ranges_of, weekly_ranges
from ..ir import Policy

CODE = "RC606"
NAME = "always-closed"
SEVERITY = Severity.WARNING


def _all_written_parse(weekly: dict) -> bool:
    """Whether nothing in the weekly entry is broken (broken entries are RC602's; no second finding here)."""
    from ..hours import parse_range

    for key, value in weekly.items():
        if parse_days(key)[1]:
            return False
        if any(parse_range(item)[1] for item in ranges_of(value)):
            return False
    return True


def check(policy: Policy) -> Iterator[Diagnostic]:
    for schedule in policy.hours.values():
        weekly = schedule.weekly
        if not isinstance(weekly, dict) or not _all_written_parse(weekly):
            continue
        if next(weekly_ranges(weekly), None) is None:
            path = schedule.path + ("weekly",)
            yield Diagnostic(CODE, SEVERITY, f"hours '{schedule.id}' is never open: its weekly hours open on no "
                             "day, so every caller hears it closed (leave `weekly` out to be open every day)",
                             policy.key_span(path), path)
