"""Hostile policies found by attacking lint (issue 11): growth through `~` and `+`, and inputs
that used to crash a pass, which must become one located finding without losing other files'."""
import subprocess
import sys

import pytest

from roomc.compiler.templates import LimitExceeded

from ..conftest import write_policy


def _render(template: str) -> str:
    from roomc.compiler.templates import BoundedSandbox

    return BoundedSandbox().from_string(template).render()


@pytest.mark.parametrize("template", [
    "{% set a = 'aaaaaaaaaa' %}" + "{% set a = a~a~a~a~a~a~a~a~a~a %}" * 8 + "{{ a | length }}",
    "{% set a = [1,2,3,4,5,6,7,8,9,10] %}" + "{% set a = a+a+a+a+a+a+a+a+a+a %}" * 7 + "{{ a | length }}",
    "{% set a = 'x' * 9000 %}{{ a + a }}",
])
def test_self_concatenation_is_bounded(template):
    with pytest.raises(LimitExceeded):
        _render(template)


def test_small_concatenations_still_render():
    assert _render("{{ 'a' ~ 1 ~ 'b' }}{{ [1] + [2] }}{{ 'x' + 'y' }}") == "a1b[1, 2]xy"


@pytest.mark.parametrize("body", [
    "    maxParticipants: !!bool abc\n",
    "    maxParticipants: 5\n    say: \"{{ " + "9" * 5000 + " }}\"\n",
    "    maxParticipants: 5\n    say: \"{{ " + "(" * 600 + "1" + ")" * 600 + " }}\"\n",
])
def test_a_file_that_breaks_a_pass_is_one_finding_and_others_are_still_reported(tmp_path, body):
    bad = write_policy(tmp_path, "roomc: 1\nrooms:\n  r:\n    name: r\n" + body +
                       "    roles: {m: {say: hi}}\nroutes:\n  /j: {join: r}\n", "bad.yaml")
    good = write_policy(tmp_path, "roomc: 1\nrooms:\n  r:\n    name: r\n    maxParticipants: 010\n"
                        "    roles: {m: {say: hi}}\nroutes:\n  /j: {join: r}\n", "good.yaml")
    result = subprocess.run([sys.executable, "-c", "from roomc.cli import run; run()", "lint", "--no-config",
                             "--format", "concise", str(bad), str(good)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 1, result.stderr
    assert "internal error" not in result.stdout + result.stderr and "Traceback" not in result.stderr
    lines = result.stdout.splitlines()
    assert any(line.startswith(f"{bad}:") and "error" in line for line in lines)
    assert any(line.startswith(f"{good}:") for line in lines)  # the other file's findings survive


def test_a_folder_with_no_policy_files_and_a_null_document_do_not_lint_clean(tmp_path, invoke):
    folder = tmp_path / "renamed"
    folder.mkdir()
    (folder / "x.YAML").write_text("roomc: 1\n")  # renamed so the folder would be skipped
    result = invoke("lint", "--no-config", "--format", "concise", str(folder))
    assert result.exit_code == 1 and "no policy files" in result.output
    null = write_policy(tmp_path, "~\n", "null.yaml")
    result = invoke("lint", "--no-config", "--format", "concise", str(null))
    assert result.exit_code == 1 and "RC008" in result.output
