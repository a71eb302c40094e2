"""RC231 directory-row: a row of the meeting directory cannot be used.

A meeting number or PIN that is not 1-32 of the digits 0-9 can never be keyed (a keypad sends nothing else; `*` and `#` end the entry), so that meeting is unreachable. Also: an unknown or repeated column, a missing column, a PIN YAML read as a number (leading zeros lost), and a name that a spreadsheet would run as a formula (`=cmd`, CSV injection). Findings name the row and column, never the value.

Failing::

    meeting,hostPin,participantPin
    123456,12a4,=cmd

Passing::

    meeting,hostPin,participantPin
    123456,1234,5678
"""
from __future__ import annotations

from typing import Iterator

from ..diagnostics import Diagnostic, Severity
from ..directory import BAD_ROW
from ..ir import Policy
from ._directory_findings import findings

CODE = BAD_ROW
NAME = "directory-row"
SEVERITY = Severity.ERROR


def check(policy: Policy) -> Iterator[Diagnostic]:
    yield from findings(policy, CODE)
