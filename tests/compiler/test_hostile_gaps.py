"""Hostile inputs left open by the first attack on lint (issue 11): each is a located finding or a clear error.

Templates that can only fail when rendered (include, import, `_` attributes, division by zero),
templates that are too long, URLs a request value can make relative, configuration of the wrong
type, room names equal but for case, mappings used as keys, file names with line breaks in the
`github` format, symbolic-link loops, and a stream of 200,000 empty documents.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from roomc.compiler import pipeline
from roomc.compiler.diagnostics import Diagnostic, Severity, Span
from roomc.compiler.reporters import github
from roomc.compiler.templates import MAX_TEMPLATE

from ..conftest import write_policy

HEAD = "roomc: 1\nserver: {signatureSecretEnv: S}\nrooms:\n  m:\n    name: \"m-{{ query.room }}\"\n    roles:\n"


def findings(tmp_path: Path, text: str, name: str = "policy.yaml") -> list[Diagnostic]:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return pipeline.run([str(path)]).diagnostics


def with_say(say: str) -> str:
    return HEAD + f"      h:\n        startOnEnter: true\n        say: {say}\nroutes:\n  /j: {{join: m}}\n"


@pytest.mark.parametrize(("say", "marker", "words"), [
    ("\"Hi {% include 'x.html' %}\"", "{% include", "include"),
    ("\"Hi {% import 'x.html' as x %}\"", "{% import", "import"),
    ("\"Hi {% from 'x.html' import y %}\"", "{% from", "import"),
    ("\"{% extends 'base.html' %}\"", "{% extends", "extends"),
    ("\"Hi {{ query.room.__class__ }}\"", "__class__", "`_`"),
    ("\"Hi {{ query['__class__'] }}\"", "['__class__']", "`_`"),
    ("\"Hi {{ query.room._x }}\"", "_x", "`_`"),
    ("\"Hi {{ 10 / 0 }}\"", "/ 0", "zero"),
    ("\"Hi {{ 10 // 0 }}\"", "// 0", "zero"),
    ("\"Hi {{ 10 % 0 }}\"", "% 0", "zero"),
])
def test_templates_that_can_only_fail_at_run_time_are_rc306_where_they_are(tmp_path, say, marker, words):
    found = [d for d in findings(tmp_path, with_say(say)) if d.code == "RC306"]
    assert len(found) == 1, found
    assert found[0].severity is Severity.ERROR and words in found[0].message
    # `        say: "` puts the template's first character at column 15 of line 9.
    assert (found[0].span.line, found[0].span.column) == (9, 14 + say.index(marker)), found[0]


def test_formatting_with_percent_and_harmless_division_pass(tmp_path):
    codes = {d.code for d in findings(tmp_path, with_say("\"{{ '%s' % 0 }} {{ 10 / 2 }} {{ query.room.upper() }}\""))}
    assert "RC306" not in codes


def test_a_template_over_the_size_cap_is_rc307_and_not_parsed(tmp_path):
    say = "\"{{ query.room }}" + "x" * MAX_TEMPLATE + "\""
    started = time.process_time()
    found = [d for d in findings(tmp_path, with_say(say)) if d.code == "RC307"]
    assert len(found) == 1 and f"{MAX_TEMPLATE:,}" in found[0].message, found
    assert (found[0].span.line, found[0].span.column) == (9, 14)
    assert time.process_time() - started < 5


def test_a_long_plain_text_is_not_a_template_finding(tmp_path):
    assert "RC307" not in {d.code for d in findings(tmp_path, with_say("\"" + "x" * (MAX_TEMPLATE + 10) + "\""))}


@pytest.mark.parametrize("url", ["\"{{ query.hold }}\"", "\"hold-{{ room }}.mp3\"", "\"/hold/{{ room }}.mp3\"",
                                 "\"https://{{ query.cdn }}/hold.mp3\"", "\"https://cdn.example.com{{ query.x }}\"",
                                 "hold.mp3"])
def test_a_wait_url_that_can_render_relative_or_foreign_is_rc407(tmp_path, url):
    text = HEAD.replace("    roles:\n", f"    waitUrl: {url}\n    roles:\n") + \
        "      h:\n        startOnEnter: true\nroutes:\n  /j: {join: m}\n"
    found = [d for d in findings(tmp_path, text) if d.code == "RC407"]
    assert len(found) == 1, found
    assert (found[0].span.line, found[0].path) == (6, ("rooms", "m", "waitUrl"))


@pytest.mark.parametrize("url", ["https://cdn.example.com/hold.mp3", "\"https://cdn.example.com/{{ room }}.mp3\"",
                                 "\"https://cdn.example.com/hold.mp3?r={{ query.room }}\""])
def test_a_wait_url_with_a_written_host_passes(tmp_path, url):
    text = HEAD.replace("    roles:\n", f"    waitUrl: {url}\n    roles:\n") + \
        "      h:\n        startOnEnter: true\nroutes:\n  /j: {join: m}\n"
    assert "RC407" not in {d.code for d in findings(tmp_path, text)}


def test_a_templated_play_url_without_a_host_is_rc407_too(tmp_path):
    found = [d for d in findings(tmp_path, HEAD + "      h:\n        startOnEnter: true\n        actions:\n"
                                 "          - play: \"{{ query.file }}\"\nroutes:\n  /j: {join: m}\n") if d.code == "RC407"]
    assert len(found) == 1 and found[0].span.line == 10, found


@pytest.mark.parametrize("config", [
    "tool = {roomc = 3}\n", "[tool]\nroomc = [1]\n", "[tool.roomc]\nselect = []\n",
    "[tool.roomc]\nselect = [\"\"]\n", "[tool.roomc]\nignore = [\" , \"]\n",
])
def test_configuration_of_the_wrong_shape_is_a_clear_error(tmp_path, invoke, config):
    (tmp_path / "pyproject.toml").write_text(config)
    policy = write_policy(tmp_path, "roomc: 1\n")
    result = invoke("lint", str(policy))
    assert result.exit_code == 2, result.output
    assert "configuration" in result.output and "pyproject.toml" in result.output


def test_room_names_that_differ_only_by_case_overlap(tmp_path):
    text = ("roomc: 1\nserver: {signatureSecretEnv: S}\nrooms:\n"
            "  a:\n    name: \"Bridge-{{ query.room }}\"\n    roles: {h: {startOnEnter: true}}\n"
            "  b:\n    name: \"bridge-{{ query.pin }}\"\n    roles: {h: {startOnEnter: true}}\n"
            "  c:\n    name: Lobby\n    roles: {h: {startOnEnter: true}}\n"
            "  d:\n    name: LOBBY\n    roles: {h: {startOnEnter: true}}\n"
            "routes:\n  /a: {join: a}\n  /b: {join: b}\n  /c: {join: c}\n  /d: {join: d}\n")
    found = [d for d in findings(tmp_path, text) if d.code == "RC213"]
    assert len(found) == 2, found
    assert "case" in found[0].message


@pytest.mark.parametrize(("text", "line"), [("roomc: 1\nrooms:\n  ? {a: 1}\n  : {name: r}\n", 3),
                                           ("roomc: 1\nrooms:\n  [x, y]: 3\n", 3), ("? [roomc]\n: 1\n", 1)])
def test_a_mapping_or_list_used_as_a_key_is_named_not_dumped(tmp_path, text, line):
    found = findings(tmp_path, text)
    assert any(d.code == "RC014" for d in found), found
    for finding in found:
        assert "Node" not in finding.message and "tag:yaml.org" not in finding.message, finding
    assert next(d for d in found if d.code == "RC014").span.line == line


def test_github_format_escapes_line_breaks_in_file_names():
    name = "rooms/a\nb,c:d%e\r.yaml"
    out = github([Diagnostic("RC001", Severity.ERROR, "bad", Span(name, 3, 4))])
    assert out.count("\n") == 1, out
    assert "file=rooms/a%0Ab%2Cc%3Ad%25e%0D.yaml," in out


def test_a_symbolic_link_loop_is_named_as_a_loop(tmp_path):
    folder = tmp_path / "rooms"
    folder.mkdir()
    os.symlink("b.yaml", folder / "a.yaml")
    os.symlink("a.yaml", folder / "b.yaml")
    os.symlink("self.yaml", folder / "self.yaml")
    found = pipeline.run([str(folder)]).diagnostics
    assert len(found) == 3, found
    for finding in found:
        assert finding.code == "RC000" and "loop" in finding.message and "outside" not in finding.message


def test_two_hundred_thousand_empty_documents_are_one_finding_quickly(tmp_path):
    path = tmp_path / "docs.yaml"
    path.write_text("roomc: 1\n" + "---\n" * 200_000)
    started = time.process_time()
    found = pipeline.run([str(path)]).diagnostics
    assert time.process_time() - started < 3
    assert [d.code for d in found] == ["RC004"] and found[0].span.line == 2
