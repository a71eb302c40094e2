"""The typed intermediate form: frozen nodes, each carrying its source span and JSON path."""
from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any

from .diagnostics import Span, nearest_span

STATUS_EVENTS = ("start", "end", "join", "leave", "mute", "unmute")
DEFAULT_STATUS_EVENTS = STATUS_EVENTS
# Verbs that hand the call to the caller or the room: a redirect cycle through one of these is not a busy loop.
WAITING_VERBS = frozenset({"getDigits", "record", "dial", "join"})


@dataclass(frozen=True)
class Action:
    """One verb with normalised arguments (`say: text` becomes `{"text": text}`)."""

    verb: str
    args: dict[str, Any]
    span: Span
    path: tuple
    nested: tuple["Action", ...] = ()


@dataclass(frozen=True)
class Role:
    """A way into a room: its condition, greeting and conference parameters."""

    id: str
    when: str | None
    actions: tuple[Action, ...]
    counts: bool
    params: dict[str, Any]
    span: Span
    path: tuple
    pool: str | None = None  # a pool of the room's `pools`, as written
    reserved: int | None = None  # `reservedSeats` as written (None: the default)
    when_full: tuple[Action, ...] = ()  # the role's own `whenFull`


# Store keys of the two unnamed pools (runtime/store.py): the room's own seats and the uncounted roles'.
MAIN_POOL = ""
EXTRA_POOL = "~extra"


@dataclass(frozen=True)
class Pool:
    """Seats of their own for the roles that name the pool."""

    id: str
    seats: int
    when_full: tuple[Action, ...]
    span: Span
    path: tuple


@dataclass(frozen=True)
class Room:
    """A conference room: a templated name, the shared parameters, roles and the full answer."""

    id: str
    name: str
    params: dict[str, Any]
    roles: tuple[Role, ...]
    when_full: tuple[Action, ...]
    extra_seats: int
    span: Span
    path: tuple
    hours: str | None = None  # a schedule under `hours`; outside it the schedule's `closed` answers
    pools: dict[str, Pool] = field(default_factory=dict)

    @property
    def capacity(self) -> int:
        return int(self.params.get("maxParticipants") or 0)

    def pool_key(self, role: "Role") -> str | None:
        """The pool a role's seats are counted in (its store key), or None when they are not counted."""
        if role.pool is not None:
            return role.pool
        if not self.capacity:
            return None
        return MAIN_POOL if role.counts else EXTRA_POOL

    def limit(self, key: str) -> int:
        """The seats of a pool, by its store key (an undeclared pool has none)."""
        if key == MAIN_POOL:
            return self.capacity
        if key == EXTRA_POOL:
            return self.extra_seats
        pool = self.pools.get(key)
        return pool.seats if pool else 0

    def starts(self, role: "Role") -> bool:
        """Whether the role starts a room whose other callers wait for it (a host)."""
        return self.has_host and self.start_on_enter(role)

    def held(self, role: "Role") -> int:
        """Seats of the role's pool held back for it: `reservedSeats`, else 1 for a host others wait for."""
        if role.reserved is not None:
            return role.reserved
        return 1 if self.starts(role) and self.has_waiters else 0

    @functools.cached_property
    def has_waiters(self) -> bool:
        """Whether some role waits for another to start the room."""
        return any(not self.start_on_enter(other) for other in self.roles)

    @functools.cached_property
    def held_by_pool(self) -> dict[str, dict[str, int]]:
        """Seats held per pool (store key), per role; computed once, in one pass over the roles."""
        out: dict[str, dict[str, int]] = {}
        for role in self.roles:
            key, held = self.pool_key(role), self.held(role)
            if key is not None and held > 0:
                out.setdefault(key, {})[role.id] = held
        return out

    @functools.cached_property
    def seat_total(self) -> int | None:
        """The `maxParticipants` to emit: every pool's seats, or None when some role is not counted (once per room)."""
        keys = {self.pool_key(r) for r in self.roles}
        if None in keys or not keys:
            return None
        total = self.capacity + self.extra_seats if self.capacity else 0
        return total + sum(pool.seats for pool in self.pools.values())

    def start_on_enter(self, role: "Role") -> bool:
        """The `startOnEnter` a role joins with; unset is decided here, never left to the PBX.

        The SDK says unset means true, the docs say the PBX default, so roomc always emits a value:
        a muted (listen-only) role never starts the room; when some role of the room sets
        `startOnEnter: true` (a host), the others wait for it; otherwise anyone starts it (the SDK's default).
        """
        explicit = role.params.get("startOnEnter")
        if isinstance(explicit, bool):
            return explicit
        if role.params.get("muted") is True:
            return False
        return not self.has_host

    @functools.cached_property
    def has_host(self) -> bool:
        """Whether some role sets `startOnEnter: true`; computed once, so a room of N roles costs N, not N²."""
        return any(other.params.get("startOnEnter") is True for other in self.roles)

    @staticmethod
    def end_on_exit(role: "Role") -> bool:
        """The `endOnExit` a role joins with: unset is false, the SDK's and the docs' default."""
        return role.params.get("endOnExit") is True


