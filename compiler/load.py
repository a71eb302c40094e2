"""Pass 1, load: bytes on disk to plain data plus the source span of every node.

PyYAML hides several traps (duplicate keys keep the last value, `yes` is a
boolean, merge keys, alias bombs); this loader walks the composed node graph
itself so each trap becomes a Diagnostic at the right line instead.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from yaml.constructor import SafeConstructor

from .diagnostics import Diagnostic, Severity, Span, nearest_span

# Enough for any real policy; a billion-laughs document needs ~10^9.
MAX_NODES = 200_000
MAX_DEPTH = 64

# LibYAML's composer when PyYAML was built with it (the wheels are): same nodes and marks, ~10x faster.
LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
BOOL_TAG = "tag:yaml.org,2002:bool"
TIMESTAMP_TAG = "tag:yaml.org,2002:timestamp"
SUPPRESSION = re.compile(r"#\s*roomc:\s*ignore\[([A-Za-z0-9_,\s]*)\]")


@dataclass
class SourceFile:
    """One loaded YAML file: its data, where every node came from, and its traps."""

    path: str
    text: str = ""
    data: Any = None
    value_spans: dict[tuple, Span] = field(default_factory=dict)
    key_spans: dict[tuple, Span] = field(default_factory=dict)
    suppressions: dict[int, tuple[Span, frozenset[str]]] = field(default_factory=dict)
    diagnostics: list[Diagnostic] = field(default_factory=list)

    def span(self, path: tuple) -> Span:
        """The nearest known span for a JSON path (walking up to the parent)."""
        return nearest_span(self.value_spans, path, Span(self.path, 1, 1))


class _TooLarge(Exception):
    pass


class _Walker:
    """Turns a composed node graph into Python data, recording spans and traps."""

    def __init__(self, source: SourceFile):
        self.source = source
        self.constructor = SafeConstructor()
        self.count = 0

    def span_of(self, node: yaml.Node) -> Span:
        return Span(self.source.path, node.start_mark.line + 1, node.start_mark.column + 1)

    def report(self, code: str, severity: Severity, message: str, node: yaml.Node, path: tuple) -> None:
        self.source.diagnostics.append(Diagnostic(code, severity, message, self.span_of(node), path))

    def walk(self, node: yaml.Node, path: tuple, depth: int = 0) -> Any:
        self.count += 1
        if self.count > MAX_NODES or depth > MAX_DEPTH:
            raise _TooLarge()
        span = self.span_of(node)
        if isinstance(node, yaml.ScalarNode) and node.style in ("|", ">"):
            # A block scalar's text starts on the line after its `|`; point there so template lines line up.
            lines = self.source.text.splitlines()
            if span.line < len(lines):
                text_line = lines[span.line]
                span = Span(span.file, span.line + 1, len(text_line) - len(text_line.lstrip(" ")) + 1)
        self.source.value_spans.setdefault(path, span)
        if isinstance(node, yaml.MappingNode):
            return self.walk_mapping(node, path, depth)
        if isinstance(node, yaml.SequenceNode):
            return [self.walk(child, path + (i,), depth + 1) for i, child in enumerate(node.value)]
        assert isinstance(node, yaml.ScalarNode)
        return self.scalar(node, path)

    def walk_mapping(self, node: yaml.MappingNode, path: tuple, depth: int) -> dict:
        out: dict[str, Any] = {}
        first_seen: dict[str, yaml.Node] = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                self.report("RC005", Severity.ERROR,
                            "merge key `<<` is YAML 1.1 only and ignored by YAML 1.2 tools; write the keys out",
                            key_node, path)
                continue
            key = str(key_node.value) if isinstance(key_node, yaml.ScalarNode) else repr(key_node.value)
            if key in first_seen:
                first = self.span_of(first_seen[key])
                self.report("RC002", Severity.ERROR,
                            f"duplicate key '{key}' (first at line {first.line}, column {first.column}); "
                            "YAML would silently keep only this one", key_node, path + (key,))
                # Keep the first definition's spans so both places stay reachable.
            else:
                first_seen[key] = key_node
                self.source.key_spans[path + (key,)] = self.span_of(key_node)
            out[key] = self.walk(value_node, path + (key,), depth + 1)
        return out

    def scalar(self, node: yaml.ScalarNode, path: tuple) -> Any:
        if node.tag == BOOL_TAG and node.value.lower() not in ("true", "false"):
            self.report("RC003", Severity.ERROR,
                        f"'{node.value}' is a boolean only in YAML 1.1 (a string in YAML 1.2 editors); "
                        f"write {str(node.value.lower() in ('yes', 'y', 'on')).lower()} or quote it",
                        node, path)
        if node.tag == TIMESTAMP_TAG:
            return node.value
        try:
            value = self.constructor.construct_object(node, deep=True)
        except yaml.YAMLError:
            return node.value
        return value.decode("latin-1") if isinstance(value, bytes) else value


def _expanded_size(node: yaml.Node, memo: dict[int, int], active: set[int]) -> int:
    """Nodes the document becomes once aliases are expanded, counted without expanding them."""
    key = id(node)
    if key in memo:
        return memo[key]
    if key in active:
        raise _TooLarge()  # an alias that contains itself
    active.add(key)
    size = 1
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            size += _expanded_size(k, memo, active) + _expanded_size(v, memo, active)
            if size > MAX_NODES:
                break
    elif isinstance(node, yaml.SequenceNode):
        for child in node.value:
            size += _expanded_size(child, memo, active)
            if size > MAX_NODES:
                break
    active.discard(key)
    memo[key] = size
    return size


def _decode(raw: bytes, source: SourceFile) -> str | None:
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        before = raw[: exc.start]
        line = before.count(b"\n") + 1
        column = exc.start - (before.rfind(b"\n") + 1) + 1
        source.diagnostics.append(Diagnostic(
            "RC007", Severity.ERROR,
            f"file is not UTF-8 (byte 0x{raw[exc.start]:02x}); save it as UTF-8",
            Span(source.path, line, column)))
        return None


def _scan_lines(source: SourceFile) -> set[int]:
    """Record suppressions and report tab indentation; returns the tabbed lines."""
    tabbed = set()
    for number, line in enumerate(source.text.splitlines(), start=1):
        indent = len(line) - len(line.lstrip(" \t"))
        if "\t" in line[:indent]:
            tabbed.add(number)
            source.diagnostics.append(Diagnostic(
                "RC006", Severity.ERROR, "tab in indentation; YAML allows only spaces there",
                Span(source.path, number, line.index("\t") + 1)))
        match = SUPPRESSION.search(line)
        if match:
            codes = frozenset(c.strip().upper() for c in match.group(1).split(",") if c.strip())
            source.suppressions[number] = (Span(source.path, number, match.start() + 1), codes)
    return tabbed


def load_text(text: str | bytes, path: str = "<string>") -> SourceFile:
    """Load one YAML document from text or bytes; problems come back as diagnostics."""
    source = SourceFile(path=path)
    if isinstance(text, bytes):
        decoded = _decode(text, source)
        if decoded is None:
            return source
        text = decoded
    source.text = text
    tabbed = _scan_lines(source)
    try:
        documents = list(yaml.compose_all(text, Loader=LOADER))
    except RecursionError:
        source.diagnostics.append(Diagnostic(
            "RC009", Severity.ERROR, f"document nests deeper than {MAX_DEPTH} levels; refused", Span(path, 1, 1)))
        return source
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        if line not in tabbed:
            problem = exc.problem or "invalid YAML"
            context = f" {exc.context}" if exc.context else ""
            source.diagnostics.append(Diagnostic(
                "RC001", Severity.ERROR, f"YAML syntax error: {problem}{context}", Span(path, line, column)))
        return source
    except yaml.YAMLError as exc:
        source.diagnostics.append(Diagnostic("RC001", Severity.ERROR, f"YAML error: {exc}", Span(path, 1, 1)))
        return source
    documents = [d for d in documents if d is not None]
    if not documents:
        source.diagnostics.append(Diagnostic(
            "RC008", Severity.ERROR, "file is empty; a policy needs at least `roomc: 1`", Span(path, 1, 1)))
        return source
    lines = text.splitlines()
    for extra in documents[1:]:
        line = extra.start_mark.line
        # A document's mark may sit one past the last line (text ending in `---`); walk back from there.
        line = min(line, len(lines) - 1)
        while line > 0 and not lines[line].startswith("---"):
            line -= 1  # point at the `---` that starts the document, not its first key
        source.diagnostics.append(Diagnostic(
            "RC004", Severity.ERROR,
            "more than one YAML document in the file; only the first is read, split the rest into their own files",
            Span(path, line + 1, 1)))
    try:
        if _expanded_size(documents[0], {}, set()) > MAX_NODES:
            raise _TooLarge()
        source.data = _Walker(source).walk(documents[0], ())
    except (_TooLarge, RecursionError):
        source.data = None
        source.value_spans.clear()
        source.key_spans.clear()
        source.diagnostics.append(Diagnostic(
            "RC009", Severity.ERROR,
            f"document expands to more than {MAX_NODES:,} nodes or {MAX_DEPTH} levels "
            "(an alias bomb or a self-referencing alias); refused",
            Span(path, 1, 1)))
    return source


def load_file(path: str | Path) -> SourceFile:
    """Load one YAML file from disk."""
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        source = SourceFile(path=str(path))
        source.diagnostics.append(Diagnostic(
            "RC000", Severity.ERROR, f"cannot read file: {exc.strerror}", Span(str(path), 1, 1)))
        return source
    return load_text(raw, str(path))


def discover(paths: list[str]) -> list[str]:
    """Expand folders into their YAML files, sorted so output never depends on disk order."""
    found: list[str] = []
    for entry in paths:
        p = Path(entry)
        if p.is_dir():
            found.extend(str(f) for f in sorted(p.rglob("*")) if f.suffix in (".yaml", ".yml") and f.is_file()
                         and "scenarios" not in f.relative_to(p).parts)
        else:
            found.append(str(p))
    return sorted(dict.fromkeys(found))
