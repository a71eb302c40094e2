"""What the in-room keys rules share: where each room's in-room digits go, and with which settings."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator
from urllib.parse import urlsplit

from ..ir import Policy, Room

DIGIT_PARAMS = ("collectDigits", "digitsCallbackUrl", "numDigits", "finishOnKey")


@dataclass(frozen=True)
class Sender:
    """One room's (or role's) in-room digits: whether collected, where they go, what submits them."""

    room: Room
    collects: bool
    url: object  # the emitted digitsCallbackUrl (a path, a URL, a template) or None
    explicit: bool  # whether the URL was written (else the default keys route)
    num_digits: int
    finish_on_key: str | None

    def where(self, policy: Policy, key: str, role_path: tuple) -> tuple:
        """The path where `key` was written for this sender: the role, the room, or `defaults`."""
        for path in (role_path + (key,), self.room.path + (key,), ("defaults", key)):
            if path in policy.spans:
                return path
        return self.room.path

    def route(self, policy: Policy) -> str | None:
        """The route of this policy the digits are posted to, if any: a bare path, or a URL under publicUrl."""
        if not isinstance(self.url, str) or "{{" in self.url or "{%" in self.url:
            return None
        if self.url.startswith("/"):
            return self.url.split("?", 1)[0]
        base = urlsplit(policy.server.public_url or "")
        url = urlsplit(self.url)
        if base.netloc and url.netloc == base.netloc:
            prefix = base.path.rstrip("/")
            return url.path[len(prefix):] if prefix and url.path.startswith(prefix + "/") else url.path
        return None


# The last policy walked and its senders: four rules ask for them in a row.
_last: tuple[Policy | None, tuple[tuple[Sender, tuple], ...]] = (None, ())


def senders(policy: Policy) -> tuple[tuple[Sender, tuple], ...]:
    """Every distinct way a room's roles collect in-room digits, with the path of the first role that does."""
    global _last
    if _last[0] is not policy:
        _last = (policy, tuple(_walk_senders(policy)))
    return _last[1]


def _walk_senders(policy: Policy) -> Iterator[tuple[Sender, tuple]]:
    for room in policy.rooms.values():
        seen: set[tuple] = set()
        for role in room.roles:
            params = role.params
            url = policy.digits_url(params, room)
            finish = params.get("finishOnKey")
            sender = Sender(room, params.get("collectDigits") is True, url, params.get("digitsCallbackUrl") is not None,
                            int(params.get("numDigits") or 0), str(finish) if finish not in (None, "") else None)
            identity = (sender.collects, str(url), sender.explicit, sender.num_digits, sender.finish_on_key)
            if identity in seen:
                continue
            seen.add(identity)
            yield sender, role.path
