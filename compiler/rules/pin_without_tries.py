"""RC236 pin-without-tries: a flow checks a PIN but lets a caller try for ever.

A four-digit PIN falls to 10,000 tries; with no limit a caller (or a script dialling in) keeps keying until one works. `tries` counts per call in the store, whatever URL the digits reach. A branch checks a PIN when it is a `directory: hostPin`/`participantPin` branch or its `when` compares the digits with a secret.

Failing::

    flows:
      pin:
        onDigits:
          - {when: "call.digits == secret.HOST_PIN", actions: [...]}

Passing::

    flows:
      pin:
        tries: 3
        onDigits:
          - {when: "call.digits == secret.HOST_PIN", actions: [...]}
"""
from __future__ import annotations

from typing import Iterator

from ..diagnostics import Diagnostic, Severity
from ..ir import Policy
from ..templates import secret_names

CODE = "RC236"
NAME = "pin-without-tries"
SEVERITY = Severity.WARNING


def check(policy: Policy) -> Iterator[Diagnostic]:
    for flow in policy.flows.values():
        if flow.tries:
            continue
        for branch in flow.branches:
            checks_pin = branch.directory in ("hostPin", "participantPin") or (
                bool(branch.when) and "digits" in (branch.when or "") and bool(_secrets("{{ " + (branch.when or "") + " }}")))
            if checks_pin:
                yield Diagnostic(CODE, SEVERITY, f"flow '{flow.id}' checks a PIN with no limit on tries",
                                 policy.key_span(flow.path), flow.path,
                                 "add `tries: 3` to the flow (and `afterLastTry:` for what follows the last)")
                break


def _secrets(source: str) -> set[str]:
    try:
        return set(secret_names(source))
    except Exception:  # a condition that does not parse is RC301's finding, not this rule's
        return set()
