"""Sautikit webhook signatures: `t=<unix>,v1=<hex>` over body + "." + t, or bare hex over the body.

The platform's own pages disagree on the form (fact sheet §5.3), so both are accepted:
a header with `t=`/`v1=` is checked as the timestamped scheme (with a replay window),
anything else as a bare hex HMAC of the raw body.
"""
from __future__ import annotations

import hashlib
import hmac
import time

REPLAY_WINDOW = 300


def sign(secret: bytes, body: bytes, timestamp: int | None = None) -> str:
    """The header value Sautikit would send for this body (used by tests and the local platform)."""
    t = str(int(time.time()) if timestamp is None else timestamp)
    digest = hmac.new(secret, body + b"." + t.encode(), hashlib.sha256).hexdigest()
    return f"t={t},v1={digest}"


def verify(secret: bytes, header: str | None, body: bytes, *, now: float | None = None,
           window: int = REPLAY_WINDOW) -> str | None:
    """None when the signature is valid, else the reason it is not (for the log, never the caller)."""
    if not header:
        return "missing X-Sautikit-Signature"
    header = header.strip()
    if "=" not in header:
        expected = hmac.new(secret, body, hashlib.sha256).hexdigest()
        return None if hmac.compare_digest(expected, header.lower()) else "bare signature does not match"
    parts: dict[str, list[str]] = {}
    for item in header.split(","):
        key, _, value = item.strip().partition("=")
        parts.setdefault(key.strip(), []).append(value.strip())
    stamps, signatures = parts.get("t", []), parts.get("v1", [])
    if len(stamps) != 1 or not signatures:
        return "malformed signature header"
    t = stamps[0]
    if not t.isdigit():
        return "malformed timestamp"
    current = time.time() if now is None else now
    if abs(current - int(t)) > window:
        return "timestamp outside the replay window"
    expected = hmac.new(secret, body + b"." + t.encode(), hashlib.sha256).hexdigest()
    # Compare against every v1 so a secret rotation (two signatures) verifies; always constant time.
    matched = False
    for candidate in signatures:
        matched |= hmac.compare_digest(expected, candidate.lower())
    return None if matched else "signature does not match"
