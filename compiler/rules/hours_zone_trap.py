"""RC612 misleading-zone: a zone whose name says something other than what it is.

`Etc/GMT+3` is three hours *behind* UTC: the Etc zones use POSIX signs, the opposite of
ISO 8601's `+03:00`, so an operator in Nairobi who writes it is six hours off. `Factory` is
a placeholder for a machine whose zone was never set, not a place. A city's zone also
follows that city's changes of rules; a fixed offset never does.

Failing::

    defaults:
      zone: Etc/GMT+3

Passing::

    defaults:
      zone: Africa/Nairobi
"""
from __future__ import annotations

import re
from typing import Iterator

from ..diagnostics import Diagnostic, Severity
from ..hours import known_zone
from ..ir import Policy

CODE = "RC612"
NAME = "misleading-zone"
SEVERITY = Severity.WARNING
ETC_OFFSET = re.compile(r"Etc/GMT([+-])([1-9][0-9]?)")


def _problem(name: object) -> str | None:
    if not isinstance(name, str) or not known_zone(name):
        return None  # RC601's
    found = ETC_OFFSET.fullmatch(name)
    if found:
        hours = int(found.group(2))
        behind = found.group(1) == "+"
        return (f"zone '{name}' is {hours} hours {'behind' if behind else 'ahead of'} UTC "
                f"(UTC{'-' if behind else '+'}{hours:02d}:00): Etc zones use POSIX signs, the opposite of +03:00; "
                "name the place instead, e.g. Africa/Nairobi")
    if name == "Factory":
        return "zone 'Factory' is no place: it marks a machine whose zone was never set; name the place, e.g. Africa/Nairobi"
    return None


def check(policy: Policy) -> Iterator[Diagnostic]:
    written = [(("defaults", "zone"), policy.defaults.get("zone"))]
    written += [(s.path + ("zone",), s.zone) for s in policy.hours.values()]
    for path, name in written:
        problem = _problem(name) if path in policy.spans else None
        if problem:
            yield Diagnostic(CODE, SEVERITY, problem, policy.span(path), path)
