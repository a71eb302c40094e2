"""RC402 insecure-url: a callback or audio URL that is not https.

Sautikit delivers webhooks to HTTPS endpoints, and plain http leaks call data.

Failing::

    waitUrl: http://cdn.example.com/hold.mp3

Passing::

    waitUrl: https://cdn.example.com/hold.mp3
"""
from __future__ import annotations

from typing import Iterator

from ..diagnostics import Diagnostic, Severity
from ..ir import Policy
from ._sites import CONFERENCE_URL_PARAMS, URL_FIELDS, action_lists, walk_actions

CODE = "RC402"
NAME = "insecure-url"
SEVERITY = Severity.WARNING


def _insecure(value: object) -> bool:
    return isinstance(value, str) and value.lower().startswith("http://")


def check(policy: Policy) -> Iterator[Diagnostic]:
    candidates: list[tuple[tuple, object]] = [(("server", "publicUrl"), policy.server.public_url)]
    candidates += [(("defaults", k), policy.defaults.get(k)) for k in CONFERENCE_URL_PARAMS]
    for room in policy.rooms.values():
        candidates += [(room.path + (k,), room.params.get(k)) for k in CONFERENCE_URL_PARAMS
                       if room.path + (k,) in policy.spans]
        for role in room.roles:
            candidates += [(role.path + (k,), role.params.get(k)) for k in CONFERENCE_URL_PARAMS
                           if role.path + (k,) in policy.spans]
    for _, actions, _ in action_lists(policy):
        for action in walk_actions(actions):
            candidates += [(action.path + (k,), action.args.get(k)) for verb, k in URL_FIELDS if verb == action.verb]
    for path, value in candidates:
        if _insecure(value):
            yield Diagnostic(CODE, SEVERITY, f"'{value}' is not https", policy.span(path), path)
