"""RC210 shadowed-role: a role listed after a role with no `when` can never be chosen.

Roles are tried in order and a role without `when` always matches.

Failing::

    roles:
      participant: {}
      host: {when: "query.host == '1'"}

Passing::

    roles:
      host: {when: "query.host == '1'"}
      participant: {}
"""
from __future__ import annotations

from typing import Iterator

from ..diagnostics import Diagnostic, Severity
from ..ir import Policy

CODE = "RC210"
NAME = "shadowed-role"
SEVERITY = Severity.ERROR


def check(policy: Policy) -> Iterator[Diagnostic]:
    for room in policy.rooms.values():
        default = None
        for role in room.roles:
            if default is not None:
                yield Diagnostic(CODE, SEVERITY, f"role '{role.id}' of room '{room.id}' can never be chosen: "
                                 f"role '{default}' before it has no `when`", policy.key_span(role.path), role.path)
            elif not role.when:
                default = role.id
