"""Seat pools and held seats: the admission rule both stores apply inside their one reserve
statement (runtime/store.py RESERVE, runtime/postgres.py roomc_reserve), as plain Python.

`roomc explain` decides with it, and the store tests hold both stores to it.
"""
from __future__ import annotations

from typing import Mapping


def kept_back(held: Mapping[str, int], present: Mapping[str, int], role: str) -> int:
    """Seats held for other roles (those that start the room) and not yet filled by them; a role is
    never kept out of its own held seats."""
    return sum(max(0, n - present.get(r, 0)) for r, n in held.items() if r != role)


def admits(limit: int, taken: int, held: Mapping[str, int], present: Mapping[str, int], role: str) -> bool:
    """Whether a caller of `role` gets a seat in a pool of `limit` seats, `taken` of them by other calls
    (`present[r]` of those by role r), with `held[r]` seats kept back for role r until its callers fill them."""
    return taken + kept_back(held, present, role) < limit
