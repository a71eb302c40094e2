"""Pass 1, load: bytes on disk to plain data plus the source span of every node.

PyYAML hides several traps (duplicate keys keep the last value, `yes` is a
boolean, `010` is 8, merge keys, alias bombs); this loader builds the data itself so
each trap becomes a Diagnostic at the right line instead: straight from LibYAML's events
(`_EventReader`), or, for a text with anchors, aliases, merge keys or non-scalar keys,
by walking the composed node graph (`_Walker`), which gives the same data and findings.

Policies come from untrusted pull requests, so every stage is bounded before it
costs anything: bytes read per file, files per policy, documents per file, nodes and
depth counted on LibYAML's event stream before anything is composed (the count stops a
huge document before its graph exists), and nodes and characters once aliases are expanded.
"""
from __future__ import annotations

import errno
import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from yaml.constructor import SafeConstructor

from .diagnostics import Diagnostic, Severity, Span, nearest_span

# Enough for any real policy; a billion-laughs document needs ~10^9.
MAX_NODES = 200_000
MAX_DEPTH = 64
MAX_FILE_BYTES = 1 << 20  # a policy file is a few KB; the biggest example is 2 KB
MAX_FILES = 10_000
MAX_DOCUMENTS = 2  # the one a policy file holds, and one more to say there are more
# Characters of scalar text once aliases are expanded: what the route table would carry.
MAX_EXPANDED_CHARS = 8 << 20
# Integers the room language uses are seat counts, seconds and digit counts; anything past this is a slip.
MAX_INTEGER = 2**31 - 1
MAX_INTEGER_DIGITS = 40  # converting longer digit strings costs quadratic time, so they are refused unread

