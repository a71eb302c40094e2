"""RC241 seat-pools: a seat pool that is named but not declared, declared but unused, or an overflow that comes back to a full pool.

A role's `pool` takes its seats from the room's `pools`; a typo would leave the role
without a limit, and the emitted `maxParticipants` would not cover it. A pool no role names is
dead seats added to `maxParticipants`. `pool` and `countsTowardCapacity` together say the same
thing twice (a pool is never the room's own seats). A `whenFull` that joins the same room
into the same full pool (or a chain of overflow rooms that leads back) only finds it full again:
the caller hears the built-in "full" message. Every pool together must fit the platform's
`maxParticipants` (2,147,483,647).

Failing::

    pools: {speakers: {seats: 2}}
    roles:
      speaker: {pool: speakrs}      # no such pool

Passing::

    pools: {speakers: {seats: 2, whenFull: [{join: {room: webinar, role: listener}}]}}
    roles:
      speaker: {pool: speakers}
      listener: {muted: true}
"""
from __future__ import annotations

from typing import Iterator

from ..diagnostics import Diagnostic, Severity
from ..ir import Action, Policy, Room

CODE = "RC241"
NAME = "seat-pools"
SEVERITY = Severity.ERROR
MAX_PARTICIPANTS = 2_147_483_647


def _joins(actions: tuple[Action, ...]) -> Iterator[Action]:
    return (a for a in actions if a.verb == "join")


def _back_into_full(room: Room, action: Action, full_key: str | None) -> bool:
    """Whether a whenFull join goes back into the same room and the pool that was just found full."""
    if action.args.get("room") != room.id:
        return False
    wanted = action.args.get("role")
    if wanted is None:
        return True  # role selection picks the same role again
    target = next((r for r in room.roles if r.id == wanted), None)
    return target is not None and (full_key is None or room.pool_key(target) == full_key)


def _overflow_edges(policy: Policy) -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {}
    for room in policy.rooms.values():
        lists = [room.when_full] + [p.when_full for p in room.pools.values()] + [r.when_full for r in room.roles]
        for actions in lists:
            for join in _joins(actions):
                target = join.args.get("room")
                if isinstance(target, str) and target != room.id and target in policy.rooms:
                    edges.setdefault(room.id, set()).add(target)
    return edges


def _cycle_from(start: str, edges: dict[str, set[str]]) -> list[str] | None:
    """The shortest overflow chain from `start` back to it, if any (breadth first, bounded by the rooms)."""
    paths = [[start]]
    seen = {start}
    while paths:
        following = []
        for path in paths:
            for nxt in sorted(edges.get(path[-1], ())):
                if nxt == start:
                    return path + [start]
                if nxt not in seen:
                    seen.add(nxt)
                    following.append(path + [nxt])
        paths = following
    return None


def check(policy: Policy) -> Iterator[Diagnostic]:
    for room in policy.rooms.values():
        used = set()
        for role in room.roles:
            if role.pool is None:
                continue
            used.add(role.pool)
            path = role.path + ("pool",)
            if role.pool not in room.pools:
                known = ", ".join(sorted(room.pools)) or "none declared"
                yield Diagnostic(CODE, SEVERITY, f"role '{role.id}' takes its seats from pool '{role.pool}', which "
                                 f"room '{room.id}' does not declare (pools: {known})", policy.span(path), path)
            counts = role.path + ("countsTowardCapacity",)
            if counts in policy.spans:
                yield Diagnostic(CODE, SEVERITY, f"role '{role.id}' sets both `pool` and `countsTowardCapacity`: a "
                                 "pool's seats are never the room's own", policy.span(counts), counts,
                                 help="drop `countsTowardCapacity`")
        for pool_id, pool in room.pools.items():
            if pool_id not in used:
                yield Diagnostic(CODE, Severity.WARNING, f"pool '{pool_id}' of room '{room.id}' is named by no role: "
                                 f"its {pool.seats} seats are only added to maxParticipants", policy.key_span(pool.path),
                                 pool.path)
        total = room.seat_total
        if total is not None and total > MAX_PARTICIPANTS:
            path = room.path + ("pools",) if room.pools else room.path + ("maxParticipants",)
            yield Diagnostic(CODE, SEVERITY, f"room '{room.id}' has {total} seats in all, more than maxParticipants "
                             f"can say ({MAX_PARTICIPANTS})", policy.span(path), path)
        # Overflows into the very pool that was full.
        checks: list[tuple[tuple[Action, ...], str | None, tuple]] = [(room.when_full, None, room.path + ("whenFull",))]
        checks += [(p.when_full, p.id, p.path + ("whenFull",)) for p in room.pools.values()]
        checks += [(r.when_full, room.pool_key(r), r.path + ("whenFull",)) for r in room.roles]
        for actions, key, _where in checks:
            for join in _joins(actions):
                if _back_into_full(room, join, key):
                    yield Diagnostic(CODE, Severity.WARNING, f"this whenFull of room '{room.id}' joins the same room "
                                     "into the pool that is full: the caller only hears the built-in full message",
                                     policy.span(join.path), join.path,
                                     help="join another role (another pool), or another room")
    edges = _overflow_edges(policy)
    reported: set[frozenset] = set()
    for room_id in sorted(edges):
        cycle = _cycle_from(room_id, edges)
        if cycle and frozenset(cycle) not in reported:
            reported.add(frozenset(cycle))
            room = policy.rooms[room_id]
            path = room.path + ("whenFull",)
            yield Diagnostic(CODE, Severity.WARNING, "overflow rooms lead back to where they started: "
                             f"{' -> '.join(cycle)}; a caller who finds them all full hears the built-in full message",
                             policy.span(path), path)
