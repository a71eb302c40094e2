"""RC607 dst-boundary: a range starts or ends at a local time that does not exist, or happens twice, on a DST change.

Hours are read on the zone's wall clock. When clocks jump forward (a gap, e.g. 02:00 to 03:00)
a range starting at 02:30 opens at 03:00 that day; when they go back (a fold) the clock shows
01:00-02:00 twice, and a range starting or ending in that hour follows the clock both times.
roomc handles both (docs/language.md, "Daylight saving"); this finding says the boundary is one
of them, found in the zone's changes from 2020 to 2040 (fixed years, so lint's answer does not
depend on today's date).

Failing::

    hours:
      night:
        zone: Europe/London
        weekly: {sun: "01:30-06:00"}   # 01:30 is skipped in March, repeated in October

Passing::

    hours:
      night:
        zone: Europe/London
        weekly: {sun: "03:00-06:00"}
"""
from __future__ import annotations

import datetime as dt
from typing import Iterator

from ..diagnostics import Diagnostic, Severity
from ..hours import DAYS, dst_troubles, known_zone, minutes_text, weekly_ranges
from ..ir import Policy

CODE = "RC607"
NAME = "dst-boundary"
SEVERITY = Severity.WARNING


def check(policy: Policy) -> Iterator[Diagnostic]:
    for schedule in policy.hours.values():
        if not known_zone(schedule.zone):
            continue
        troubles = dst_troubles(str(schedule.zone))
        if not troubles:
            continue
        reported: set[tuple] = set()
        for found in weekly_ranges(schedule.weekly):
            for boundary, label in ((found.start, "starts"), (found.end, "ends")):
                for kind, first, end, date in troubles:
                    day = dt.date.fromisoformat(date).weekday()
                    if day != found.day or not first <= boundary < end:
                        continue
                    where = schedule.path + ("weekly", found.key) + ((found.index,) if found.index is not None else ())
                    if (where, label, kind) in reported:
                        continue  # the same trouble every year: said once, for its first date
                    reported.add((where, label, kind))
                    if kind == "gap":
                        what = (f"does not exist on {date} ({DAYS[day]}): clocks jump from {minutes_text(first)} to "
                                f"{minutes_text(end)}, so that day the range {label} at {minutes_text(end)}")
                    else:
                        what = (f"happens twice on {date} ({DAYS[day]}): clocks go back from {minutes_text(end)} to "
                                f"{minutes_text(first)}, and the range follows the clock both times")
                    yield Diagnostic(CODE, SEVERITY, f"hours '{schedule.id}' {found.key} {found.text.strip()} {label} "
                                     f"at {minutes_text(boundary)}, which {what} in {schedule.zone}",
                                     policy.span(where), where)
