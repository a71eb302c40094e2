"""`roomc lint`: exit codes, the four output formats, and file:line:col in each."""
import json

from ..conftest import ROOT

BROKEN = str(ROOT / "tests/compiler/cases/unknown-key")
WARNINGS_ONLY = str(ROOT / "tests/compiler/cases/security")


def test_clean_examples_exit_zero(invoke):
    result = invoke("lint", str(ROOT / "rooms"))
    assert result.exit_code == 0
    assert result.output == ""


def test_errors_exit_one_with_text_findings(invoke):
    result = invoke("lint", BROKEN, env={"GITHUB_ACTIONS": "false"})
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert lines[0].endswith("policy.yaml:7:5: error [RC101] unknown key 'maxParticipant' in 'rooms.meeting'")
    assert lines[1:6] == ["  |", "7 |     maxParticipant: 10", "  |     ^^^^^^^^^^^^^^ RC101", "  |",
                          "  = help: did you mean 'maxParticipants'?"]


def test_warnings_pass_unless_fail_on_warning(invoke):
    assert invoke("lint", WARNINGS_ONLY).exit_code == 0
    assert invoke("lint", WARNINGS_ONLY, "--fail-on", "warning").exit_code == 1


def test_json_format(invoke):
    result = invoke("lint", BROKEN, "--format", "json")
    data = json.loads(result.output)
    assert data[0] == {"code": "RC101", "severity": "error", "file": data[0]["file"], "line": 7, "column": 5,
                       "end_line": 7, "end_column": 19, "message": "unknown key 'maxParticipant' in 'rooms.meeting'",
                       "help": "did you mean 'maxParticipants'?", "path": "$.rooms.meeting.maxParticipant"}


def test_github_format_is_chosen_on_github_actions(invoke):
    result = invoke("lint", BROKEN, env={"GITHUB_ACTIONS": "true"})
    assert result.output.startswith("::error file=")
    assert ",line=7,col=5,title=RC101::unknown key" in result.output


def test_sarif_format(invoke):
    result = invoke("lint", BROKEN, "--format", "sarif")
    run = json.loads(result.output)["runs"][0]
    assert run["tool"]["driver"]["rules"][run["results"][0]["ruleIndex"]]["id"] == "RC101"
    region = run["results"][0]["locations"][0]["physicalLocation"]["region"]
    assert region == {"startLine": 7, "startColumn": 5, "endLine": 7, "endColumn": 19}


def test_missing_path_is_a_usage_error(invoke):
    result = invoke("lint", "no/such/place")
    assert result.exit_code == 2
    assert "no such file or folder: no/such/place" in result.output


def test_unknown_format_is_a_usage_error(invoke):
    assert invoke("lint", BROKEN, "--format", "xml").exit_code == 2


def test_schema_command_prints_the_schema(invoke):
    data = json.loads(invoke("schema").output)
    assert data["title"] == "roomc room policy"


def test_console_script_never_shows_a_traceback(tmp_path):
    import subprocess
    import sys
    bad = tmp_path / "table.json"
    bad.write_text("[1, 2]")
    result = subprocess.run([sys.executable, "-c", "from roomc.cli import run; run()", "explain", str(bad),
                             "--route", "/x"], capture_output=True, text=True)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "is not a roomc route table" in result.stderr
