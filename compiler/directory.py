"""The meeting directory file: meeting numbers with their own host and participant PINs.

Read by lint (every problem a finding) and by the runtime at start-up (any error refuses to
serve), through the same `read`. A directory is a CSV file with a header row
(`meeting,hostPin,participantPin[,name]`) or a YAML file (`meetings:` a list of mappings with
the same keys). Bounded: at most MAX_BYTES, checked before reading, and MAX_MEETINGS rows,
counted while reading. No finding ever quotes a PIN: a directory's findings name the row and
the column, never the value.
"""
from __future__ import annotations

import csv
import io
import os
import re
import stat
from dataclasses import dataclass, field

from .diagnostics import Diagnostic, Severity, Span

MAX_BYTES = 4 << 20  # about 100,000 rows of a meeting number, two PINs and a short name
MAX_MEETINGS = 100_000
MAX_NAME = 100
COLUMNS = ("meeting", "hostPin", "participantPin", "name")
REQUIRED = ("meeting", "hostPin", "participantPin")
# ASCII digits only: str.isdigit() also accepts '²' and Arabic-Indic digits, which no keypad sends.
DIGITS = re.compile(r"[0-9]{1,32}")
# What spreadsheets run as a formula when the file is opened there (CSV injection).
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")

UNREADABLE, BAD_ROW, DUPLICATE, SAME_PIN = "RC230", "RC231", "RC232", "RC233"


@dataclass(frozen=True)
class Entry:
    """One meeting as written in the file (PINs in clear: the runtime hashes them and drops this)."""

    meeting: str
    host_pin: str
    participant_pin: str
    name: str | None
    line: int


@dataclass
class Directory:
    """A read directory file: its entries and every finding about it."""

    path: str
    entries: list[Entry] = field(default_factory=list)
    findings: list[Diagnostic] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not any(d.severity is Severity.ERROR for d in self.findings)

    def problems(self, limit: int = 5) -> str:
        """The first error findings as one line each, for a refusal message (they never quote a PIN)."""
        errors = [d for d in self.findings if d.severity is Severity.ERROR]
        lines = [f"{d.span.file}:{d.span.line}: [{d.code}] {d.message}" for d in errors[:limit]]
        if len(errors) > limit:
            lines.append(f"... and {len(errors) - limit} more (roomc lint shows them all)")
        return "\n".join(lines)


def _finding(directory: Directory, code: str, message: str, line: int = 1, severity: Severity = Severity.ERROR,
             help: str | None = None) -> None:
    directory.findings.append(Diagnostic(code, severity, message, Span(directory.path, line, 1), (), help or ""))


def read(path: str) -> Directory:
    """Read and check a directory file; never raises for anything the file holds or lacks."""
    directory = Directory(path)
    raw = _raw(directory)
    if raw is None:
        return directory
    try:
        text = raw.decode("utf-8-sig")  # a byte-order mark (spreadsheets write one) is not part of the header
    except UnicodeDecodeError as exc:
        _finding(directory, UNREADABLE, f"not UTF-8 (byte {exc.start}); save the directory as UTF-8")
        return directory
    if path.lower().endswith((".yaml", ".yml")):
        rows = _yaml_rows(directory, text)
    elif path.lower().endswith(".csv"):
        rows = _csv_rows(directory, text)
    else:
        _finding(directory, UNREADABLE, "a meeting directory is a .csv, .yaml or .yml file")
        return directory
    _check_rows(directory, rows)
    return directory


