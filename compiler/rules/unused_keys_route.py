"""RC223 unused-keys-route: a `keys` route that no room sends its in-room digits to.

A keys route only hears from rooms with `collectDigits: true` whose `digitsCallbackUrl` is its
path (or, left out, the policy's keys route). One that no room uses is usually a typo in a
room's `digitsCallbackUrl` or a room that forgot `collectDigits: true`: participants are told
which key raises a hand, and nothing listens.

Failing::

    rooms:
      townhall: {name: "townhall-{{ query.room }}", roles: {guest: {}}}   # no collectDigits
    routes:
      /townhall/keys: {keys: {"1": raiseHand}}

Passing::

    rooms:
      townhall: {name: "townhall-{{ query.room }}", collectDigits: true, numDigits: 1, roles: {guest: {}}}
    routes:
      /townhall/keys: {keys: {"1": raiseHand}}
"""
from __future__ import annotations

from typing import Iterator

from ..diagnostics import Diagnostic, Severity
from ..ir import Policy
from ._keys import senders

CODE = "RC223"
NAME = "unused-keys-route"
SEVERITY = Severity.WARNING


def check(policy: Policy) -> Iterator[Diagnostic]:
    used = {sender.route(policy) for sender, _ in senders(policy) if sender.collects}
    for route in policy.routes.values():
        if route.kind == "keys" and route.path not in used:
            yield Diagnostic(CODE, SEVERITY, f"keys route '{route.path}' receives nothing: no room collects in-room "
                             "digits (collectDigits: true) and sends them here", policy.key_span(route.keypath),
                             route.keypath)
