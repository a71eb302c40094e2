"""RC221 in-room-digits-nowhere: a room collects in-room digits with nowhere to send them, or names a digits URL without collecting any.

`collectDigits: true` with no `digitsCallbackUrl` and no `keys` route in the policy asks the
platform to listen for keys and deliver them nowhere: participants are told "press 1 to ask a
question" and nothing happens. The other way round, a `digitsCallbackUrl` without
`collectDigits: true` is never called.

Failing::

    rooms:
      townhall:
        name: "townhall-{{ query.room }}"
        collectDigits: true        # no digitsCallbackUrl, and no keys route
        roles: {guest: {}}

Passing::

    rooms:
      townhall:
        name: "townhall-{{ query.room }}"
        collectDigits: true        # goes to the policy's keys route
        roles: {guest: {}}
    routes:
      /townhall/keys: {keys: {"1": raiseHand}}
"""
from __future__ import annotations

from typing import Iterator

from ..diagnostics import Diagnostic, Severity
from ..ir import Policy
from ._keys import senders

CODE = "RC221"
NAME = "in-room-digits-nowhere"
SEVERITY = Severity.WARNING


def check(policy: Policy) -> Iterator[Diagnostic]:
    reported: set[tuple] = set()
    for sender, role_path in senders(policy):
        if sender.collects and sender.url is None:
            path = sender.where(policy, "collectDigits", role_path)
            message = (f"room '{sender.room.id}' collects in-room digits (collectDigits: true) but sends them nowhere: "
                       "no digitsCallbackUrl and no keys route; add a route like `/keys: {keys: {\"1\": raiseHand}}`")
        elif not sender.collects and sender.explicit:
            path = sender.where(policy, "digitsCallbackUrl", role_path)
            message = (f"room '{sender.room.id}' names a digitsCallbackUrl but does not set collectDigits: true, "
                       "so no in-room digit is ever posted there")
        else:
            continue
        if path not in reported:
            reported.add(path)
            yield Diagnostic(CODE, SEVERITY, message, policy.span(path), path)
