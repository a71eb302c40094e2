"""Request normalisation: Sautikit's many spellings of the same field, read into one shape.

The platform does not document its field names (fact sheet §4, §5.2), so keys are
matched case-insensitively with `_` and `-` ignored, against the alias sets seen in
Sautikit's docs, its SDK, the platform page and integrator code.
"""
from __future__ import annotations

import functools
import re
import time
from dataclasses import dataclass
from typing import Any, Mapping
from urllib.parse import unquote_to_bytes

import orjson

CALL_ALIASES = {
    "id": ("callid", "callsid", "callsessionid", "sessionid"),
    "from": ("from", "caller", "callernumber", "callerid"),
    "to": ("to", "called", "callednumber", "destination"),
    "direction": ("direction", "calldirection"),
    "digits": ("digits", "dtmfdigits", "dtmf"),
    "clientRequestId": ("clientrequestid",),
}
EVENT_ALIASES = {
    "event": ("statuscallbackevent", "event", "conferenceevent", "eventtype", "status", "type", "kind"),
    "room": ("conferencename", "conferenceroomname", "roomname", "room", "conference", "friendlyname"),
    "call": ("callid", "callsid", "participantcallid", "legid", "calluuid"),
    "participant": ("participantid", "conferenceparticipantid", "memberid"),
    "caller": ("caller", "callernumber", "participantnumber", "from"),
    "count": ("participants", "participantcount", "membercount"),
    "at": ("timestamp", "time", "occurredat", "eventtime", "eventtimestamp", "createdat"),
    "recording": ("recordingurl", "recording", "recordingfile", "downloadurl", "recordingfileurl"),
    "id": ("eventid", "idempotencykey", "sequencenumber", "sequence"),
}
EVENT_NAMES = {
    "start": "start", "started": "start", "conferencestart": "start", "conferencestarted": "start",
    "end": "end", "ended": "end", "conferenceend": "end", "conferenceended": "end", "stop": "end",
    "join": "join", "joined": "join", "participantjoin": "join", "participantjoined": "join", "add": "join",
    "leave": "leave", "left": "leave", "participantleave": "leave", "participantleft": "leave", "del": "leave",
    "mute": "mute", "muted": "mute", "participantmute": "mute", "participantmuted": "mute",
    "unmute": "unmute", "unmuted": "unmute", "participantunmute": "unmute", "participantunmuted": "unmute",
}
_FOLD = re.compile(r"[^a-z0-9]")


@functools.lru_cache(maxsize=1024)
def fold(key: str) -> str:
    """A field name folded for matching: `Call_Sid` and `callSid` both become `callsid`."""
    return _FOLD.sub("", key.lower())


def _unquote(text: str) -> str:
    # unquote_plus's result, about twice as fast for the short values callbacks carry.
    return unquote_to_bytes(text.replace("+", " ")).decode("utf-8", "replace")


def parse_query(text: str) -> dict[str, str]:
    """Form or query-string fields; the first value wins when a key repeats.

    The same result as `urllib.parse.parse_qsl(text, keep_blank_values=True)`, without
    unquoting the many pieces that need none (a test holds the two equal).
    """
    fields: dict[str, str] = {}
    if not text:
        return fields
    for pair in text.split("&"):
        if not pair:
            continue
        key, _, value = pair.partition("=")
        if "%" in key or "+" in key:
            key = _unquote(key)
        if "%" in value or "+" in value:
            value = _unquote(value)
        if key not in fields:
            fields[key] = value
    return fields


def parse_body(raw: bytes, content_type: str | None) -> dict[str, Any]:
    """The request fields, whether the body is JSON or form-encoded; unreadable bodies give {}."""
    stripped = raw.lstrip()
    if (content_type or "").startswith("application/json") or stripped[:1] == b"{":
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return {}
        if isinstance(data, dict):
            # Some senders wrap the fields: {"data": {...}} or {"payload": {...}}.
            for envelope in ("data", "payload"):
                if isinstance(data.get(envelope), dict):
                    return {**{k: v for k, v in data.items() if k != envelope}, **data[envelope]}
            return data
        return {}
    return parse_query(raw.decode("utf-8", "replace"))


def _pick(folded: dict[str, Any], aliases: tuple[str, ...]) -> Any:
    for alias in aliases:
        if alias in folded and folded[alias] not in (None, ""):
            return folded[alias]
    return None


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def call_fields(fields: dict[str, Any]) -> dict[str, Any]:
    """The template context's `call`: id, from, to, direction, digits, clientRequestId and raw."""
    folded = {fold(k): v for k, v in fields.items()}
    call: dict[str, Any] = {name: _text(_pick(folded, aliases)) for name, aliases in CALL_ALIASES.items()}
    call["raw"] = fields
    return call


def has_digits(fields: dict[str, Any]) -> bool:
    """Whether Sautikit posted collected digits (even an empty string: the caller pressed only #)."""
    return any(fold(k) in CALL_ALIASES["digits"] for k in fields)


@dataclass(frozen=True)
class Event:
    """One conference status event, whatever spelling it arrived in."""

    kind: str | None
    room: str | None
    call: str | None
    participant: str | None
    at: float
    recording: str | None
    event_id: str | None
    raw: dict
    timed: bool = True  # whether `at` came from the sender (False: it is the arrival time)

    @property
    def readable(self) -> bool:
        if self.kind is None or self.room is None:
            return False
        return self.kind in ("start", "end") or self.call is not None

    def dedupe_key(self) -> str:
        """Idempotency key: the event id when sent, else what identifies the event itself.

        Without an id or a sender's timestamp, a retry arrives at another time, so a participant
        event is keyed on room, kind and call alone (a retried `join` after the `leave` must not
        seat the caller again). Room `start`/`end` keep the arrival time: a room name may host
        another session later, and duplicates of those only move the session's times.
        """
        if self.event_id:
            return f"id:{self.event_id}"
        if not self.timed and self.call is not None:
            return f"{self.room}|{self.kind}|{self.call}|untimed"
        return f"{self.room}|{self.kind}|{self.call or ''}|{self.at!r}"


def _timestamp(value: Any, fallback: float) -> tuple[float, bool]:
    if value is None:
        return fallback, False
    try:
        number = float(value)
        return (number / 1000.0 if number > 1e11 else number), True  # milliseconds
    except (TypeError, ValueError):
        pass
    from datetime import datetime

    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp(), True
    except ValueError:
        return fallback, False


def event(fields: dict[str, Any], headers: Mapping[str, str | None] | None = None, now: float | None = None) -> Event:
    """A status event from its raw fields (and the event-id headers Sautikit's webhooks carry)."""
    folded = {fold(k): v for k, v in fields.items()}
    raw_kind = _pick(folded, EVENT_ALIASES["event"])
    kind = EVENT_NAMES.get(fold(_text(raw_kind))) if raw_kind is not None else None
    at, timed = _timestamp(_pick(folded, EVENT_ALIASES["at"]), time.time() if now is None else now)
    event_id = _pick(folded, EVENT_ALIASES["id"])
    if event_id is None and headers is not None:
        event_id = headers.get("X-Sautikit-Event-Id") or headers.get("X-Sautikit-Idempotency-Key")
    room = _pick(folded, EVENT_ALIASES["room"])
    call = _pick(folded, EVENT_ALIASES["call"])
    recording = _pick(folded, EVENT_ALIASES["recording"])
    return Event(kind, None if room is None else _text(room), None if call is None else _text(call),
                 None if (p := _pick(folded, EVENT_ALIASES["participant"])) is None else _text(p), at,
                 None if recording is None else _text(recording), None if event_id is None else _text(event_id),
                 fields, timed)