# LibYAML's parser when PyYAML was built with it (the wheels are); nodes are composed in Python (below).
_BASE_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
BOOL_TAG = "tag:yaml.org,2002:bool"
INT_TAG = "tag:yaml.org,2002:int"
STR_TAG = "tag:yaml.org,2002:str"
DECIMAL = re.compile(r"-?(?:0|[1-9][0-9]{0,9})")  # no trap, no huge number: read directly
FLOAT_TAG = "tag:yaml.org,2002:float"
TIMESTAMP_TAG = "tag:yaml.org,2002:timestamp"
NULL_TAG = "tag:yaml.org,2002:null"
# The only scalar types the room language has; any other tag (`!!binary`, a local `!thing`) is written on purpose.
READ_TAGS = frozenset({STR_TAG, INT_TAG, FLOAT_TAG, BOOL_TAG, NULL_TAG, TIMESTAMP_TAG})
YAML11_BOOLEANS = frozenset({"yes", "no", "y", "n", "on", "off"})
SUPPRESSION = re.compile(r"#\s*roomc:\s*ignore\[([A-Za-z0-9_,\s]*)\]")
# What YAML allows in a stream (YAML 1.2 §5.1); anything else is refused by the parser at offset 0.
CONTROL = re.compile("[^\t\n\r\x20-\x7e\x85\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
# YAML 1.1 integers that YAML 1.2 reads differently (or as strings).
OCTAL_LIKE = re.compile(r"[-+]?0[0-9_]+")
ROUTE_TABLE_KEYS = frozenset({"format", "digest", "routes", "rooms", "flows"})


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
    # Paths whose value was refused at load (a huge number): the schema pass stays quiet about them.
    refused: set[tuple] = field(default_factory=set)

    def span(self, path: tuple) -> Span:
        """The nearest known span for a JSON path (walking up to the parent)."""
        return nearest_span(self.value_spans, path, Span(self.path, 1, 1))


class _TooLarge(Exception):
    pass


_new_object = object.__new__


def _span(file: str, line: int, column: int, inset: int = 0) -> Span:
    """Span(file, line, column, inset=inset), built without the frozen dataclass's per-field setattr.

    One is made for every node of every file; the generated __init__ was a tenth of reading a file.
    """
    span = _new_object(Span)
    span.__dict__.update(file=file, line=line, column=column, end_line=0, end_column=0, inset=inset)
    return span


class _Walker:
    """Turns a composed node graph into Python data, recording spans and traps."""

    def __init__(self, source: SourceFile):
        self.source = source
        self.constructor = SafeConstructor()
        self.count = 0
        self.lines: list[str] | None = None  # split once, on the first block scalar
        self.bad_tags: set[Span] = set()  # places already reported RC015 (an alias meets its anchor's again)

    def span_of(self, node: yaml.Node, inset: int = 0) -> Span:
        mark = node.start_mark
        return _span(self.source.path, mark.line + 1, mark.column + 1, inset)

    def report(self, code: str, severity: Severity, message: str, node: yaml.Node, path: tuple) -> None:
        self.source.diagnostics.append(Diagnostic(code, severity, message, self.span_of(node), path))

    def walk(self, node: yaml.Node, path: tuple, depth: int = 0) -> Any:
        self.count += 1
        if self.count > MAX_NODES or depth > MAX_DEPTH:
            raise _TooLarge()
        style = node.style if isinstance(node, yaml.ScalarNode) else None
        span = self.span_of(node, 1 if style in ('"', "'") else 0)
        if style in ("|", ">"):
            # A block scalar's text starts on the line after its `|`; point there so template lines line up.
            if self.lines is None:
                self.lines = self.source.text.splitlines()
            lines = self.lines
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
            if not isinstance(key_node, yaml.ScalarNode):
                kind = "mapping" if isinstance(key_node, yaml.MappingNode) else "list"
                self.report("RC014", Severity.ERROR, f"a {kind} is used as a key here; keys in a policy are "
                            "names: write the key as plain text", key_node, path)
                continue  # skipped, so nothing after shows the parser's internals as a key
            key = str(key_node.value)
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
        tag = node.tag
        if tag == STR_TAG:  # most scalars: PyYAML's constructor would return the same text, slower
            return node.value
        if tag == INT_TAG and not node.style and DECIMAL.fullmatch(node.value):
            value = int(node.value)
            if value <= MAX_INTEGER:
                return value
        if tag not in READ_TAGS:
            return self.bad_tag(node, path, f"the tag {_short_tag(tag)} is not part of the room language; "
                                            "remove it (values are text, numbers, true/false or null)")
        if tag == TIMESTAMP_TAG and not node.style:
            return node.value  # a plain date stays text, as the room language reads it (`hours` closures check it)
        if node.tag == BOOL_TAG and node.value.lower() in YAML11_BOOLEANS:
            self.report("RC003", Severity.ERROR,
                        f"'{node.value}' is a boolean only in YAML 1.1 (a string in YAML 1.2 editors); "
                        f"write {str(node.value.lower() in ('yes', 'y', 'on')).lower()} or quote it",
                        node, path)
        if node.tag in (INT_TAG, FLOAT_TAG) and not node.style:
            refused = self.number_trap(node, path)
            if refused:
                self.source.refused.add(path)
                return None
        try:
            value = self.constructor.construct_object(node, deep=True)
        except Exception:  # noqa: BLE001 - PyYAML's constructors fail in assorted ways on a value not of their type
            # Only an explicit tag gets here (what YAML resolves by itself always reads): `!!bool abc`.
            return self.bad_tag(node, path, f"'{node.value[:40]}' cannot be read as {_short_tag(tag)}; "
                                            "remove the tag or write a value of that type")
        if node.tag == TIMESTAMP_TAG:
            return node.value  # a quoted `!!timestamp` that reads as one: text too
        if isinstance(value, (int, float)) and not isinstance(value, bool) and not abs(value) <= MAX_INTEGER:
            self.report("RC012", Severity.ERROR,
                        f"number {node.value[:24]} is out of range (at most {MAX_INTEGER:,}); "
                        "no setting of the room language is that large", node, path)
            self.source.refused.add(path)
            return None
        return value.decode("latin-1") if isinstance(value, bytes) else value

    def bad_tag(self, node: yaml.ScalarNode, path: tuple, message: str) -> None:
        """Report an explicit tag roomc cannot honour (RC015); the value is refused, so nothing else reports it.

        Once per place in the text: a bad value behind an anchor is met again at every alias."""
        span = self.span_of(node)
        if span not in self.bad_tags:
            self.bad_tags.add(span)
            self.source.diagnostics.append(Diagnostic("RC015", Severity.ERROR, message, span, path))
        self.source.refused.add(path)
        return None

    def number_trap(self, node: yaml.ScalarNode, path: tuple) -> bool:
        """Report YAML 1.1 number forms other tools read differently; True when the value is refused."""
        text = node.value
        digits = sum(c.isdigit() for c in text)
        if digits > MAX_INTEGER_DIGITS:
            self.report("RC012", Severity.ERROR,
                        f"number with {digits:,} digits is out of range (at most {MAX_INTEGER:,}); "
                        "quote it if it is text", node, path)
            return True
        if node.tag != INT_TAG and "_" not in text and ":" not in text:
            return False
        if ":" in text:
            reading = f"a base-60 number in YAML 1.1 ({self.as_yaml11(node)}) and a string in YAML 1.2"
        elif "_" in text:
            reading = f"{self.as_yaml11(node)} in YAML 1.1 (the `_` is dropped) and a string in YAML 1.2"
        elif OCTAL_LIKE.fullmatch(text):
            reading = (f"octal in YAML 1.1 ({self.as_yaml11(node)}) and {int(text.replace('_', ''), 10)} in YAML 1.2; "
                       "digits with a leading zero must be quoted")
        elif text.lstrip("+-").startswith("0b"):
            reading = f"a binary number in YAML 1.1 ({self.as_yaml11(node)}) and a string in YAML 1.2"
        else:
            return False
        self.report("RC011", Severity.ERROR, f"'{text}' is {reading}; quote it (\"{text}\") or write a plain number",
                    node, path)
        return False

    def as_yaml11(self, node: yaml.ScalarNode) -> str:
        try:
            return str(self.constructor.construct_object(node, deep=True))
        except (yaml.YAMLError, ValueError, OverflowError):
            return "not a number"


def _short_tag(tag: str) -> str:
    """`!!bool` for YAML's own tags, the tag as written otherwise."""
    return "!!" + tag[len("tag:yaml.org,2002:"):] if tag.startswith("tag:yaml.org,2002:") else tag


class _NeedsNodes(Exception):
    """The text uses anchors, aliases, merge keys or non-scalar keys: it is read through the node graph."""


_RESOLVED_FIRST = frozenset(_BASE_LOADER.yaml_implicit_resolvers)  # first characters some implicit tag starts with
_MERGE_TAG = "tag:yaml.org,2002:merge"
_ScalarNode, _ScalarEvent, _AliasEvent = yaml.ScalarNode, yaml.ScalarEvent, yaml.AliasEvent
_MappingStart, _MappingEnd, _SequenceEnd = yaml.MappingStartEvent, yaml.MappingEndEvent, yaml.SequenceEndEvent


class _Tripped(Exception):
    pass


class _EventReader:
    """Builds the data and spans straight from LibYAML's events, without a node graph (most of reading a long file).

    It gives what composing and then `_Walker` give, limits included: a text longer than MAX_NODES is bounded
    as `_check_size` bounds it (every event, before anything later is parsed), a shorter one as `_Walker` does
    (value nodes of the first document). Anything rarer (anchors, aliases, merge keys, non-scalar keys) raises
    `_NeedsNodes`, and the text is read the node graph's way instead.
    """

    def __init__(self, text: str, path: str):
        self.long = len(text) > MAX_NODES
        self.max_nest = MAX_DEPTH - 1 if self.long else MAX_DEPTH
        self.shadow = SourceFile(path=path, text=text)  # copied into the real source only when the text is read
        self.value_spans = self.shadow.value_spans
        self.walker = _Walker(self.shadow)  # converts the rarer scalars and reports their traps
        self.path = path
        self.count = 0
        self.resolve = None
        self.get: Any = None
        # Each document's root: (is a scalar, its value, resolved tag, line, column), for RC004 and RC008.
        self.roots: list[tuple[bool, str, str, int, int]] = []
        self.tripped = False

    def read(self, text: str) -> Any:
        """The first document's data; the roots of up to MAX_DOCUMENTS documents are in self.roots."""
        parser = _BASE_LOADER(text)
        self.resolve, self.get = parser.resolve, parser.get_event
        check = parser.check_event
        data = None
        try:
            check()  # skip the stream start, as the composer's check_node does
            self.get()
            while len(self.roots) < MAX_DOCUMENTS and not check(yaml.StreamEndEvent):
                self.get()  # the document's start
                self.count = 0  # each document has its own budget
                root = self.get()
                self.roots.append(self.root_of(root))
                if len(self.roots) == 1:
                    try:
                        data = self.node(root, (), 0)
                    except _Tripped:
                        # A short text past a limit: the composer would still have parsed both documents first.
                        self.tripped = True
                        while type(self.get()) is not yaml.DocumentEndEvent:
                            pass
                        continue
                else:
                    self.skip(root, 0)
                self.get()  # the document's end
            if self.long and len(self.roots) == MAX_DOCUMENTS:
                check()  # _check_size parsed on to the next document's start
        finally:
            parser.dispose()
        return data

    def root_of(self, event: Any) -> tuple[bool, str, str, int, int]:
        mark: Any = event.start_mark
        if type(event) is _ScalarEvent:
            return True, event.value, self.tag(event), mark.line, mark.column
        return False, "", "", mark.line, mark.column

    def tag(self, event: Any) -> str:
        tag = event.tag
        if tag is None or tag == "!":
            value, implicit = event.value, event.implicit
            if not implicit[0] or (value and value[0] not in _RESOLVED_FIRST):
                return STR_TAG
            assert self.resolve is not None
            return self.resolve(_ScalarNode, value, implicit)
        return tag

    def tick(self, nest: int, value: bool) -> None:
        if self.long:
            self.count += 1
            if self.count > MAX_NODES or nest > self.max_nest:
                raise _TooLarge()
        elif value:
            self.count += 1
            if self.count > MAX_NODES or nest > self.max_nest:
                raise _Tripped()

    def node(self, event: Any, path: tuple, nest: int) -> Any:
        kind = type(event)
        if kind is _AliasEvent or event.anchor is not None:
            raise _NeedsNodes()
        # tick(nest, True), written out: this runs for every value of every file.
        self.count += 1
        if self.count > MAX_NODES or nest > self.max_nest:
            raise _TooLarge() if self.long else _Tripped()
        mark = event.start_mark
        value_spans = self.value_spans
        if kind is _ScalarEvent:
            style = event.style
            span = _span(self.path, mark.line + 1, mark.column + 1, 1 if style in ('"', "'") else 0)
            if style in ("|", ">"):
                walker = self.walker
                if walker.lines is None:
                    walker.lines = self.shadow.text.splitlines()
                if span.line < len(walker.lines):
                    text_line = walker.lines[span.line]
                    span = Span(span.file, span.line + 1, len(text_line) - len(text_line.lstrip(" ")) + 1)
            value_spans.setdefault(path, span)
            tag = event.tag
            value = event.value
            if tag is None or tag == "!":
                # self.tag(event), written out for the common plain and quoted strings.
                if not event.implicit[0] or (value and value[0] not in _RESOLVED_FIRST):
                    return value
                tag = self.tag(event)
            if tag == STR_TAG:
                return value
            if tag == INT_TAG and not style and DECIMAL.fullmatch(value) and int(value) <= MAX_INTEGER:
                return int(value)
            return self.walker.scalar(_ScalarNode(tag, value, mark, event.end_mark, style), path)
        value_spans.setdefault(path, _span(self.path, mark.line + 1, mark.column + 1))
        get = self.get
        if kind is _MappingStart:
            out: dict[str, Any] = {}
            first_seen: dict[str, Any] = {}
            key_spans = self.shadow.key_spans
            long = self.long
            while True:
                key_event = get()
                if type(key_event) is _MappingEnd:
                    return out
                if (type(key_event) is not _ScalarEvent or key_event.anchor is not None
                        or key_event.value == "<<" or key_event.tag == _MERGE_TAG):
                    raise _NeedsNodes()
                if long:  # a key counts as a node only where _check_size counted every event
                    self.tick(nest + 1, False)
                key = key_event.value
                key_mark: Any = key_event.start_mark
                child = path + (key,)
                if key in first_seen:
                    first: Any = first_seen[key].start_mark
                    self.shadow.diagnostics.append(Diagnostic(
                        "RC002", Severity.ERROR,
                        f"duplicate key '{key}' (first at line {first.line + 1}, column {first.column + 1}); "
                        "YAML would silently keep only this one",
                        _span(self.path, key_mark.line + 1, key_mark.column + 1), child))
                else:
                    first_seen[key] = key_event
                    key_spans[child] = _span(self.path, key_mark.line + 1, key_mark.column + 1)
                out[key] = self.node(get(), child, nest + 1)
        items: list[Any] = []
        while True:
            item = get()
            if type(item) is _SequenceEnd:
                return items
            items.append(self.node(item, path + (len(items),), nest + 1))

    def skip(self, event: Any, nest: int) -> None:
        """Consume a node of the second document (only reported, never read), bounded as it was composed."""
        kind = type(event)
        if kind is _AliasEvent or event.anchor is not None:
            raise _NeedsNodes()  # the composer resolves its aliases (an undefined one is an error)
        self.tick(nest, False)
        if kind is _ScalarEvent:
            return
        end = _MappingEnd if kind is _MappingStart else _SequenceEnd
        while True:
            child = self.get()
            if type(child) is end:
                return
            self.skip(child, nest + 1)


def _expanded_size(node: yaml.Node, memo: dict[int, tuple[int, int]], active: set[int]) -> tuple[int, int]:
    """(nodes, scalar characters) the document becomes once aliases are expanded, counted without expanding."""
    key = id(node)
    if key in memo:
        return memo[key]
    if key in active:
        raise _TooLarge()  # an alias that contains itself
    active.add(key)
    size, chars = 1, 0
    if isinstance(node, yaml.ScalarNode):
        chars = len(node.value)
    else:
        children = [c for pair in node.value for c in pair] if isinstance(node, yaml.MappingNode) else node.value
        for child in children:
            n, c = _expanded_size(child, memo, active)
            size, chars = size + n, chars + c
            if size > MAX_NODES or chars > MAX_EXPANDED_CHARS:
                raise _TooLarge()
    active.discard(key)
    memo[key] = (size, chars)
    return size, chars


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
    tabbed: set[int] = set()
    if "\t" not in source.text and not SUPPRESSION.search(source.text):
        return tabbed  # most files: neither, and one search of the text costs less than a look at each line
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
    if _route_table_text(text):
        source.diagnostics.append(Diagnostic(
            "RC013", Severity.ERROR, "this is a compiled route table (`roomc compile` output), not a policy; "
            "lint the YAML it was compiled from, or serve it with `roomc serve`", Span(path, 1, 1)))
        return source
    tabbed = _scan_lines(source)
    control = CONTROL.search(text)
    if control:
        before = text[: control.start()]
        line = before.count("\n") + 1
        column = control.start() - (before.rfind("\n") + 1) + 1
        source.diagnostics.append(Diagnostic(
            "RC001", Severity.ERROR, f"control character U+{ord(control.group()):04X} is not allowed in YAML; "
            "remove it (or write it as an escape in a double-quoted string)", Span(path, line, column)))
        return source
    reader: _EventReader | None = _EventReader(text, path)
    try:
        try:
            assert reader is not None
            data = reader.read(text)
        except _NeedsNodes:
            reader = None
            composed = _compose_all(text)
    except (_TooLarge, RecursionError):
        source.diagnostics.append(_too_large(path))
        return source
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        if exc.context_mark and exc.context and "quoted scalar" in exc.context:
            mark = exc.context_mark  # an unterminated quote: point where it opened, not where the file ends
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
    if reader is not None:
        return _from_events(source, reader, data)
    # A document that is only `~` (or `null`) is as empty as no document at all.
    documents = [d for d in composed if d is not None]
    if all(isinstance(d, yaml.ScalarNode) and d.tag.endswith(":null") for d in documents):
        source.diagnostics.append(Diagnostic(
            "RC008", Severity.ERROR, "file is empty; a policy needs at least `roomc: 1`", Span(path, 1, 1)))
        return source
    for extra in documents[1:]:
        _extra_document(source, isinstance(extra, yaml.ScalarNode) and extra.value == "",
                        extra.start_mark.line, extra.start_mark.column)
    try:
        if "*" in text:  # without an alias no scalar is longer than its source text, and nodes were counted
            _expanded_size(documents[0], {}, set())
        source.data = _Walker(source).walk(documents[0], ())
    except (_TooLarge, RecursionError):
        source.data = None
        source.value_spans.clear()
        source.key_spans.clear()
        source.diagnostics.append(_too_large(path))
    return source


def _extra_document(source: SourceFile, empty: bool, line: int, column: int) -> None:
    """RC004 at the `---` that starts a second document."""
    lines = source.text.splitlines()
    if empty and column == 0 and line > 0:
        line -= 1  # an empty document's mark is where the next token starts: its own `---` is above
    # A document's mark may sit one past the last line (text ending in `---`); walk back from there.
    line = min(line, len(lines) - 1)
    while line > 0 and not lines[line].startswith("---"):
        line -= 1  # point at the `---` that starts the document, not its first key
    source.diagnostics.append(Diagnostic(
        "RC004", Severity.ERROR,
        "more than one YAML document in the file; only the first is read, split the rest into their own files",
        Span(source.path, line + 1, 1)))


def _from_events(source: SourceFile, reader: _EventReader, data: Any) -> SourceFile:
    """The source as the node-graph path leaves it, from what the event reader found (same findings, same order)."""
    if all(scalar and tag.endswith(":null") for scalar, _, tag, _, _ in reader.roots):
        source.diagnostics.append(Diagnostic(
            "RC008", Severity.ERROR, "file is empty; a policy needs at least `roomc: 1`", Span(source.path, 1, 1)))
        return source
    for scalar, value, _, line, column in reader.roots[1:]:
        _extra_document(source, scalar and value == "", line, column)
    shadow = reader.shadow
    source.diagnostics.extend(shadow.diagnostics)
    if reader.tripped:
        source.diagnostics.append(_too_large(source.path))
        return source
    source.data = data
    source.value_spans, source.key_spans = shadow.value_spans, shadow.key_spans
    source.refused = shadow.refused
    return source


def _check_size(text: str) -> None:
    """Raise _TooLarge if the first MAX_DOCUMENTS documents pass the node or depth limit, counted on
    LibYAML's event stream: nothing is built, so a huge document costs no more than its first nodes."""
    parser = _BASE_LOADER(text)
    try:
        documents = count = depth = 0
        while parser.check_event():
            event = parser.get_event()
            kind = type(event)
            if kind is yaml.ScalarEvent or kind is yaml.AliasEvent:
                count += 1
                if count > MAX_NODES or depth + 1 > MAX_DEPTH:
                    raise _TooLarge()
            elif kind is yaml.MappingStartEvent or kind is yaml.SequenceStartEvent:
                count += 1
                depth += 1
                if count > MAX_NODES or depth > MAX_DEPTH:
                    raise _TooLarge()
            elif kind is yaml.MappingEndEvent or kind is yaml.SequenceEndEvent:
                depth -= 1
            elif kind is yaml.DocumentStartEvent:
                documents += 1
                count = 0  # each document has its own budget, as the composer counts it
                if documents > MAX_DOCUMENTS:
                    return
    finally:
        parser.dispose()


def _compose_all(text: str) -> list[yaml.Node | None]:
    """The file's first MAX_DOCUMENTS documents: only the first is read, a second is reported (RC004)."""
    # Every node takes at least a character, so a text this short cannot pass the node limit.
    # A longer one is counted first on the event stream; then LibYAML's own composer is safe (and
    # faster than PyYAML's composer, which counted as it built).
    if len(text) > MAX_NODES:
        _check_size(text)
    loader = _BASE_LOADER(text)
    try:
        documents: list[yaml.Node | None] = []
        # Stopping at the second: 200,000 empty `---` documents cost one finding, not 200,000.
        while len(documents) < MAX_DOCUMENTS and loader.check_node():
            documents.append(loader.get_node())
        return documents
    finally:
        loader.dispose()


def _too_large(path: str) -> Diagnostic:
    return Diagnostic(
        "RC009", Severity.ERROR,
        f"document has or expands to more than {MAX_NODES:,} nodes, {MAX_EXPANDED_CHARS >> 20} MiB of text "
        f"or {MAX_DEPTH} levels (an alias bomb or a self-referencing alias); refused",
        Span(path, 1, 1))


def _route_table_text(text: str) -> bool:
    """Whether the text is JSON that looks like `roomc compile` output (it would fail as a policy 19 ways)."""
    if not text.lstrip().startswith("{") or '"digest"' not in text[:4096]:
        return False
    import json

    try:
        data = json.loads(text)
    except ValueError:
        return False
    return isinstance(data, dict) and ROUTE_TABLE_KEYS <= data.keys() and isinstance(data.get("roomc"), str)


def _refuse(path: str, message: str) -> SourceFile:
    source = SourceFile(path=path)
    source.diagnostics.append(Diagnostic("RC000", Severity.ERROR, message, Span(path, 1, 1)))
    return source


def load_file(path: str | Path) -> SourceFile:
    """Load one YAML file from disk: only a regular file, and only its first MAX_FILE_BYTES."""
    name = str(path)
    try:
        # O_NONBLOCK: opening a FIFO with no writer must not hang; it is refused just below.
        fd = os.open(name, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        return _refuse(name, f"cannot read file: {exc.strerror}")
    with os.fdopen(fd, "rb") as handle:
        kind = os.fstat(handle.fileno()).st_mode
        if stat.S_ISDIR(kind):
            return _refuse(name, "cannot read file: it is a folder")
        if not stat.S_ISREG(kind):
            return _refuse(name, "not a regular file (a FIFO, socket or device); refused")
        try:
            # Sized from fstat (asking for 1 MiB allocates 1 MiB per file); a file that grew is read on, bounded.
            size = min(os.fstat(handle.fileno()).st_size, MAX_FILE_BYTES)
            raw = handle.read(size + 1)
            if size < len(raw) <= MAX_FILE_BYTES:
                raw += handle.read(MAX_FILE_BYTES + 1 - len(raw))
        except OSError as exc:
            return _refuse(name, f"cannot read file: {exc.strerror}")
    if len(raw) > MAX_FILE_BYTES:
        return _refuse(name, f"file is larger than {MAX_FILE_BYTES >> 20} MiB; a policy file is a few KB, refused")
    return load_text(raw, name)


def _loops(path: Path) -> bool:
    """Whether following a symbolic link goes round in circles."""
    try:
        os.stat(path)
    except OSError as exc:
        return exc.errno == errno.ELOOP
    return False


def _inside(path: Path, root: Path) -> bool:
    try:
        path.resolve().relative_to(root)
    except (ValueError, OSError, RuntimeError):
        return False
    return True


def _walk(root: Path, folder: Path, found: list[str], problems: list[Diagnostic]) -> None:
    """Every policy file under `folder`, reporting (not skipping) what cannot be read."""
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError as exc:
        problems.append(Diagnostic("RC000", Severity.ERROR, f"cannot read folder: {exc.strerror}; "
                                   "its files would be silently missing from the policy", Span(str(folder), 1, 1)))
        return
    for entry in entries:
        path = Path(entry.path)
        if entry.is_symlink():
            if _loops(path):
                problems.append(Diagnostic("RC000", Severity.ERROR, "symbolic link loop (it leads back to "
                                           "itself, never to a file); refused", Span(str(path), 1, 1)))
                continue
            if not _inside(path, root):
                problems.append(Diagnostic("RC000", Severity.ERROR, "symbolic link to outside the policy folder; "
                                           "refused (only files inside the folder are read)", Span(str(path), 1, 1)))
                continue
            if entry.is_dir():
                continue  # its files are read where they really are, inside the folder; following could loop
        if entry.is_dir(follow_symlinks=False):
            if entry.name != "scenarios":
                _walk(root, path, found, problems)
        elif path.suffix in (".yaml", ".yml"):
            found.append(str(path))


def discover_files(paths: list[str]) -> tuple[list[str], list[Diagnostic]]:
    """Expand folders into their YAML files (sorted, so output never depends on disk order), with problems found."""
    found: list[str] = []
    problems: list[Diagnostic] = []
    for entry in paths:
        p = Path(entry)
        if p.is_dir():
            _walk(p.resolve(), p, found, problems)
        elif p.is_symlink() and _loops(p):
            problems.append(Diagnostic("RC000", Severity.ERROR, "symbolic link loop (it leads back to itself, "
                                       "never to a file); refused", Span(str(p), 1, 1)))
        elif p.is_symlink() and not _inside(p, p.parent.resolve()):
            problems.append(Diagnostic("RC000", Severity.ERROR, "symbolic link to outside its folder; refused",
                                       Span(str(p), 1, 1)))
        else:
            found.append(str(p))
        if p.is_dir() and not any(_inside(Path(f), p.resolve()) or Path(f).resolve().is_relative_to(p.resolve())
                                  for f in found) and not problems:
            # A pull request that renames its policies to `x.YAML` or `x.yml.txt` must not lint clean.
            problems.append(Diagnostic("RC000", Severity.ERROR, "no policy files (*.yaml, *.yml) in this folder",
                                       Span(str(p), 1, 1)))
    files = sorted(dict.fromkeys(found))
    if len(files) > MAX_FILES:
        problems.append(Diagnostic("RC000", Severity.ERROR, f"{len(files):,} policy files; at most {MAX_FILES:,} "
                                   "are read, refused", Span(files[MAX_FILES], 1, 1)))
        files = []
    return files, problems


def discover(paths: list[str]) -> list[str]:
    """Expand folders into their YAML files, sorted so output never depends on disk order."""
    return discover_files(paths)[0]
