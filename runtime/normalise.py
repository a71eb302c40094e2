"""Request normalisation: Sautikit's many spellings of the same field, read into one shape.

The platform does not document its field names (fact sheet §4, §5.2), so keys are
matched case-insensitively with `_` and `-` ignored, against the alias sets seen in
Sautikit's docs, its SDK, the platform page and integrator code.
"""
from __future__ import annotations

import codecs
import functools
import io
import math
import re
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Mapping
from urllib.parse import parse_qsl, unquote_to_bytes

import orjson
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.formparser import MultiPartParser
from werkzeug.http import parse_options_header

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
# No control characters (C0, DEL, C1), line or paragraph separators, or bidi overrides in an id:
# they split log lines, drive terminals (`roomc rooms --watch`) and make one name look like another.
_PRINTABLE = re.compile(r"[^\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]*")


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


def _media(content_type: str | None) -> tuple[str, dict[str, str]]:
    """The media type (lower case) and its parameters, e.g. the charset and the multipart boundary."""
    if not content_type:
        return "", {}
    if ";" not in content_type:  # the usual case, without werkzeug's full parse
        return content_type.strip().lower(), {}
    media, params = parse_options_header(content_type)
    return media.lower(), params


def _charset(params: dict[str, str]) -> str | None:
    """The declared charset if Python knows it and it is not UTF-8 (the fast default)."""
    name = params.get("charset", "").strip().lower()
    if not name or name in ("utf-8", "utf8"):
        return None
    try:
        return codecs.lookup(name).name
    except LookupError:
        return None  # an unknown charset: read as UTF-8, replacing what does not decode


def _json_fields(raw: bytes, charset: str | None) -> dict[str, Any]:
    if charset is not None and not charset.startswith("utf_8"):
        raw = raw.decode(charset, "replace").encode("utf-8", "replace")
    if raw[:3] == b"\xef\xbb\xbf":
        raw = raw[3:]
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


def _memory_stream(*_args: Any, **_kwargs: Any) -> io.BytesIO:
    return io.BytesIO()


def _multipart_fields(raw: bytes, params: dict[str, str], charset: str | None) -> dict[str, Any]:
    """The text fields of a multipart/form-data body (file parts are not call fields); {} if malformed."""
    boundary = params.get("boundary", "")
    if not boundary:
        return {}
    # File parts go to memory (the body is already bounded by max_body_bytes), never to temporary files.
    parser = MultiPartParser(stream_factory=_memory_stream, max_form_memory_size=len(raw) + 1, max_form_parts=1000)
    try:
        form, _files = parser.parse(io.BytesIO(raw), boundary.encode("latin-1", "replace"), len(raw))
    except (ValueError, RequestEntityTooLarge):
        return {}
    fields: dict[str, Any] = {}
    for key, value in form.items(multi=True):
        if charset is not None:  # werkzeug decodes parts as UTF-8; re-read them in the declared charset
            value = value.encode("utf-8", "surrogateescape").decode(charset, "replace")
        fields.setdefault(key, value)
    return fields


def parse_body(raw: bytes, content_type: str | None) -> dict[str, Any]:
    """The request fields, whatever the body's encoding: JSON, form, multipart, any declared charset.

    Unreadable bodies give {}. JSON is recognised by its media type (`application/json` and
    any `+json`) or by a body that starts with `{`; a form body in a declared charset other
    than UTF-8 is decoded in it, percent-escapes included.
    """
    media, params = _media(content_type)
    charset = _charset(params) if params else None
    if media == "multipart/form-data":
        return _multipart_fields(raw, params, charset)
    stripped = raw.lstrip()
    if media == "application/json" or media.endswith("+json") or stripped[:1] == b"{" or stripped[:4] == b"\xef\xbb\xbf{":
        return _json_fields(raw, charset)
    if charset is not None:
        fields: dict[str, Any] = {}
        for key, value in parse_qsl(raw.decode(charset, "replace"), keep_blank_values=True, encoding=charset,
                                    errors="replace"):
            fields.setdefault(key, value)
        return fields
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
    folded = {fold(k): v for k, v in fields.items() if isinstance(k, str)}
    call: dict[str, Any] = {name: _text(_pick(folded, aliases)) for name, aliases in CALL_ALIASES.items()}
    # The id keys the caller's seat and is shown to operators: an unusable one (a mapping, control
    # characters, past 256 characters) counts as no id at all, so it takes no seat.
    call_id, usable = _field(_pick(folded, CALL_ALIASES["id"]))
    call["id"] = call_id if usable and call_id else ""
    call["raw"] = fields
    return call


def has_digits(fields: dict[str, Any]) -> bool:
    """Whether Sautikit posted collected digits (even an empty string: the caller pressed only #)."""
    return any(fold(k) in CALL_ALIASES["digits"] for k in fields)


