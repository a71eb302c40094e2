"""RC601 unknown-zone: a schedule's time zone is not an IANA zone, or it has none.

Open hours are read on a zone's wall clock; a misspelt zone (or none at all) would leave roomc
guessing the hour. Zones are looked up in the IANA list that ships with roomc (the tzdata
package), never opened as paths, so `../../etc/localtime` is simply unknown.

Failing::

    hours:
      office:
        zone: Africa/Nairob          # no such zone
        weekly: {mon-fri: "08:00-17:00"}

Passing::

    hours:
      office:
        zone: Africa/Nairobi
        weekly: {mon-fri: "08:00-17:00"}
"""
from __future__ import annotations

import difflib
from typing import Iterator

from ..diagnostics import Diagnostic, Severity
from ..hours import known_zone, zone_names
from ..ir import Policy

CODE = "RC601"
NAME = "unknown-zone"
SEVERITY = Severity.ERROR


def _unknown(name: str) -> str:
    close = difflib.get_close_matches(name, sorted(zone_names()), n=1, cutoff=0.8)
    hint = f"; did you mean '{close[0]}'?" if close else " (an IANA name such as Africa/Nairobi or UTC)"
    return f"'{name[:64]}' is not a known time zone{hint}"


def check(policy: Policy) -> Iterator[Diagnostic]:
    default = policy.defaults.get("zone")
    if isinstance(default, str) and not known_zone(default):
        path = ("defaults", "zone")
        yield Diagnostic(CODE, SEVERITY, f"defaults.zone: {_unknown(default)}", policy.span(path), path)
    for schedule in policy.hours.values():
        if schedule.zone is None:
            yield Diagnostic(CODE, SEVERITY, f"hours '{schedule.id}' has no zone: give it `zone:` or set "
                             "`defaults.zone`", policy.key_span(schedule.path), schedule.path)
        elif not known_zone(schedule.zone) and schedule.path + ("zone",) in policy.spans:
            path = schedule.path + ("zone",)
            yield Diagnostic(CODE, SEVERITY, f"hours '{schedule.id}': {_unknown(schedule.zone)}",
                             policy.span(path), path)
