"""RC609 now-without-zone: a template reads `now` but the policy names no `defaults.zone`.

`now` is the wall clock in the policy's zone; without one it is UTC, three hours off in
Nairobi, and a `when: "now.hour < 17"` closes the line at 20:00 local time.

Failing::

    rooms:
      support:
        name: "support-{{ query.ticket }}"
        roles:
          caller: {when: "now.hour < 17"}

Passing::

    defaults:
      zone: Africa/Nairobi
    rooms:
      support:
        name: "support-{{ query.ticket }}"
        roles:
          caller: {when: "now.hour < 17"}
"""
from __future__ import annotations

from typing import Iterator

from ..diagnostics import Diagnostic, Severity
from ..ir import Policy
from ..templates import reads_now
from ._sites import sites

CODE = "RC609"
NAME = "now-without-zone"
SEVERITY = Severity.WARNING


def check(policy: Policy) -> Iterator[Diagnostic]:
    if isinstance(policy.defaults.get("zone"), str):
        return
    for site in sites(policy):
        if reads_now(site.source, site.expression):
            yield Diagnostic(CODE, SEVERITY, "this template reads `now`, which is UTC without `defaults.zone`; "
                             "set `defaults.zone` (e.g. Africa/Nairobi)", policy.span(site.path), site.path)
            return  # once per policy: the fix is one line
