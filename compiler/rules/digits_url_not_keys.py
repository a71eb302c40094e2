"""RC220 digits-url-not-keys: a `digitsCallbackUrl` that does not point at a `keys` route of the policy.

In-room keys are posted to `digitsCallbackUrl`; only a `keys` route maps them to effects (raise
a hand, call the operator). A URL that names a join or flow route, a path the policy does not
serve, or another host means every key a participant presses is answered as a new call, or by
no one. Write the path of a keys route (`/townhall/keys`): roomc emits it under the public URL
with the room's name and its events token, so unsigned posts are still believed for that room only.

Failing::

    rooms:
      townhall:
        name: "townhall-{{ query.room }}"
        collectDigits: true
        digitsCallbackUrl: /townhall/join     # a join route, not a keys route
        roles: {guest: {}}
    routes:
      /townhall/join: {join: townhall}

Passing::

    rooms:
      townhall:
        name: "townhall-{{ query.room }}"
        collectDigits: true
        digitsCallbackUrl: /townhall/keys
        roles: {guest: {}}
    routes:
      /townhall/join: {join: townhall}
      /townhall/keys: {keys: {"1": raiseHand}}
"""
from __future__ import annotations

from typing import Iterator

from ..diagnostics import Diagnostic, Severity
from ..ir import Policy
from ._keys import senders

CODE = "RC220"
NAME = "digits-url-not-keys"
SEVERITY = Severity.ERROR


def check(policy: Policy) -> Iterator[Diagnostic]:
    keys_routes = sorted(r.path for r in policy.routes.values() if r.kind == "keys")
    hint = f"point it at a keys route ({', '.join(keys_routes)})" if keys_routes else \
        "add a route like `/keys: {keys: {\"1\": raiseHand}}` and point it there"
    reported: set[tuple] = set()
    for sender, role_path in senders(policy):
        if not sender.explicit:
            continue
        path = sender.where(policy, "digitsCallbackUrl", role_path)
        if path in reported:
            continue
        reported.add(path)
        url = sender.url
        route = sender.route(policy)
        if isinstance(url, str) and url.startswith("/") and route in keys_routes and "?" not in url:
            continue
        if route in keys_routes:
            why = "names the keys route as a full URL or with a query; write its bare path so roomc adds the " \
                  "room and its token"
        elif route is not None and route in policy.routes:
            why = f"names the {policy.routes[route].kind} route '{route}', which would answer each key as a new call"
        elif route is not None:
            why = f"names '{route}', which this policy does not serve"
        else:
            why = "points outside this policy (or is a template), so roomc never sees the keys pressed"
        yield Diagnostic(CODE, SEVERITY, f"digitsCallbackUrl '{url}' of room '{sender.room.id}' {why}; {hint}",
                         policy.span(path), path)
