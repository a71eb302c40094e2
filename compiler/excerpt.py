"""The source line under a finding, with a caret under its span, made safe to print.

Policies come from untrusted pull requests, so a line is never echoed raw: control and
format characters (terminal escapes, bidirectional overrides) are shown as `\\x1b`-style
escapes, tabs are expanded, and very long lines are cut to a window around the span.
"""
from __future__ import annotations

import re
import unicodedata

from .diagnostics import Span

TAB = 4
WINDOW = 120  # cells of source shown at most; a 1 MB one-line file prints one short line
LEAD = 40  # cells kept left of the span when the line has to be cut
REACH = 2048  # characters looked at around a span: many findings on one huge line stay linear

_WORD = re.compile(r"[\w.$-]+")


def safe(text: str) -> str:
    """`text` with control and format characters shown as escapes, so it cannot drive a terminal."""
    if text.isprintable():
        return text
    # A line break in a message (PyYAML writes some on two lines) keeps the finding on one line.
    return "".join(ch if ch.isprintable() or ch == " " else " " if ch == "\n" else _escape(ch) for ch in text)


def _escape(ch: str) -> str:
    code = ord(ch)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def _cells(ch: str, at: int) -> str:
    """What one source character looks like on screen at display column `at`."""
    if ch == "\t":
        return " " * (TAB - at % TAB)
    if ch.isprintable() or ch == " ":
        return ch
    return _escape(ch)


def _width(piece: str) -> int:
    if piece.isascii():
        return len(piece)
    return sum(0 if unicodedata.combining(c) else 2 if unicodedata.east_asian_width(c) in "WF" else 1
               for c in piece)


def _closing(line: str, start: int) -> int:
    """The end of a quoted scalar or flow collection that opens at `start` (or the line's end)."""
    opener = line[start]
    if opener in "\"'":
        i = start + 1
        while i < len(line):
            if opener == '"' and line[i] == "\\":
                i += 2
                continue
            if line[i] == opener:
                if opener == "'" and line[i + 1:i + 2] == "'":
                    i += 2
                    continue
                return i + 1
            i += 1
        return len(line)
    depth, quote = 0, ""
    for i in range(start, len(line)):
        ch = line[i]
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "\"'":
            quote = ch
        elif ch in "[{":
            depth += 1
        elif ch in "]}":
            depth -= 1
            if depth == 0:
                return i + 1
    return len(line)


def token(line: str, start: int) -> int:
    """Where the YAML token starting at `start` ends: a key, a scalar, a quoted string or a word inside one."""
    if start >= len(line):
        return start
    if len(line) > 2 * REACH:  # only a bounded piece of a huge line is ever looked at (or shown)
        offset = max(0, start - REACH)
        return offset + token(line[offset:start + REACH], start - offset)
    if line[start] in "\"'[{":
        return _closing(line, start)
    before = line[:start].rstrip()
    if not before or before[-1] in ":-,[{?":
        in_flow = before.count("[") + before.count("{") > before.count("]") + before.count("}")
        end = len(line)
        for stop in (": ", " #") + ((",", "]", "}") if in_flow else ()):
            found = line.find(stop, start)
            if found != -1:
                end = min(end, found)
        if line.endswith(":") and end == len(line):
            end -= 1
        return max(len(line[:end].rstrip()), start + 1)
    word = _WORD.match(line, start)
    return word.end() if word else start + 1


def underline(line: str, span: Span) -> tuple[int, int]:
    """The 0-based [start, end) characters of `line` to underline for `span`."""
    start = min(max(span.column - 1, 0), len(line))
    if span.end_line == span.line and span.end_column > span.column:
        end = min(span.end_column - 1, len(line))
    elif span.end_line > span.line:
        end = max(start, len(line[:start + REACH].rstrip()))
    else:
        end = token(line, start)
    return start, max(end, start + 1)


def excerpt(line: str, span: Span) -> tuple[str, str]:
    """The line as shown (escaped, tabs expanded, cut to a window) and the caret line under its span."""
    start, end = underline(line, span)
    left = 0 if len(line) <= WINDOW or start <= LEAD else start - LEAD
    right = min(len(line), left + WINDOW)
    end = min(end, max(right, start + 1))
    shown, marks, at = [], [], 0
    if left:
        shown.append("…")
        marks.append(" ")
        at = 1
    for index in range(left, max(right, end)):
        piece = _cells(line[index], at) if index < len(line) else ""
        cells = _width(piece) if index < len(line) else 1
        shown.append(piece)
        marks.append(("^" if start <= index < end else " ") * cells)
        at += cells
    if right < len(line):
        shown.append("…")
    return "".join(shown).rstrip(), "".join(marks).rstrip()


def end_of(line: str | None, span: Span) -> tuple[int, int]:
    """The span's end as (line, exclusive 1-based column), from the span or the token in `line`; (0, 0) if unknown."""
    if span.end_line:
        return span.end_line, span.end_column
    if not line:
        return 0, 0
    return span.line, underline(line, span)[1] + 1
