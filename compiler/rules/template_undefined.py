"""RC302 template-undefined: a template reads a name, call field or secret that does not exist there.

Text templates render strictly: a missing value would fail the call at runtime (the
caller gets the fallback). `room` is not available in the room name itself, and
flows have no `room` or `role`.

Failing::

    say: "Welcome {{ caller }}"            # no 'caller'; use call.from
    when: "call.digits == secret.PIN"      # PIN not under `secrets`

Passing::

    say: "Welcome to {{ room }}"
"""
from __future__ import annotations

from typing import Iterator

from ..diagnostics import Diagnostic, Severity
from ..ir import Policy
from ._template_findings import findings

CODE = "RC302"
NAME = "template-undefined"
SEVERITY = Severity.ERROR


def check(policy: Policy) -> Iterator[Diagnostic]:
    yield from findings(policy, CODE, SEVERITY)
