"""RC234 directory-undeclared: a branch checks the meeting directory, but the policy names none.

The branch could never match: every caller would get `otherwise`, however right their PIN.

Failing::

    flows:
      pin:
        onDigits:
          - {directory: hostPin, actions: [...]}
    # and no top-level `directory:`

Passing::

    directory: {file: meetings.csv}
"""
from __future__ import annotations

from typing import Iterator

from ..diagnostics import Diagnostic, Severity
from ..ir import Policy

CODE = "RC234"
NAME = "directory-undeclared"
SEVERITY = Severity.ERROR


def check(policy: Policy) -> Iterator[Diagnostic]:
    if policy.directory is not None:
        return
    for flow in policy.flows.values():
        for branch in flow.branches:
            if branch.directory:
                yield Diagnostic(CODE, SEVERITY, f"this branch checks the meeting directory ({branch.directory}), but "
                                 "the policy has no `directory:`", policy.span(branch.path + ("directory",)),
                                 branch.path + ("directory",), "add `directory: {file: meetings.csv}` at the top level")
