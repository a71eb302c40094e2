"""The lint rules, one module each, in an explicit registry (the order findings are produced in)."""
from __future__ import annotations

from types import ModuleType

from . import (capacity_events, comparison_type, digits_url_not_keys, end_without_start, in_room_digits_nowhere,
               insecure_url, record_without_end, recording_nowhere, redirect_loop, relative_callback_url,
               room_name_overlap, room_never_starts, secret_spoken, shadowed_role, shared_room_name, status_event_name,
               status_events_nowhere, template_cost, template_fails, template_size, template_syntax,
               template_undefined, too_many_actions, undefined_reference, unreachable, unreachable_key,
               unsigned_roles, unused_keys_route, url_without_host)
from . import keys_without_join_events
# Open hours and speech defaults (issue 13), on their own line so other rule families merge cleanly.
from . import (hours_always_closed, hours_closure, hours_dst, hours_overlap, hours_range, hours_unused, hours_zone,
               now_without_zone, speech_undocumented)
from . import hours_closed_join, hours_zone_trap, name_from_clock
# Seat pools and held seats (issue 13).
from . import extra_seats, held_seats, seat_pools
# The meeting directory and PIN tries (issue 13).
from . import (directory_row, directory_undeclared, directory_unreadable, duplicate_meeting, pin_unsigned,
               pin_without_tries, same_pin, tries_misplaced)

RULES: tuple[ModuleType, ...] = (
    undefined_reference,
    room_never_starts,
    end_without_start,
    shared_room_name,
    room_name_overlap,
    record_without_end,
    redirect_loop,
    unreachable,
    status_event_name,
    capacity_events,
    held_seats,
    seat_pools,
    extra_seats,
    shadowed_role,
    status_events_nowhere,
    recording_nowhere,
    digits_url_not_keys,
    in_room_digits_nowhere,
    unreachable_key,
    unused_keys_route,
    keys_without_join_events,
    template_syntax,
    template_undefined,
    comparison_type,
    template_cost,
    template_fails,
    template_size,
    secret_spoken,
    unsigned_roles,
    insecure_url,
    relative_callback_url,
    url_without_host,
    too_many_actions,
    hours_zone,
    hours_range,
    hours_overlap,
    hours_closure,
    hours_unused,
    hours_always_closed,
    hours_dst,
    speech_undocumented,
    now_without_zone,
    name_from_clock,
    hours_closed_join,
    hours_zone_trap,
    # The meeting directory and PIN tries (docs/language.md, "Meeting directory", "PIN tries").
    directory_unreadable,
    directory_row,
    duplicate_meeting,
    same_pin,
    directory_undeclared,
    tries_misplaced,
    pin_without_tries,
    pin_unsigned,
)
