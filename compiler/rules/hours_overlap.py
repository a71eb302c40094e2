"""RC603 overlapping-hours: two ranges of one schedule overlap on the same day.

Usually a copy-paste slip (`mon-fri` and a `fri` written later with other hours): which of
the two was meant cannot be told, and the line is open for the union of both.

Failing::

    hours:
      office:
        zone: Africa/Nairobi
        weekly:
          mon-fri: "08:00-17:00"
          fri: "08:00-13:00"           # Friday is already 08:00-17:00

Passing::

    hours:
      office:
        zone: Africa/Nairobi
        weekly:
          mon-thu: "08:00-17:00"
          fri: "08:00-13:00"
"""
from __future__ import annotations

from typing import Iterator

from ..diagnostics import Diagnostic, Severity
from ..hours import DAYS, WeeklyRange, minutes_text, weekly_ranges
from ..ir import Policy

CODE = "RC603"
NAME = "overlapping-hours"
SEVERITY = Severity.WARNING


def check(policy: Policy) -> Iterator[Diagnostic]:
    for schedule in policy.hours.values():
        by_day: dict[int, list[WeeklyRange]] = {}
        for found in weekly_ranges(schedule.weekly):
            by_day.setdefault(found.day, []).append(found)
        reported: set[tuple] = set()
        for day, ranges in sorted(by_day.items()):
            ranges.sort(key=lambda r: (r.start, r.end))
            for earlier, later in zip(ranges, ranges[1:], strict=False):
                if later.start >= earlier.end:
                    continue
                where = schedule.path + ("weekly", later.key) + ((later.index,) if later.index is not None else ())
                if (where, earlier.key, earlier.index) in reported:
                    continue  # `mon-fri` against `mon-fri` again: once, not once per day
                reported.add((where, earlier.key, earlier.index))
                yield Diagnostic(CODE, SEVERITY, f"hours '{schedule.id}': {later.key} "
                                 f"{minutes_text(later.start)}-{minutes_text(later.end)} overlaps {earlier.key} "
                                 f"{minutes_text(earlier.start)}-{minutes_text(earlier.end)} on {DAYS[day]}",
                                 policy.span(where), where)
