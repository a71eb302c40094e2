"""What the directory rules share: the policy's directory file, read once per lint run."""
from __future__ import annotations

from typing import Iterator

from ..diagnostics import Diagnostic
from ..directory import read_cached
from ..ir import Policy


def findings(policy: Policy, code: str) -> Iterator[Diagnostic]:
    """The findings with `code` about the directory file the policy names (none when it names only an env var)."""
    if policy.directory is None or policy.directory.file is None:
        return
    for finding in read_cached(policy.directory.file).findings:
        if finding.code == code:
            yield finding
