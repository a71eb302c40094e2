"""The meeting directory at run time: meeting numbers and their PINs, held only as salted, keyed hashes.

Loaded once at start-up (`load`), from the file the table names or the one its `fileEnv`
variable names; a directory with any error refuses to serve (the message names rows and
columns, never a PIN). Each PIN is kept as HMAC-SHA256(process key, entry salt + PIN): the
salt is random per entry and the key random per process, both made at load time, so the same
PIN in two meetings (or two workers) never gives the same hash, and neither the table, the
store nor a log ever holds a PIN. A keyed hash rather than scrypt: stretching costs tens of
milliseconds per PIN at load (100,000 meetings would take minutes per worker) and a 4-8 digit
PIN space stays searchable under any stretching a voice route could afford; what keeps PINs
safe is that they never leave the file (docs/language.md, "Meeting directory").
"""
from __future__ import annotations

import hashlib
import hmac
import os
from dataclasses import dataclass
from typing import Mapping

from roomc.compiler import directory as directory_file

DIGITS_LIMIT = 32


class DirectoryError(ValueError):
    """The directory cannot be served: `roomc serve` prints this and does not start."""


@dataclass(frozen=True)
class Meeting:
    """One meeting: its number, a display name, and its PINs as hashes."""

    number: str
    name: str | None
    salt: bytes
    host: bytes
    participant: bytes


class MeetingDirectory:
    """Meeting numbers → hashed PINs; `pin_role` tells which PIN some digits are, in constant time per meeting."""

    def __init__(self, entries: list[directory_file.Entry], source: str = ""):
        self.source = source
        self._key = os.urandom(32)
        self._meetings: dict[str, Meeting] = {}
        for entry in entries:
            salt = os.urandom(16)
            self._meetings[entry.meeting] = Meeting(entry.meeting, entry.name, salt, self._hash(salt, entry.host_pin),
                                                    self._hash(salt, entry.participant_pin))
        # Compared against when the meeting is unknown, so an unknown number costs what a known one does.
        self._decoy = Meeting("", None, os.urandom(16), os.urandom(32), os.urandom(32))

    def _hash(self, salt: bytes, pin: str) -> bytes:
        return hmac.new(self._key, salt + pin.encode(), hashlib.sha256).digest()

    def __len__(self) -> int:
        return len(self._meetings)

    def has(self, meeting: str) -> bool:
        """Whether `meeting` is a meeting number in the directory (numbers are not secret: the lobby tells)."""
        return meeting in self._meetings

    def name(self, meeting: str) -> str | None:
        """The meeting's display name, if the directory gives one."""
        found = self._meetings.get(meeting)
        return found.name if found else None

    def pin_role(self, meeting: str, digits: str) -> str | None:
        """`hostPin` or `participantPin` when `digits` are that PIN of `meeting`, else None.

        Digits that are not 1-32 of 0-9 are refused before any hashing; otherwise one hash and two
        constant-time comparisons, whether or not the meeting exists or either PIN matches."""
        if not (0 < len(digits) <= DIGITS_LIMIT and digits.isascii() and digits.isdigit()):
            return None
        entry = self._meetings.get(meeting, self._decoy)
        given = self._hash(entry.salt, digits)
        host = hmac.compare_digest(given, entry.host)
        participant = hmac.compare_digest(given, entry.participant)
        if entry is self._decoy:
            return None
        return "hostPin" if host else "participantPin" if participant else None


def pin_flows(table: dict) -> list[str]:
    """The flows that count tries or compare directory PINs: an unsigned request names its own call, so
    served unsigned each guess could come with a fresh count (lint's RC237)."""
    return [fid for fid, flow in (table.get("flows") or {}).items()
            if flow.get("tries") or any(b.get("directory") in ("hostPin", "participantPin")
                                        for b in flow.get("branches") or [])]


def location(table: dict, environ: Mapping[str, str]) -> str | None:
    """The directory file to load: the one `fileEnv` names when that is set, else the table's `file`."""
    spec = table.get("directory")
    if not spec:
        return None
    variable = spec.get("fileEnv")
    if variable and (environ.get(variable) or "").strip():
        return environ[variable].strip()
    if spec.get("file"):
        return str(spec["file"])
    raise DirectoryError(f"the policy's meeting directory is read from ${variable}, which is unset or empty: set it "
                         "to the directory file's path")


def load(table: dict, environ: Mapping[str, str] | None = None) -> MeetingDirectory | None:
    """The table's meeting directory, read and hashed now; None when the policy has none.

    Raises DirectoryError (a clear message, no PIN in it) for a missing, unreadable or broken file."""
    path = location(table, os.environ if environ is None else environ)
    if path is None:
        return None
    read = directory_file.read(path)
    if not read.ok:
        raise DirectoryError(f"the meeting directory {path} cannot be served:\n{read.problems()}")
    return MeetingDirectory(read.entries, path)
