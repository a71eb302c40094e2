"""RC237 pin-unsigned: a flow counts PIN tries or checks directory PINs, but requests are not signed.

The count of tries is kept per call, and without `server.signatureSecretEnv` a request names its own call: anyone who can reach the server posts each guess with a new call id, and the four-digit PIN falls in seconds (about 300 guesses a second to one local server). `roomc serve` refuses such a policy unless `--allow-unsigned` (loopback only) is given.

Failing::

    server: {publicUrl: "https://bridge.example.com"}
    flows:
      pin:
        tries: 3
        onDigits:
          - {directory: hostPin, actions: [...]}

Passing::

    server: {publicUrl: "https://bridge.example.com", signatureSecretEnv: SAUTIKIT_VOICE_SECRET}
    flows:
      pin:
        tries: 3
        onDigits:
          - {directory: hostPin, actions: [...]}
"""
from __future__ import annotations

from typing import Iterator

from ..diagnostics import Diagnostic, Severity
from ..ir import Policy

CODE = "RC237"
NAME = "pin-unsigned"
SEVERITY = Severity.ERROR
PIN_BRANCHES = ("hostPin", "participantPin")


def check(policy: Policy) -> Iterator[Diagnostic]:
    if policy.server.signature_secret_env:
        return
    for flow in policy.flows.values():
        pins = any(branch.directory in PIN_BRANCHES for branch in flow.branches)
        if flow.tries or pins:
            what = "counts tries" if flow.tries else "checks directory PINs"
            yield Diagnostic(CODE, SEVERITY, f"flow '{flow.id}' {what}, but no server.signatureSecretEnv is set: an "
                             "unsigned request names its own call, so each guess can come with a new call id",
                             policy.key_span(flow.path), flow.path,
                             "set server.signatureSecretEnv (e.g. SAUTIKIT_VOICE_SECRET); `roomc serve` refuses this "
                             "policy without it unless --allow-unsigned on loopback")
