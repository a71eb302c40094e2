"""The event reader (compiler/load.py `_EventReader`) gives what composing the node graph gives: data, spans,
findings in order, limits included; a text it does not read (anchors, merge keys, non-scalar keys) goes the graph's way."""
from pathlib import Path

import pytest

from roomc.compiler import load

ROOT = Path(__file__).resolve().parents[2]
DEEP = "x:\n" + "".join("  " * i + f"k{i}:\n" for i in range(1, 64)) + "  " * 64 + "z: 1\n"
WIDE = "a:\n" + "".join(f"  k{i}: v\n" for i in range(60_000))
TEXTS = [
    "", "~", "null", "---\n", "a: 1\n---\nb: 2\n", "a: 1\n---\n", "a: 1\n--- ~\n", "a: 1\n---\n---\n",
    "a: yes\nb: 010\nc: 1_0\nd: 1:20\ne: 0b11\nf: 1.5\ng: 2020-01-01\nh: !!str 010\ni: '1'\nj: \"x\"\nk: |\n  t\nl: >\n  u\n",
    "a: 1\na: 2\n", "a: {b: 1}\na: {c: 2}\n", "x: " + "9" * 60 + "\n", "x: 99999999999\n", "x: -5\n", "x: 1e400\n",
    "[" * 70 + "]" * 70, "a:\n" + "".join("  " * i + f"k{i}:\n" for i in range(1, 70)), "a: [1, 2, [3, {b: c}]]\n",
    "? [a]\n: 1\n", "<<: {a: 1}\n", "a: &x 1\nb: *x\n", "a: *x\n", "a: 1\n--- &y\nb: *y\n", "a: 1\n---\nb: *q\n",
    "a: b: c\n", "a: 'x\n", "a: 1\n--- \n[\n", "!foo a: 1\n", "a: !foo 1\n", "a: !!int x\n", "- 1\n- ~\n- true\n- ''\n",
    "a: NO\nb: On\n", "1: a\ntrue: b\n~: c\n", "a: 1\n... \n", "a: 1 # roomc: ignore[RC1]\n", "{a: 1, a: 2}\n",
    "a: 1\n---\nb: 2\n---\nc: 3\n", "a: 1\n---\nb: 2\n---\n[\n", "- - - - x\n", "a: ! 1\n", "a: !!null ''\n",
    "a: 0o17\nb: 0x1F\nc: +12\nd: .inf\ne: -.nan\n", "%YAML 1.1\n---\na: 1\n",
    # Longer than MAX_NODES characters: bounded on the event stream (as _check_size did), second documents included.
    WIDE, WIDE + "---\nb: 1\n", WIDE + "---\n[\n", "a: 1\n---\n" + WIDE, "b:\n" + "".join(f"  - {i}\n" for i in range(210_000)),
    DEEP, DEEP + "#" * 200_001, "x:\n" + "".join("  " * i + f"k{i}:\n" for i in range(1, 70)) + "#" * 200_001,
]


def _graph(text: str, path: str) -> load.SourceFile:
    original = load._EventReader.read

    def refuse(self: load._EventReader, text: str) -> None:
        raise load._NeedsNodes()

    load._EventReader.read = refuse  # type: ignore[method-assign]
    try:
        return load.load_text(text, path)
    finally:
        load._EventReader.read = original  # type: ignore[method-assign]


def _seen(source: load.SourceFile) -> tuple:
    return (repr(source.data), source.value_spans, source.key_spans, [repr(d) for d in source.diagnostics],
            source.refused, source.suppressions)


@pytest.mark.parametrize("text", TEXTS, ids=range(len(TEXTS)))
def test_events_read_what_the_node_graph_reads(text):
    assert _seen(load.load_text(text, "p.yaml")) == _seen(_graph(text, "p.yaml"))


def test_every_shipped_yaml_file_reads_the_same_both_ways():
    files = [p for p in ROOT.rglob("*.y*ml") if ".venv" not in p.parts and p.suffix in (".yaml", ".yml")]
    assert len(files) > 10
    for path in files:
        raw = path.read_bytes()
        assert _seen(load.load_text(raw, str(path))) == _seen(_graph(raw, str(path))), path
