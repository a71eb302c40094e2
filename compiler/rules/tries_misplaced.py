"""RC235 tries-misplaced: `afterLastTry` without `tries`, or `tries` on a flow that asks for no digits.

`afterLastTry` is only answered once a flow's `tries` are used up, so without `tries` it never is; a flow whose actions have no `getDigits` never hears digits of its own, so its `tries` count nothing.

Failing::

    flows:
      pin:
        actions: [{getDigits: {...}}]
        afterLastTry: [hangup: {}]

Passing::

    flows:
      pin:
        actions: [{getDigits: {...}}]
        tries: 3
        afterLastTry: [hangup: {}]
"""
from __future__ import annotations

from typing import Iterator

from ..diagnostics import Diagnostic, Severity
from ..ir import Policy

CODE = "RC235"
NAME = "tries-misplaced"
SEVERITY = Severity.ERROR


def check(policy: Policy) -> Iterator[Diagnostic]:
    for flow in policy.flows.values():
        if flow.after_last_try and not flow.tries:
            path = flow.path + ("afterLastTry",)
            yield Diagnostic(CODE, SEVERITY, f"flow '{flow.id}' has afterLastTry but no tries, so it is never answered",
                             policy.key_span(path), path, "add `tries: 3` (or how many) to the flow")
        if flow.tries and not any(action.verb == "getDigits" for action in flow.actions):
            path = flow.path + ("tries",)
            yield Diagnostic(CODE, SEVERITY, f"flow '{flow.id}' counts tries but its actions ask for no digits "
                             "(no getDigits)", policy.key_span(path), path)
