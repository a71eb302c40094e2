"""Everything is documented: every code, every schema key, every setting, and the README's commands."""
import re
import subprocess
import sys

from roomc.compiler.codes import CODES
from roomc.compiler.rules import RULES
from roomc.compiler.schemas import POLICY, schema

from .conftest import ROOT

LANGUAGE = (ROOT / "docs" / "language.md").read_text()
RUNTIME = (ROOT / "docs" / "runtime.md").read_text()
README = (ROOT / "README.md").read_text()


def test_rules_page_is_generated_from_the_rule_docstrings():
    result = subprocess.run([sys.executable, "tools/gen_rules_doc.py", "--check"], cwd=ROOT, capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stderr


def test_every_code_is_on_the_rules_page():
    page = (ROOT / "docs" / "rules.md").read_text()
    codes = set(CODES) | {rule.CODE for rule in RULES}
    assert [c for c in sorted(codes) if f"| {c} |" not in page] == []


def test_every_rule_has_a_failing_and_a_passing_example():
    for rule in RULES:
        assert "Failing::" in rule.__doc__ and "Passing::" in rule.__doc__, rule.__name__
        assert rule.SEVERITY.value in ("error", "warning")


def test_every_schema_key_is_in_the_language_doc():
    keys = set()

    def walk(node):
        if isinstance(node, dict):
            keys.update(node.get("properties", {}))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)
    walk(schema(POLICY))
    assert sorted(k for k in keys if f"`{k}`" not in LANGUAGE) == []


def test_every_environment_setting_is_documented():
    code = "".join(p.read_text() for p in (ROOT / "runtime").glob("*.py")) + (ROOT / "cli" / "serve.py").read_text()
    used = set(re.findall(r"ROOMC_[A-Z_]+", code))
    assert sorted(v for v in used if v not in RUNTIME) == []


def test_every_command_is_in_the_readme_or_docs():
    from roomc.cli import main
    docs = README + RUNTIME + (ROOT / "docs" / "simulate.md").read_text()
    assert sorted(name for name in main.commands if f"roomc {name}" not in docs) == []


def test_every_sautikit_setting_is_documented():
    code = "".join(p.read_text() for p in (ROOT / "sautikit").glob("*.py")) + (ROOT / "cli" / "calls.py").read_text()
    used = set(re.findall(r"SAUTIKIT_[A-Z_]+", code))
    page = (ROOT / "docs" / "simulate.md").read_text()
    assert sorted(v for v in used if v not in page) == []


def test_readme_opens_with_the_two_commands():
    head = "\n".join(README.splitlines()[:25])
    assert "make serve" in head and "make test" in head
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in ci


def test_readme_policy_is_the_meeting_example():
    snippet = README.split("```yaml\n", 1)[1].split("```", 1)[0]
    example = [line for line in (ROOT / "rooms" / "meeting.yaml").read_text().splitlines()
               if not line.startswith("#") or "yaml-language-server" in line]
    assert snippet.splitlines() == example