@dataclass(frozen=True)
class Branch:
    """One `onDigits` branch: exact digits, a regex, or a condition."""

    digits: str | None
    match: str | None
    when: str | None
    actions: tuple[Action, ...]
    span: Span
    path: tuple
    directory: str | None = None  # meeting | hostPin | participantPin: checked against the meeting directory
    meeting: str | None = None  # the meeting number whose PIN a hostPin/participantPin branch checks


@dataclass(frozen=True)
class Flow:
    """An IVR step: actions when no digits came, branches when they did."""

    id: str
    actions: tuple[Action, ...]
    branches: tuple[Branch, ...]
    otherwise: tuple[Action, ...]
    span: Span
    path: tuple
    hours: str | None = None
    speech: dict[str, Any] = field(default_factory=dict)  # the voice and language its says default to
    tries: int | None = None  # digit entries a call may make here, counted in the store
    after_last_try: tuple[Action, ...] = ()


@dataclass(frozen=True)
class Directory:
    """Where the meeting directory is read at start-up: a file next to the policy and/or an env var."""

    file: str | None
    file_env: str | None
    span: Span


@dataclass(frozen=True)
class Route:
    """A webhook path Sautikit calls, and what answers it."""

    path: str
    kind: str  # join | flow | events | keys
    target: str | None
    role: str | None
    span: Span
    keypath: tuple
    keys: dict[str, str] | None = None  # a keys route: key (sequence) -> effect
    hours: str | None = None


@dataclass(frozen=True)
class Schedule:
    """Open hours: the raw weekly and closures (compiler/hours.py parses them), and the closed answer."""

    id: str
    zone: str | None  # its own, else `defaults.zone`; None when neither is written
    weekly: Any  # None = open every day; else the mapping as written
    closures: Any
    closed: tuple[Action, ...]
    span: Span
    path: tuple


@dataclass(frozen=True)
class Server:
    public_url: str | None = None
    signature_secret_env: str | None = None
    reservation_ttl: int = 60
    fallback: tuple[Action, ...] = ()
    events_signature: str | None = None


@dataclass(frozen=True)
class Policy:
    """A whole policy, merged from one or more files."""

    version: int
    server: Server
    secrets: tuple[str, ...]
    rooms: dict[str, Room]
    flows: dict[str, Flow]
    routes: dict[str, Route]
    files: tuple[str, ...]
    defaults: dict[str, Any] = field(default_factory=dict)
    hours: dict[str, Schedule] = field(default_factory=dict)
    directory: Directory | None = None
    spans: dict[tuple, Span] = field(default_factory=dict, repr=False)
    key_spans: dict[tuple, Span] = field(default_factory=dict, repr=False)

    def span(self, path: tuple) -> Span:
        """The span of the nearest node at or above `path`."""
        return nearest_span(self.spans, path, Span(self.files[0] if self.files else "", 1, 1))

    def key_span(self, path: tuple) -> Span:
        """The span of the key that names `path` (falls back to its value)."""
        return self.key_spans.get(tuple(path)) or self.span(path)

    @functools.cached_property
    def events_route(self) -> str | None:
        """The policy's first events route (the one status events go to by default)."""
        return next((r.path for r in self.routes.values() if r.kind == "events"), None)

    @functools.cached_property
    def _events_routes_by_file(self) -> dict[str, str]:
        # Built once: looking through every route for every room made 4,000 rooms quadratic.
        by_file: dict[str, str] = {}
        for route in self.routes.values():
            if route.kind == "events" and (route.span.file not in by_file or route.path < by_file[route.span.file]):
                by_file[route.span.file] = route.path
        return by_file

    def events_route_for(self, room: Room) -> str | None:
        """Where a room's status events go by default: an events route of its own file, else the policy's first."""
        return self._events_routes_by_file.get(room.span.file) or self.events_route

    @functools.cached_property
    def _keys_routes(self) -> tuple[str | None, dict[str, str]]:
        # The first keys route by path, and each file's first: built once, as for events routes.
        first: str | None = None
        by_file: dict[str, str] = {}
        for route in self.routes.values():
            if route.kind != "keys":
                continue
            first = route.path if first is None or route.path < first else first
            if route.span.file not in by_file or route.path < by_file[route.span.file]:
                by_file[route.span.file] = route.path
        return first, by_file

    def keys_route_for(self, room: Room) -> str | None:
        """Where a room's in-room digits go when it collects them and names no `digitsCallbackUrl`:
        a keys route of its own file, else the policy's first (by path)."""
        first, by_file = self._keys_routes
        return by_file.get(room.span.file) or first

    def digits_url(self, params: dict, room: Room) -> object:
        """The `digitsCallbackUrl` a role's conference carries: its own, else the default keys route
        when it collects digits, else None."""
        if params.get("digitsCallbackUrl") is not None:
            return params["digitsCallbackUrl"]
        return self.keys_route_for(room) if params.get("collectDigits") is True else None