def _raw(directory: Directory) -> bytes | None:
    """The file's bytes, or None with a finding: missing, not a regular file, unreadable or too large.

    Checked on the open descriptor, not the path: a path swapped for a FIFO between a stat and an
    open would block the open for ever; O_NONBLOCK opens a FIFO at once, and fstat then refuses it."""
    try:
        fd = os.open(directory.path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        _finding(directory, UNREADABLE, f"cannot read the meeting directory: {exc.strerror or exc}")
        return None
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            _finding(directory, UNREADABLE, "the meeting directory is not a regular file (a FIFO or device would hang)")
            return None
        if info.st_size > MAX_BYTES:
            _finding(directory, UNREADABLE, f"the meeting directory is {info.st_size:,} bytes, over the limit of "
                     f"{MAX_BYTES:,}; split it or remove meetings that ended")
            return None
        try:
            raw = handle.read(MAX_BYTES + 1)  # the file may have grown since fstat
        except OSError as exc:
            _finding(directory, UNREADABLE, f"cannot read the meeting directory: {exc.strerror or exc}")
            return None
    if len(raw) > MAX_BYTES:
        _finding(directory, UNREADABLE, f"the meeting directory is over the limit of {MAX_BYTES:,} bytes")
        return None
    return raw


Row = tuple[int, dict[str, object]]


def _csv_rows(directory: Directory, text: str) -> list[Row]:
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    rows: list[Row] = []
    try:
        header = next(reader, None)
        if header is None:
            _finding(directory, UNREADABLE, "the meeting directory is empty; it needs a header row "
                     "`meeting,hostPin,participantPin` and one row per meeting")
            return []
        names = [h.strip() for h in header]
        known = {c.lower(): c for c in COLUMNS}
        columns: list[str] = []
        for index, name in enumerate(names):
            column = known.get(name.lower())
            if column is None:
                _finding(directory, BAD_ROW, f"unknown column {_quotable(name)} in the header (column {index + 1}); "
                         f"expected {', '.join(COLUMNS)}")
                return []
            if column in columns:
                # Which of two equal columns holds the PIN? Refused rather than guessed.
                _finding(directory, BAD_ROW, f"column {column!r} appears twice in the header")
                return []
            columns.append(column)
        missing = [c for c in REQUIRED if c not in columns]
        if missing:
            _finding(directory, BAD_ROW, f"the header lacks {', '.join(missing)}")
            return []
        for cells in reader:
            if not any(cell.strip() for cell in cells):
                continue  # a blank line
            if len(rows) >= MAX_MEETINGS:
                _finding(directory, UNREADABLE, f"more than {MAX_MEETINGS:,} meetings; the rest is not read",
                         reader.line_num)
                break
            if len(cells) != len(columns):
                _finding(directory, BAD_ROW, f"row has {len(cells)} cells, the header {len(columns)}", reader.line_num)
                continue
            rows.append((reader.line_num, dict(zip(columns, cells, strict=True))))
    except csv.Error as exc:
        _finding(directory, UNREADABLE, f"not valid CSV: {str(exc)[:100]}", reader.line_num)
    return rows


def _quotable(name: str) -> str:
    """A header cell or key as a finding may show it: not at all when it holds a digit, since then it is
    likely data (a file saved without its header, PINs first) or another file the path points at."""
    if any(c.isdigit() for c in name):
        return "(not shown: it holds digits; is the header row `meeting,hostPin,participantPin` missing?)"
    return repr(name[:40])


def _yaml_rows(directory: Directory, text: str) -> list[Row]:
    from .load import load_text  # the policy loader: bounded (alias bombs, depth, huge numbers)

    source = load_text(text, directory.path)
    for problem in source.diagnostics:
        if problem.severity is Severity.ERROR:
            _finding(directory, UNREADABLE, f"not a readable YAML directory: {problem.message}", problem.span.line)
            return []
    data = source.data
    meetings = data.get("meetings") if isinstance(data, dict) else None
    if not isinstance(data, dict) or set(data) != {"meetings"} or not isinstance(meetings, list):
        _finding(directory, BAD_ROW, "a YAML directory is one key, `meetings:`, holding a list of "
                 "{meeting, hostPin, participantPin, name} mappings")
        return []
    rows: list[Row] = []
    for index, item in enumerate(meetings):
        line = source.span(("meetings", index)).line
        if len(rows) >= MAX_MEETINGS:
            _finding(directory, UNREADABLE, f"more than {MAX_MEETINGS:,} meetings; the rest is not read", line)
            break
        if not isinstance(item, dict):
            _finding(directory, BAD_ROW, "a meeting is a mapping with meeting, hostPin and participantPin", line)
            continue
        unknown = [str(k) for k in item if k not in COLUMNS]
        if unknown:
            _finding(directory, BAD_ROW, f"unknown key {_quotable(unknown[0])}; expected {', '.join(COLUMNS)}", line)
            continue
        rows.append((line, dict(item)))
    return rows


def _check_rows(directory: Directory, rows: list[Row]) -> None:
    first_line: dict[str, int] = {}
    for line, row in rows:
        values = {}
        bad = False
        for column in REQUIRED:
            value = row.get(column)
            if isinstance(value, bool) or not isinstance(value, (str, int)):
                _finding(directory, BAD_ROW, f"{column} is missing", line)
                bad = True
                continue
            if isinstance(value, int):
                # YAML read 0042 as 42 and lost the zeros: PINs and numbers are quoted text.
                _finding(directory, BAD_ROW, f"{column} is a YAML number; quote it (\"0042\" keeps its leading zeros)",
                         line)
                bad = True
                continue
            text = value.strip()
            if not DIGITS.fullmatch(text):
                what = "empty" if not text else "over 32 digits" if text.isascii() and text.isdigit() else \
                    "not only the digits 0-9 (a keypad sends nothing else; * and # end the entry)"
                _finding(directory, BAD_ROW, f"{column} is {what}", line)
                bad = True
                continue
            values[column] = text
        name = row.get("name")
        if name is not None and name != "":
            if not isinstance(name, str) or len(name) > MAX_NAME:
                _finding(directory, BAD_ROW, f"name must be text of at most {MAX_NAME} characters", line)
                bad = True
            elif name.startswith(FORMULA_START):
                _finding(directory, BAD_ROW, "name starts with = + - @ or a tab: a spreadsheet would run it as a "
                         "formula (CSV injection); remove the leading character", line)
                bad = True
        if bad:
            continue
        meeting = values["meeting"]
        if meeting in first_line:
            _finding(directory, DUPLICATE, f"meeting {meeting} is listed twice (first on line {first_line[meeting]}); "
                     "which PINs hold would depend on row order", line)
            continue
        first_line[meeting] = line
        if values["hostPin"] == values["participantPin"]:
            _finding(directory, SAME_PIN, f"meeting {meeting}: the host PIN equals the participant PIN, so every "
                     "participant would join as host", line)
            continue
        directory.entries.append(Entry(meeting, values["hostPin"], values["participantPin"],
                                       name if isinstance(name, str) and name else None, line))


_CACHE: dict[tuple, Directory] = {}


def read_cached(path: str) -> Directory:
    """`read`, once per file version: the directory rules of one lint run share one read."""
    try:
        info = os.stat(path)
        key: tuple = (path, info.st_mtime_ns, info.st_size, info.st_ino)
    except OSError:
        return read(path)
    if key not in _CACHE:
        if len(_CACHE) > 16:
            _CACHE.clear()
        _CACHE[key] = read(path)
    return _CACHE[key]
