"""RC230 directory-unreadable: the meeting directory file cannot be used as a whole.

`roomc serve` refuses to start with a directory it cannot read, so every caller would be turned away. Missing, not a regular file, not UTF-8, not .csv/.yaml, more than 4 MiB or 100,000 meetings (bounded before it is read), not valid CSV or YAML, or empty. A YAML directory inside a policy folder is this finding too, with none of its lines shown (they hold PINs).

Failing::

    directory: {file: meetings.xlsx}

Passing::

    directory: {file: meetings.csv}   # meeting,hostPin,participantPin
"""
from __future__ import annotations

from typing import Iterator

from ..diagnostics import Diagnostic, Severity
from ..directory import UNREADABLE
from ..ir import Policy
from ._directory_findings import findings

CODE = UNREADABLE
NAME = "directory-unreadable"
SEVERITY = Severity.ERROR


def check(policy: Policy) -> Iterator[Diagnostic]:
    yield from findings(policy, CODE)
