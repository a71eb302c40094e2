"""RC222 unreachable-key: a key of a `keys` route that a room sending to it can never deliver, given its `numDigits` and `finishOnKey`.

The platform posts in-room digits once `numDigits` keys are pressed, or earlier when the
caller presses `finishOnKey` (which is not part of the digits). So with `numDigits: 1` a
mapped `"12"` never arrives, a key containing the finish key never arrives, and with no
finish key a key shorter than `numDigits` arrives only if the platform submits on a timeout,
which is undocumented. With neither `numDigits` nor `finishOnKey`, nothing documented
submits the digits at all.

Failing::

    rooms:
      townhall:
        name: "townhall-{{ query.room }}"
        collectDigits: true
        numDigits: 1
        roles: {guest: {}}
    routes:
      /townhall/keys: {keys: {"1": raiseHand, "99": callOperator}}   # 99 needs two keys

Passing::

    rooms:
      townhall:
        name: "townhall-{{ query.room }}"
        collectDigits: true
        numDigits: 1
        roles: {guest: {}}
    routes:
      /townhall/keys: {keys: {"1": raiseHand, "9": callOperator}}
"""
from __future__ import annotations

from typing import Iterator

from ..diagnostics import Diagnostic, Severity
from ..ir import Policy
from ._keys import Sender, senders

CODE = "RC222"
NAME = "unreachable-key"
SEVERITY = Severity.WARNING


def why_unreachable(key: str, sender: Sender) -> str | None:
    """Why `key` can never arrive from this sender, or None when it can."""
    n, finish = sender.num_digits, sender.finish_on_key
    if finish and finish in key:
        return f"it contains the finish key '{finish}', which submits the digits before it and is not part of them"
    if n and len(key) > n:
        return f"numDigits {n} posts the digits after {n} key{'s' if n > 1 else ''}"
    if n and len(key) < n and not finish:
        return f"numDigits {n} waits for {n} keys and no finishOnKey submits fewer"
    if not n and not finish:
        return "neither numDigits nor finishOnKey submits in-room digits"
    return None


def check(policy: Policy) -> Iterator[Diagnostic]:
    for sender, _ in senders(policy):
        route = policy.routes.get(sender.route(policy) or "")
        if not sender.collects or route is None or route.kind != "keys":
            continue
        if sender.explicit and not str(sender.url).startswith("/"):
            continue  # RC220 already asks for the bare path
        for key in route.keys or {}:
            why = why_unreachable(key, sender)
            if why is not None:
                path = route.keypath + ("keys", key)
                yield Diagnostic(CODE, SEVERITY, f"key '{key}' of '{route.path}' can never arrive from room "
                                 f"'{sender.room.id}': {why}", policy.key_span(path), path)
