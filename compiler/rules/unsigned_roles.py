"""RC401 unsigned-roles: roles are chosen from request values, but no signature secret is configured.

Without `server.signatureSecretEnv`, anyone who knows the URL can send `?host=1` and become host.

Failing::

    roles:
      host: {when: "query.host == '1'"}
    # and no server.signatureSecretEnv

Passing::

    server: {signatureSecretEnv: SAUTIKIT_VOICE_SECRET}
"""
from __future__ import annotations

from typing import Iterator

from ..diagnostics import Diagnostic, Severity
from ..ir import Policy

CODE = "RC401"
NAME = "unsigned-roles"
SEVERITY = Severity.WARNING


def check(policy: Policy) -> Iterator[Diagnostic]:
    if policy.server.signature_secret_env:
        return
    for room in policy.rooms.values():
        for role in room.roles:
            if role.when and ("query" in role.when or "call" in role.when):
                yield Diagnostic(CODE, SEVERITY,
                                 f"role '{role.id}' of room '{room.id}' is chosen from request values but no "
                                 "server.signatureSecretEnv is set; anyone with the URL could take this role",
                                 policy.span(role.path + ("when",)), role.path + ("when",))
