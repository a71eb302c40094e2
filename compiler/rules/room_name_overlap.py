"""RC213 room-name-overlap: two rooms whose names can render the same string, so their callers could share a conference.

Room names are the conference's identity on Sautikit. If one room's name can render
another's (`{{ query.room }}` can render `bridge-123456`), a caller of the first room
lands in the second's conference, with its own role (host) and its own seat count. Each
room's name must be provably disjoint from the others': a literal prefix (or suffix) of
its own. At run time a rendered name that fits another room's frame is refused too.

Whether the platform tells `Bridge-1` from `bridge-1` is not documented, so names are
compared case-folded: two rooms whose names differ only by case overlap too.

Failing::

    rooms:
      meeting: {name: "{{ query.room }}", ...}
      bridge: {name: "bridge-{{ query.meeting }}", ...}

Passing::

    rooms:
      meeting: {name: "meeting-{{ query.room }}", ...}
      bridge: {name: "bridge-{{ query.meeting }}", ...}
"""
from __future__ import annotations

from typing import Iterator

from ..diagnostics import Diagnostic, Severity
from ..ir import Policy
from ..templates import frames_overlap, name_frame

CODE = "RC213"
NAME = "room-name-overlap"
SEVERITY = Severity.ERROR


def check(policy: Policy) -> Iterator[Diagnostic]:
    # Overlapping frames have one prefix a prefix of the other, so each room looks up only the
    # prefixes of its own prefix: linear in rooms times name length, not quadratic in rooms.
    by_prefix: dict[str, list[str]] = {}
    # Case-folded: the platform does not document whether room names are case-sensitive (defensive reading).
    exact = {room_id: name_frame(room.name) for room_id, room in policy.rooms.items()}
    frames = {room_id: (frame[0].casefold(), frame[1].casefold(), frame[2]) for room_id, frame in exact.items()}
    order = {room_id: index for index, room_id in enumerate(policy.rooms)}
    for room_id, frame in frames.items():
        by_prefix.setdefault(frame[0], []).append(room_id)
    for room_id, frame in frames.items():
        prefix = frame[0]
        others = [other for k in range(len(prefix) + 1) for other in by_prefix.get(prefix[:k], ())]
        for other in sorted(set(others), key=order.__getitem__):
            if other == room_id or (frames[other][0] == prefix and order[other] > order[room_id]):
                continue  # equal prefixes are seen from both sides; report the pair once
            if not frames_overlap(frame, frames[other]):
                continue
            # Reported at the room with the shorter literal prefix: the one whose name needs a prefix of its own.
            pair = sorted((room_id, other), key=lambda r: (len(frames[r][0]), -order[r]))
            vague, clear = pair[0], pair[1]
            path = ("rooms", vague, "name")
            by_case = "" if frames_overlap(exact[vague], exact[clear]) else " (they differ only by case, and " \
                "the platform may not tell case apart)"
            yield Diagnostic(CODE, SEVERITY,
                             f"room '{vague}' name '{policy.rooms[vague].name}' can render the same name as room "
                             f"'{clear}' ('{policy.rooms[clear].name}'){by_case}, so their callers could share one "
                             "conference; give each room a literal prefix of its own (e.g. "
                             f"'{vague}-{{{{ ... }}}}')", policy.span(path), path)
