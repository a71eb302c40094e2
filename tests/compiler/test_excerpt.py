"""The source line and caret under a finding: exact underlines, and hostile lines made safe to print."""
import pytest

from roomc.compiler.diagnostics import Diagnostic, Severity, Span
from roomc.compiler.excerpt import excerpt, safe, token
from roomc.compiler.reporters import Options, text

from ..conftest import compile_text


@pytest.mark.parametrize("line, column, underlined", [
    ("    maxParticipant: 10", 5, "maxParticipant"),          # a key
    ("    maxParticipants: 10   # seats", 22, "10"),           # a plain value, comment left out
    ('    say: "Hello, {{ room }}" # hi', 10, '"Hello, {{ room }}"'),  # a quoted string, whole
    ("    say: 'it''s here'", 10, "'it''s here'"),             # YAML's doubled quote
    ("  /join: {join: meting}", 17, "meting"),                 # a flow mapping value
    ("  statusEvents: [start, mutte]", 25, "mutte"),           # a flow sequence item
    ("  roles: {a: {b: 1}}, x", 10, "{a: {b: 1}}"),            # a whole flow collection
    ('  name: "meet-{{ query.room }"', 18, "query.room"),      # a word inside a string
    ("---", 1, "---"),
])
def test_underline_is_the_token_at_the_column(line, column, underlined):
    start = column - 1
    assert line[start:token(line, start)] == underlined


def test_a_known_end_is_used_as_given():
    shown, marks = excerpt('    say: "Hello, {{ rooom }}"', Span("p", 1, 21, 1, 26))
    assert marks == " " * 20 + "^^^^^"


def test_caret_past_the_end_of_the_line():
    shown, marks = excerpt("rooms: [", Span("p", 1, 9))
    assert (shown, marks) == ("rooms: [", " " * 8 + "^")


def test_tabs_and_wide_characters_keep_the_caret_aligned():
    shown, marks = excerpt('\tsay: "会议" {{ x }}', Span("p", 1, 12))
    assert shown.startswith("    say")  # the tab is expanded
    assert marks.index("^") == shown.index("{{") + 2  # 会议 take two cells each


@pytest.mark.parametrize("hostile", ["\x1b]0;pwned\x07\x1b[2J", "\u202egnp.exe", "\x9b31m", "a\rb", "\x00"])
def test_control_and_bidi_characters_are_shown_as_escapes(hostile):
    assert safe(hostile).isprintable()
    shown, _ = excerpt(f"say: {hostile}", Span("p", 1, 6))
    assert shown.isprintable() and ("\\x" in shown or "\\u" in shown)


@pytest.mark.parametrize("policy, code", [
    ('roomc: 1\nrooms:\n  meeting:\n    "x\\e[2J\\e]0;owned\\a": 1\n', "RC101"),  # escapes in a key, echoed
    ('roomc: 1\nrooms:\n  meeting:\n    say: "\x1b[31m\x07"\n', "RC001"),  # raw control characters
])
def test_a_hostile_policy_cannot_drive_the_terminal(tmp_path, policy, code):
    compilation = compile_text(tmp_path, policy)
    sources = {s.path: s.text for s in compilation.sources}
    for options in (Options(), Options(sources=sources)):
        output = text(compilation.diagnostics, options)
        assert f"[{code}]" in output
        assert "\x1b" not in output and "\x07" not in output


def test_a_huge_line_is_cut_to_a_window_around_the_finding():
    line = "say: " + "x" * 1_000_000 + " bad " + "y" * 1_000_000
    column = line.index("bad") + 1
    shown, marks = excerpt(line, Span("p", 1, column, 1, column + 3))
    assert len(shown) < 200 and shown.startswith("…") and shown.endswith("…")
    assert shown[marks.index("^"):marks.index("^") + 3] == "bad"


def test_text_without_sources_is_one_line_per_finding_with_its_help():
    finding = Diagnostic("RC101", Severity.ERROR, "unknown key 'sya'", Span("p.yaml", 3, 5), (), "did you mean 'say'?")
    assert text([finding]).splitlines()[0] == "p.yaml:3:5: error [RC101] unknown key 'sya'; did you mean 'say'?"
    full = text([finding], Options(sources={"p.yaml": "a: 1\nb:\n    sya: hi\n"})).splitlines()
    assert full[:6] == ["p.yaml:3:5: error [RC101] unknown key 'sya'", "  |", "3 |     sya: hi", "  |     ^^^ RC101",
                        "  |", "  = help: did you mean 'say'?"]


def test_many_findings_on_one_huge_line_render_in_linear_time():
    import time

    from roomc.compiler.sarif import render

    line = "statusEvents: [" + ", ".join(f"bad{i}" for i in range(50_000)) + "]"  # ~500 KB
    columns = [m + 1 for m in range(16, len(line), 100)][:5000]
    found = [Diagnostic("RC208", Severity.ERROR, "unknown status event", Span("p.yaml", 1, c)) for c in columns]
    sources = {"p.yaml": line + "\n"}
    started = time.monotonic()
    output = text(found, Options(sources=sources))
    sarif = render(found, sources=sources)
    # Linear work is well under a second; rescanning the line per finding would take minutes.
    assert time.monotonic() - started < 20
    assert len(found) > 4000 and output.count("^") >= len(found) and len(output) < len(found) * 400
    assert sarif.count("primaryLocationLineHash") == len(found)
