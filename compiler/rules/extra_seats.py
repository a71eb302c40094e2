"""RC242 extra-seats-deprecated: `extraSeats` is a pool without a name; declare the pool instead.

`extraSeats` sized one room-wide pool for every role with `countsTowardCapacity: false`. Pools
say which roles share which seats, and each can have its own `whenFull`. Old files keep compiling
(this is a warning) with the same seats and the same emitted `maxParticipants`.

Failing::

    extraSeats: 3
    roles:
      supervisor: {countsTowardCapacity: false, muted: true}

Passing::

    pools: {supervisors: {seats: 3}}
    roles:
      supervisor: {pool: supervisors, muted: true}
"""
from __future__ import annotations

from typing import Iterator

from ..diagnostics import Diagnostic, Severity
from ..ir import Policy

CODE = "RC242"
NAME = "extra-seats-deprecated"
SEVERITY = Severity.WARNING


def check(policy: Policy) -> Iterator[Diagnostic]:
    for room in policy.rooms.values():
        path = room.path + ("extraSeats",)
        if path not in policy.spans:
            continue
        uncounted = [r.id for r in room.roles if not r.counts and r.pool is None]
        roles = ", ".join(f"`{r}`" for r in uncounted) or "the uncounted roles"
        yield Diagnostic(CODE, SEVERITY, f"`extraSeats` is deprecated: room '{room.id}' should name the pool its "
                         "uncounted roles share", policy.key_span(path), path,
                         help=f"write `pools: {{supervisors: {{seats: {room.extra_seats}}}}}` and give {roles} "
                              "`pool: supervisors` instead of `countsTowardCapacity: false`")
