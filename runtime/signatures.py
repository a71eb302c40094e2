"""Sautikit webhook signatures: `t=<unix>,v1=<hex>` over body + "." + t, or bare hex over the body.

The platform's own pages disagree on the form (fact sheet §5.3), so both are accepted:
a header with `t=`/`v1=` is checked as the timestamped scheme (with a replay window),
anything else as a bare hex HMAC of the raw body.
"""
from __future__ import annotations

import hashlib
import hmac
import time
from dataclasses import dataclass

REPLAY_WINDOW = 300
MAX_HEADER_CHARS = 4096  # room for a few v1 values during a rotation; a 5,000-digit `t` is refused unread


def sign(secret: bytes, body: bytes, timestamp: int | None = None) -> str:
    """The header value Sautikit would send for this body (used by tests and the local platform)."""
    t = str(int(time.time()) if timestamp is None else timestamp)
    digest = hmac.new(secret, body + b"." + t.encode(), hashlib.sha256).hexdigest()
    return f"t={t},v1={digest}"


@dataclass(frozen=True)
class Check:
    """A signature check: `problem` is None when valid; then `key` names the signature (what a
    replay would reuse) and `expires_at` is when its window closes."""

    problem: str | None
    key: str = ""
    expires_at: float = 0.0


# A bare-hex signature carries no time: a replay of it is refused for this long (the platform's
# retries of one delivery span about a week, fact sheet §5.5).
BARE_SIGNATURE_MEMORY = 8 * 24 * 3600


def check(secret: bytes, header: str | None, body: bytes, *, now: float | None = None,
          window: int = REPLAY_WINDOW) -> Check:
    """Verify a signature header over the raw body, and name the signature that matched."""
    current = time.time() if now is None else now
    if not header:
        return Check("missing X-Sautikit-Signature")
    header = header.strip()
    if len(header) > MAX_HEADER_CHARS:
        return Check("signature header too long")
    if "=" not in header:
        expected = hmac.new(secret, body, hashlib.sha256).hexdigest()
        if hmac.compare_digest(expected, header.lower()):
            return Check(None, f"hex:{expected}", current + BARE_SIGNATURE_MEMORY)
        return Check("bare signature does not match")
    parts: dict[str, list[str]] = {}
    for item in header.split(","):
        key, _, value = item.strip().partition("=")
        parts.setdefault(key.strip(), []).append(value.strip())
    stamps, signatures = parts.get("t", []), parts.get("v1", [])
    if len(stamps) != 1 or not signatures:
        return Check("malformed signature header")
    t = stamps[0]
    if not (t.isascii() and t.isdigit()) or len(t) > 12:
        return Check("malformed timestamp")
    if abs(current - int(t)) > window:
        return Check("timestamp outside the replay window")
    expected = hmac.new(secret, body + b"." + t.encode(), hashlib.sha256).hexdigest()
    # Compare against every v1 so a secret rotation (two signatures) verifies; always constant time.
    matched = False
    for candidate in signatures:
        matched |= hmac.compare_digest(expected, candidate.lower())
    if not matched:
        return Check("signature does not match")
    return Check(None, f"t={t},v1={expected}", int(t) + window + 1)


def verify(secret: bytes, header: str | None, body: bytes, *, now: float | None = None,
           window: int = REPLAY_WINDOW) -> str | None:
    """None when the signature is valid, else the reason it is not (for the log, never the caller)."""
    return check(secret, header, body, now=now, window=window).problem
