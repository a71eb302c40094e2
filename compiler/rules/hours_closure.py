"""RC604 bad-closure: a closure that is not a date, or a range of days that ends before it starts.

`2026-02-30`, `christmas`, `2026-12-25T09:00` or `{from: 2026-12-26, to: 2026-12-24}` would close
nothing (or everything); a closure longer than 366 days is refused too: closures are holidays,
and a line that should stay shut loses its route instead.

Failing::

    hours:
      office:
        zone: Africa/Nairobi
        closures:
          - 2026-02-30
          - {from: 2026-12-26, to: 2026-12-24}

Passing::

    hours:
      office:
        zone: Africa/Nairobi
        closures:
          - 2026-02-28
          - {from: 2026-12-24, to: 2026-12-26, name: Christmas}
"""
from __future__ import annotations

from typing import Iterator

from ..diagnostics import Diagnostic, Severity
from ..hours import MAX_CLOSURES, parse_closure
from ..ir import Policy

CODE = "RC604"
NAME = "bad-closure"
SEVERITY = Severity.ERROR


def check(policy: Policy) -> Iterator[Diagnostic]:
    for schedule in policy.hours.values():
        if not isinstance(schedule.closures, list):
            continue
        for index, entry in enumerate(schedule.closures[:MAX_CLOSURES]):
            _, problem = parse_closure(entry)
            if problem:
                path = schedule.path + ("closures", index)
                yield Diagnostic(CODE, SEVERITY, f"hours '{schedule.id}' closure {index + 1}: {problem}",
                                 policy.span(path), path)