# Plausible sender clocks: the platform retries a delivery for up to about a week before
# dead-lettering it (fact sheet §5.5), so an old timestamp can be genuine; one from the future
# is only a skewed clock. Outside this window the arrival time is used and the event is marked.
MAX_EVENT_AGE = 8 * 24 * 3600.0
MAX_CLOCK_SKEW = 300.0
# Longest identifier or name kept as a field; longer values make the event unreadable (kept raw).
MAX_FIELD_CHARS = 256
MAX_URL_CHARS = 2048


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
    clock: str | None = None  # why the sender's timestamp was set aside, when it was

    @property
    def readable(self) -> bool:
        if self.kind is None or self.room is None:
            return False
        return self.kind in ("start", "end") or self.call is not None

    def dedupe_key(self) -> str:
        """Idempotency key, always scoped by room, kind and call: platform ids and sequence
        numbers may be per conference, so a bare id shared by two rooms must not make one a
        duplicate of the other.

        Without an id or a sender's timestamp, a retry arrives at another time, so a participant
        event is keyed on room, kind and call alone (a retried `join` after the `leave` must not
        seat the caller again). Room `start`/`end` keep the arrival time: a room name may host
        another session later, and duplicates of those only move the session's times.
        """
        # \x1f cannot occur in a field (control characters make an event unreadable), so no id
        # containing the separator can make two keys collide.
        scope = f"{self.room}\x1f{self.kind}\x1f{self.call or ''}"
        if self.event_id:
            return f"{scope}\x1fid:{self.event_id}"
        if not self.timed and self.call is not None:
            return f"{scope}\x1funtimed"
        return f"{scope}\x1f{self.at!r}"


def _finite(number: float) -> bool:
    return math.isfinite(number)


def _timestamp(value: Any, received: float) -> tuple[float, bool, str | None]:
    """(time, whether the sender's, why it was set aside): a finite, plausible time or the arrival time."""
    if value is None:
        return received, False, None
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return received, False, "timestamp is not a number or a date"
    number: float | None = None
    if isinstance(value, (int, float)):
        number = float(value) if not isinstance(value, int) or abs(value) < 10 ** 20 else math.inf
    elif len(value) <= 64:
        try:
            number = float(value)
        except ValueError:
            try:
                parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
            except (ValueError, OverflowError, OSError):
                return received, False, "timestamp is not a number or a date"
            if "T" not in value.upper() and " " not in value.strip():
                return received, False, "timestamp is a date without a time"
            if parsed.tzinfo is None:  # never the server's own zone: platforms send UTC
                parsed = parsed.replace(tzinfo=timezone.utc)
            try:
                number = parsed.timestamp()
            except (OverflowError, OSError, ValueError):
                return received, False, "timestamp is not a number or a date"
    if number is None or not _finite(number):
        return received, False, "timestamp is not a finite number"
    if number > 1e14:  # microseconds
        number /= 1e6
    elif number > 1e11:  # milliseconds
        number /= 1000.0
    if not received - MAX_EVENT_AGE <= number <= received + MAX_CLOCK_SKEW:
        return received, False, "timestamp outside the plausible window"
    return number, True, None


def _field(value: Any, limit: int = MAX_FIELD_CHARS) -> tuple[str | None, bool]:
    """(the field as text, whether usable): a mapping, a list, control characters or a value past
    `limit` characters is present but unusable."""
    if value is None:
        return None, True
    if isinstance(value, (dict, list)):
        return None, False
    text = _text(value)
    if len(text) > limit or not _PRINTABLE.fullmatch(text):
        return None, False
    return text or None, True


def event(fields: dict[str, Any], headers: Mapping[str, str | None] | None = None, now: float | None = None) -> Event:
    """A status event from its raw fields (and the event-id headers Sautikit's webhooks carry).

    Every field is checked: identifiers must be short scalar text, the timestamp finite and
    plausible. An unusable room, kind or call makes the event unreadable (it is kept raw);
    an unusable timestamp is replaced by the arrival time and the event marked.
    """
    received = time.time() if now is None else now
    folded = {fold(k): v for k, v in fields.items() if isinstance(k, str)}
    raw_kind, kind_ok = _field(_pick(folded, EVENT_ALIASES["event"]))
    kind = EVENT_NAMES.get(fold(raw_kind)) if raw_kind is not None else None
    at, timed, clock = _timestamp(_pick(folded, EVENT_ALIASES["at"]), received)
    event_id, _ = _field(_pick(folded, EVENT_ALIASES["id"]))
    if event_id is None and headers is not None:
        event_id, _ = _field(headers.get("X-Sautikit-Event-Id") or headers.get("X-Sautikit-Idempotency-Key"))
    room, room_ok = _field(_pick(folded, EVENT_ALIASES["room"]))
    call, call_ok = _field(_pick(folded, EVENT_ALIASES["call"]))
    participant, _ = _field(_pick(folded, EVENT_ALIASES["participant"]))
    recording, _ = _field(_pick(folded, EVENT_ALIASES["recording"]), MAX_URL_CHARS)
    if recording is not None and not recording.startswith(("https://", "http://")):
        recording = None
    if not (room_ok and call_ok and kind_ok):
        kind = None  # unreadable: kept raw, never half-read
    return Event(kind, room, call, participant, at, recording, event_id, fields, timed, clock)
