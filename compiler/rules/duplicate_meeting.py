"""RC232 duplicate-meeting: a meeting number is listed twice in the directory.

Which row's PINs would hold would depend on row order: one of the two hosts is locked out.

Failing::

    meeting,hostPin,participantPin
    123456,1234,5678
    123456,4321,8765

Passing::

    meeting,hostPin,participantPin
    123456,1234,5678
    654321,4321,8765
"""
from __future__ import annotations

from typing import Iterator

from ..diagnostics import Diagnostic, Severity
from ..directory import DUPLICATE
from ..ir import Policy
from ._directory_findings import findings

CODE = DUPLICATE
NAME = "duplicate-meeting"
SEVERITY = Severity.ERROR


def check(policy: Policy) -> Iterator[Diagnostic]:
    yield from findings(policy, CODE)
