"""`roomc lint` settings: --select/--ignore, configuration files and their precedence, -h, one policy per path."""
import os
import subprocess
import sys
import time

import pytest

from roomc.cli import main

from ..conftest import ROOT

# Two warnings (RC401 at 9:15, RC402 at 3:14) and nothing else.
WARNINGS = """\
roomc: 1
server:
  publicUrl: http://rooms.example.com
rooms:
  meeting:
    name: "m-{{ query.room }}"
    roles:
      host:
        when: "query.host == '1'"
        startOnEnter: true
      guest: {startOnEnter: false}
routes:
  /join: {join: meeting}
  /events: events
"""


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A project folder with one policy in rooms/, as the current folder."""
    (tmp_path / "rooms").mkdir()
    (tmp_path / "rooms" / "policy.yaml").write_text(WARNINGS, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def codes(invoke, *args, env=None):
    result = invoke("lint", *args, "--format", "json", env={"GITHUB_ACTIONS": "false", **(env or {})})
    assert result.exit_code in (0, 1), result.output
    import json
    return [d["code"] for d in json.loads(result.stdout)]


def test_select_and_ignore_by_code_and_prefix(invoke, project):
    assert codes(invoke, "rooms") == ["RC402", "RC401"]
    assert codes(invoke, "rooms", "--select", "RC401") == ["RC401"]
    assert codes(invoke, "rooms", "--ignore", "rc4") == []  # prefixes, any case
    assert codes(invoke, "rooms", "--ignore", "RC4", "--select", "RC402") == ["RC402"]  # the more specific wins
    assert codes(invoke, "rooms", "--select", "RC401,RC402", "--ignore", "RC401") == ["RC402"]
    assert codes(invoke, "rooms", "--select", "RC2") == []


def test_unknown_selector_is_a_usage_error(invoke, project):
    result = invoke("lint", "rooms", "--select", "RC4O1")
    assert result.exit_code == 2
    assert "--select: unknown code or prefix 'RC4O1'; did you mean RC401?" in result.output


def test_an_unchecked_file_cannot_be_ignored(invoke, project):
    (project / "broken.yaml").write_text("roomc: 1\nrooms: [\n", encoding="utf-8")
    result = invoke("lint", "broken.yaml", "--ignore", "RC0", "--select", "RC2")
    assert result.exit_code == 1  # nothing in it was checked: passing it would be a lie
    assert "[RC001]" in result.output


def test_ignored_findings_do_not_fail(invoke, project):
    assert invoke("lint", "rooms", "--fail-on", "warning").exit_code == 1
    assert invoke("lint", "rooms", "--fail-on", "warning", "--ignore", "RC4").exit_code == 0


def test_roomc_toml_is_found_walking_up(invoke, project):
    (project / "roomc.toml").write_text('ignore = ["RC402"]\nfail-on = "warning"\nformat = "github"\n')
    result = invoke("lint", "rooms/policy.yaml", env={"GITHUB_ACTIONS": "false"})
    assert result.exit_code == 1  # fail-on warning from the file
    assert result.output.startswith("::warning file=rooms/policy.yaml,line=9")  # format from the file
    assert "RC402" not in result.output


def test_pyproject_tool_roomc_and_precedence(invoke, project):
    (project / "pyproject.toml").write_text('[project]\nname = "x"\n\n[tool.roomc]\nselect = ["RC402"]\n')
    assert codes(invoke, "rooms") == ["RC402"]
    assert codes(invoke, "rooms", "--select", "RC4") == ["RC402", "RC401"]  # the command line wins
    (project / "rooms" / "roomc.toml").write_text('ignore = ["RC402"]\n')  # nearer, so it wins over the pyproject
    assert codes(invoke, "rooms") == ["RC401"]
    (project / "rooms" / ".roomc.toml").write_text('select = ["RC401"]\nignore = []\n')  # ruff's order in a folder
    assert codes(invoke, "rooms") == ["RC401"]
    assert codes(invoke, "rooms", "--ignore", "RC401") == []  # --ignore adds to the file's
    assert codes(invoke, "rooms", "--no-config") == ["RC402", "RC401"]


def test_pyproject_without_tool_roomc_is_passed_over(invoke, project):
    (project / "roomc.toml").write_text('ignore = ["RC401"]\n')
    (project / "rooms" / "pyproject.toml").write_text("this is [not toml\n")  # not ours: never parsed
    assert codes(invoke, "rooms") == ["RC402"]


def test_explicit_config_file(invoke, project):
    (project / "strict.toml").write_text('select = ["RC401"]\n')
    (project / "roomc.toml").write_text('select = ["RC402"]\n')
    assert codes(invoke, "rooms", "--config", "strict.toml") == ["RC401"]
    result = invoke("lint", "rooms", "--config", "missing.toml")
    assert result.exit_code == 2 and "missing.toml: cannot read" in result.output


@pytest.mark.parametrize("text, message", [
    ('selct = ["RC2"]\n', "roomc.toml: unknown key 'selct' in the file; did you mean 'select'?"),
    ('colour = "never"\n', "roomc.toml: unknown key 'colour' in the file; known keys: select, ignore, fail-on, format"),
    ('select = "RC2\n', "roomc.toml: not valid TOML: "),
    ("select = [2]\n", "roomc.toml: 'select' must be a list of codes or prefixes"),
    ('fail-on = "info"\n', "roomc.toml: 'fail-on' must be one of error, warning, not 'info'"),
    ('format = "xml"\n', "roomc.toml: 'format' must be one of concise, github, json, sarif, text, not 'xml'"),
    ('ignore = ["RC999"]\n', "ignore: unknown code or prefix 'RC999'"),
])
def test_a_bad_config_file_is_a_clear_usage_error(invoke, project, text, message):
    (project / "roomc.toml").write_text(text)
    result = invoke("lint", "rooms")
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output


def test_pyproject_unknown_key_names_the_table(invoke, project):
    (project / "pyproject.toml").write_text('[tool.roomc]\nfail_on = "warning"\n')
    result = invoke("lint", "rooms")
    assert result.exit_code == 2
    assert "pyproject.toml: unknown key 'fail_on' in [tool.roomc]; did you mean 'fail-on'?" in result.output


@pytest.mark.parametrize("kind", ["fifo", "device"])
def test_a_config_that_is_not_a_regular_file_is_refused_at_once(invoke, project, kind):
    if kind == "fifo":
        os.mkfifo(project / "roomc.toml")  # reading it would block forever
    else:
        (project / "roomc.toml").symlink_to("/dev/zero")  # reading it would never end
    started = time.monotonic()
    result = invoke("lint", "rooms")
    assert result.exit_code == 2
    assert "roomc.toml: not a regular file" in result.output
    assert time.monotonic() - started < 10


def test_files_named_are_separate_policies_a_folder_is_one(invoke, tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    case = "tests/compiler/cases/multi-file"
    separately = invoke("lint", f"{case}/policy.yaml", f"{case}/second.yaml", "--no-config")
    assert "RC010" not in separately.output  # two unrelated files do not clash
    together = invoke("lint", case, "--no-config")
    assert together.exit_code == 1 and "[RC010]" in together.output


def test_commands_that_serve_one_policy_refuse_several_paths(invoke, monkeypatch):
    monkeypatch.chdir(ROOT)
    for command in (["compile"], ["explain", "--route", "/x"], ["graph"]):
        result = invoke(*command, "rooms/meeting.yaml", "rooms/town-hall.yaml")
        assert result.exit_code == 2
        assert "takes one policy, a file or a folder, not 2 paths" in result.output


def test_compile_shows_warnings_without_failing(invoke, tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    result = invoke("compile", "rooms/call-centre.yaml", "-o", str(tmp_path / "routes.json"))
    assert result.exit_code == 0
    assert result.stdout == ""
    heads = [line for line in result.stderr.splitlines() if line.startswith("rooms/")]
    assert [h.split(" [")[1].split("]")[0] for h in heads] == ["RC401"]
    assert "   |               ^^^^^^^^^^^^^^^^^^^^ RC401" in result.stderr
    assert result.stderr.endswith(f"wrote {tmp_path / 'routes.json'} (2 routes)\n")
    assert (tmp_path / "routes.json").exists()


def test_help_on_the_group_and_every_command(runner):
    for flag in ("-h", "--help"):
        result = runner.invoke(main, [flag], prog_name="roomc", catch_exceptions=False)
        assert result.exit_code == 0 and result.output.startswith("Usage: roomc [OPTIONS] COMMAND")
    for name in sorted(main.commands):
        result = runner.invoke(main, [name, "-h"], prog_name="roomc", catch_exceptions=False)
        assert result.exit_code == 0, name
        assert result.output.startswith(f"Usage: roomc {name} "), name
    real = subprocess.run([sys.executable, "-c", "from roomc.cli import run; run()", "-h"], capture_output=True,
                          text=True)
    assert real.returncode == 0 and "lint" in real.stdout


def _on_a_terminal(*args: str, env: dict) -> str:
    """Run the real console entry point with its standard output on a pseudo-terminal; what it printed."""
    import pty

    leader, follower = pty.openpty()
    try:
        process = subprocess.Popen([sys.executable, "-c", "from roomc.cli import run; run()", *args],
                                   stdout=follower, stderr=subprocess.DEVNULL, cwd=ROOT,
                                   env={**os.environ, "GITHUB_ACTIONS": "false", **env})
        os.close(follower)
        chunks = []
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # the terminal closed: the process is done
                break
            if not chunk:
                break
            chunks.append(chunk)
        process.wait(timeout=60)
    finally:
        os.close(leader)
    return b"".join(chunks).decode()


def test_colour_on_a_real_terminal_unless_no_color():
    case = "tests/compiler/cases/unknown-key"
    env = {k: "" for k in ("NO_COLOR", "FORCE_COLOR")}
    assert "\x1b[31m" in _on_a_terminal("lint", case, "--no-config", env=env)
    assert "\x1b[" not in _on_a_terminal("lint", case, "--no-config", env={**env, "NO_COLOR": "1"})


def test_lint_does_not_load_the_runtime():
    # `roomc lint` runs once per file in CI: Flask, granian and the runtime cost it start-up time for nothing.
    code = ("import sys\nfrom roomc.cli import main\n"
            "try:\n    main(['lint', 'rooms', '--no-config'])\nexcept SystemExit as exit:\n    assert exit.code == 0\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('flask', 'werkzeug', 'granian')"
            " or m.startswith('roomc.runtime')))")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
