"""RC602 bad-hours: a weekly entry names no day, or a range is not a range of times.

A typo such as `thur`, a time such as `25:61`, `24:00` as a start, an empty range (`09:00-09:00`)
or one that ends before it starts (`22:00-06:00`) would silently keep a line closed (or open)
when nobody meant it. A range past midnight is written as two: `22:00-24:00` on one day and
`00:00-06:00` on the next.

Failing::

    hours:
      office:
        zone: Africa/Nairobi
        weekly:
          mon-thur: "08:00-17:00"      # `thur` is not a day
          sat: "22:00-06:00"           # ends before it starts

Passing::

    hours:
      office:
        zone: Africa/Nairobi
        weekly:
          mon-thu: "08:00-17:00"
          sat: "22:00-24:00"
          sun: "00:00-06:00"
"""
from __future__ import annotations

from typing import Iterator

from ..diagnostics import Diagnostic, Severity
from ..hours import CLOSED_WORD, parse_days, parse_range
from ..ir import Policy

CODE = "RC602"
NAME = "bad-hours"
SEVERITY = Severity.ERROR


def check(policy: Policy) -> Iterator[Diagnostic]:
    for schedule in policy.hours.values():
        if not isinstance(schedule.weekly, dict):
            continue
        for key, value in schedule.weekly.items():
            path = schedule.path + ("weekly", key)
            _, problem = parse_days(key)
            if problem:
                yield Diagnostic(CODE, SEVERITY, f"hours '{schedule.id}': {problem}", policy.key_span(path), path)
                continue
            listed = isinstance(value, list)
            for index, item in enumerate(value if listed else [value]):
                if isinstance(item, str) and item.strip().lower() == CLOSED_WORD:
                    continue
                _, problem = parse_range(item)
                if problem:
                    where = path + (index,) if listed else path
                    yield Diagnostic(CODE, SEVERITY, f"hours '{schedule.id}' {key}: {problem}",
                                     policy.span(where), where)
