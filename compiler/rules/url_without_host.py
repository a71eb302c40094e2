"""RC407 url-without-host: a URL that does not begin with its scheme and host written out, so it can render relative (or elsewhere).

The platform fetches hold music from `waitUrl` and audio from `play`, and calls callbacks and
redirects, with the URL exactly as rendered. `waitUrl: "{{ query.hold }}"` or
`"hold-{{ room }}.mp3"` renders a relative URL the platform cannot fetch, and
`"https://{{ query.cdn }}/x.mp3"` lets the caller choose the host. A templated URL must start
with `scheme://host/` before its first `{{`; a `waitUrl` must be absolute even when it is
constant (it is never joined to `server.publicUrl`). A templated callback written as a bare
path (`/keys?room={{ room }}`) is RC406's concern, not this one.

Failing::

    waitUrl: "{{ query.hold }}"
    waitUrl: "https://{{ query.cdn }}/hold.mp3"

Passing::

    waitUrl: "https://cdn.example.com/hold-{{ room }}.mp3"
"""
from __future__ import annotations

import re
from typing import Iterator

from ..diagnostics import Diagnostic, Severity
from ..ir import Policy
from ..templates import TEMPLATE_MARKERS, is_template
from ._sites import CONFERENCE_URL_PARAMS, URL_FIELDS, action_lists, walk_actions

CODE = "RC407"
NAME = "url-without-host"
SEVERITY = Severity.ERROR
ABSOLUTE = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^/?#\s]+")
# A host that ends before the template starts: `https://cdn.example.com{{ x }}` could go on `.evil.example`.
CLOSED_HOST = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^/?#\s]+[/?#]")
TEMPLATED_FIELDS = {field for field in URL_FIELDS if field != ("dial", "sip")}  # a SIP URI has no `//`


def problem(key: str, value: object) -> str | None:
    """Why this URL value can render without its own scheme and host, or None when it cannot."""
    if not isinstance(value, str):
        return None
    if not is_template(value):
        if key == "waitUrl" and not ABSOLUTE.match(value):
            return "is not an absolute URL (the platform fetches it as written)"
        return None
    prefix = value[:min(i for i in (value.find(m) for m in TEMPLATE_MARKERS) if i >= 0)]
    if prefix.startswith("/") and key != "waitUrl":
        return None
    if CLOSED_HOST.match(prefix):
        return None
    if ABSOLUTE.match(prefix) or "://" in prefix:
        return "leaves its host open to the template: a request value could choose where it goes"
    return "can render a relative URL: its scheme and host come from the template, or nowhere"


def check(policy: Policy) -> Iterator[Diagnostic]:
    candidates: list[tuple[tuple, str, object]] = [(("defaults", k), k, policy.defaults.get(k))
                                                   for k in CONFERENCE_URL_PARAMS]
    for room in policy.rooms.values():
        owners = [(room.path, room.params)] + [(role.path, role.params) for role in room.roles]
        candidates += [(path + (k,), k, params.get(k)) for path, params in owners for k in CONFERENCE_URL_PARAMS
                       if path + (k,) in policy.spans]
    for _, actions, _ in action_lists(policy):
        for action in walk_actions(actions):
            candidates += [(action.path + (k,), k, action.args.get(k)) for verb, k in TEMPLATED_FIELDS
                           if verb == action.verb]
    for path, key, value in candidates:
        why = problem(key, value)
        if why:
            yield Diagnostic(CODE, SEVERITY, f"{key} '{value}' {why}; write it as https://host/... with any "
                             "template after the host", policy.span(path), path)
