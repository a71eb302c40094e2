"""RC233 same-pin: a meeting's host PIN equals its participant PIN.

Every participant who keys their PIN would be let in as host (start and end the meeting, unmuted).

Failing::

    meeting,hostPin,participantPin
    123456,1234,1234

Passing::

    meeting,hostPin,participantPin
    123456,1234,5678
"""
from __future__ import annotations

from typing import Iterator

from ..diagnostics import Diagnostic, Severity
from ..directory import SAME_PIN
from ..ir import Policy
from ._directory_findings import findings

CODE = SAME_PIN
NAME = "same-pin"
SEVERITY = Severity.ERROR


def check(policy: Policy) -> Iterator[Diagnostic]:
    yield from findings(policy, CODE)
