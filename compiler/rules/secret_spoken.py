"""RC303 secret-spoken: a secret is read inside spoken text.

Anything in a `say` is read aloud to the caller (and may be logged by the platform).

Failing::

    say: "The host PIN is {{ secret.HOST_PIN }}"

Passing::

    when: "call.digits == secret.HOST_PIN"
"""
from __future__ import annotations

from typing import Iterator

from ..diagnostics import Diagnostic, Severity
from ..ir import Policy
from ..templates import is_template, secret_names
from ._sites import sites

CODE = "RC303"
NAME = "secret-spoken"
SEVERITY = Severity.ERROR


def check(policy: Policy) -> Iterator[Diagnostic]:
    for site in sites(policy):
        if site.spoken and is_template(site.source) and secret_names(site.source):
            yield Diagnostic(CODE, SEVERITY, "a secret would be spoken to the caller; secrets belong in conditions only",
                             policy.span(site.path), site.path)
