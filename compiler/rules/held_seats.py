"""RC240 held-seats: a room whose seats cannot hold what it keeps back for its hosts, or whose host could be turned away.

A role that starts the room (`startOnEnter: true` while others wait for it) has seats of its pool
held back from every other role until its callers fill them (`reservedSeats`, default 1), so a
room full of waiting callers never locks its host out. A pool with fewer seats than it holds
cannot seat its hosts; one with exactly as many never seats anyone else. A host with
`reservedSeats: 0` can be refused when the room fills, leaving the others on hold until they hang
up. A host's own `whenFull` may not send it to another room: the room would never start. No
`whenFull` may join its callers as a role that starts a room: they would take the host's held seat.

Failing::

    maxParticipants: 1
    roles:
      host: {when: "query.host == '1'", startOnEnter: true, reservedSeats: 2}
      participant: {}

Passing::

    maxParticipants: 10            # nine for participants, one held for the host
    roles:
      host: {when: "query.host == '1'", startOnEnter: true}
      participant: {}
"""
from __future__ import annotations

from typing import Iterator

from ..codegen import sends_away
from ..diagnostics import Diagnostic, Severity
from ..ir import EXTRA_POOL, MAIN_POOL, Action, Policy, Room

CODE = "RC240"
NAME = "held-seats"
SEVERITY = Severity.ERROR


def _pool_name(room: Room, key: str) -> str:
    if key == MAIN_POOL:
        return f"room '{room.id}' (maxParticipants {room.capacity})"
    if key == EXTRA_POOL:
        return f"room '{room.id}' uncounted seats (extraSeats {room.extra_seats})"
    return f"pool '{key}' of room '{room.id}' ({room.limit(key)} seats)"


def _pool_path(room: Room, key: str) -> tuple:
    if key == MAIN_POOL:
        return room.path + ("maxParticipants",)
    if key == EXTRA_POOL:
        return room.path + ("extraSeats",)
    return room.path + ("pools", key, "seats")


def _into_hosts(policy: Policy, room: Room) -> Iterator[tuple[Action, str, str]]:
    """Overflow joins (room's, pools' and roles' whenFull) that seat their caller as a role that starts a room."""
    lists = [room.when_full] + [p.when_full for p in room.pools.values()]
    # A starting role's own whenFull that joins anywhere is reported below (it sends the host away).
    lists += [r.when_full for r in room.roles if not room.starts(r)]
    for actions in lists:
        for join in (a for a in actions if a.verb == "join"):
            target = policy.rooms.get(str(join.args.get("room")))
            role = next((r for r in target.roles if r.id == join.args.get("role")), None) if target else None
            if target is not None and role is not None and target.starts(role):
                yield join, target.id, role.id


def check(policy: Policy) -> Iterator[Diagnostic]:
    for room in policy.rooms.values():
        for join, target, role_id in _into_hosts(policy, room):
            yield Diagnostic(CODE, SEVERITY, f"this whenFull of room '{room.id}' joins its callers as '{role_id}', "
                             f"a role that starts room '{target}': a caller who found no seat takes the seat held "
                             "for the host, and starts the room for those waiting", policy.span(join.path), join.path,
                             help="join a role that waits for the host (or drop `role:` to choose by `when`)")
        for key, held in room.held_by_pool.items():
            total, limit = sum(held.values()), room.limit(key)
            path = _pool_path(room, key)
            holders = ", ".join(f"{n} for '{r}'" for r, n in held.items())
            others = [r.id for r in room.roles if room.pool_key(r) == key and r.id not in held]
            if total > limit:
                yield Diagnostic(CODE, SEVERITY, f"{_pool_name(room, key)} holds {total} seats back ({holders}), "
                                 f"more than it has: its hosts cannot all get in", policy.span(path), path,
                                 help=f"raise the seats to at least {total + (1 if others else 0)}, or lower "
                                      "`reservedSeats`")
            elif total == limit and others:
                yield Diagnostic(CODE, SEVERITY, f"{_pool_name(room, key)} holds all its seats back ({holders}): "
                                 f"{', '.join(repr(o) for o in others)} can never get in", policy.span(path), path,
                                 help=f"raise the seats to at least {total + 1}, or lower `reservedSeats`")
        for role in room.roles:
            written = role.path + ("reservedSeats",)
            counted = room.pool_key(role) is not None
            if role.reserved is not None and role.reserved > 0 and not counted:
                yield Diagnostic(CODE, Severity.WARNING, f"role '{role.id}' of room '{room.id}' reserves seats, but its "
                                 "seats are not counted (no maxParticipants, no pool): nothing is held",
                                 policy.span(written), written)
            if not room.starts(role):
                continue
            if role.reserved == 0 and counted and room.has_waiters:
                yield Diagnostic(CODE, Severity.WARNING, f"role '{role.id}' starts room '{room.id}' but holds no seat "
                                 "(reservedSeats: 0): when the room fills it is refused, and the callers waiting "
                                 "for it stay on hold until they hang up", policy.span(written), written,
                                 help="drop `reservedSeats: 0` to hold one seat for it")
            if role.when_full and sends_away(role.when_full):
                path = role.path + ("whenFull",)
                yield Diagnostic(CODE, SEVERITY, f"role '{role.id}' starts room '{room.id}', but its whenFull sends it "
                                 "elsewhere (join or redirect): the room would never start for the callers waiting "
                                 "in it", policy.span(path), path,
                                 help="say why and hang up instead; seats held for it (reservedSeats) keep it from "
                                      "being refused")
