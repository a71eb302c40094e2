"""Golden output of `roomc lint` in every format, and SARIF as GitHub code scanning reads it.

The inputs are tests/cli/golden/{schema,rules}.yaml, two policies linted in one run. Regenerate the
golden files on purpose with `ROOMC_REGENERATE=1 make test`, then read the diff.
"""
import json
from pathlib import Path

import jsonschema
import pytest

from ..conftest import REGENERATE, ROOT

GOLDEN = Path(__file__).parent / "golden"
INPUTS = ["tests/cli/golden/schema.yaml", "tests/cli/golden/rules.yaml"]
SARIF_SCHEMA = Path(__file__).parent / "sarif-schema-2.1.0.json"
FORMATS = {
    "lint.txt": ["--format", "text", "--color", "never"],
    "lint-color.txt": ["--format", "text", "--color", "always"],
    "lint.concise": ["--format", "concise", "--color", "never"],
    "lint.json": ["--format", "json"],
    "lint.github": ["--format", "github"],
    "lint.sarif": ["--format", "sarif"],
}


def lint(invoke, *args, env=None):
    return invoke("lint", *INPUTS, "--no-config", *args, env={"GITHUB_ACTIONS": "false", **(env or {})})


def _normalised(output: str) -> str:
    # The SARIF root is this checkout's absolute folder; the golden file names it ROOT.
    return output.replace(ROOT.as_uri(), "file:///ROOT")


@pytest.mark.parametrize("golden", sorted(FORMATS))
def test_output_matches_golden(golden, invoke, monkeypatch):
    monkeypatch.chdir(ROOT)  # findings name files relative to the repository, as in CI
    result = lint(invoke, *FORMATS[golden])
    assert result.exit_code == 1, result.output
    output = _normalised(result.stdout)
    if REGENERATE:
        (GOLDEN / golden).write_text(output, encoding="utf-8")
    assert output == (GOLDEN / golden).read_text(encoding="utf-8")


def test_colour_only_where_asked(invoke, monkeypatch):
    monkeypatch.chdir(ROOT)
    plain = (GOLDEN / "lint.txt").read_text(encoding="utf-8")
    coloured = (GOLDEN / "lint-color.txt").read_text(encoding="utf-8")
    assert "\x1b[" in coloured and "\x1b[" not in plain
    assert lint(invoke).stdout == plain  # not a terminal: no colour
    assert lint(invoke, env={"FORCE_COLOR": "1"}).stdout == coloured
    assert lint(invoke, env={"FORCE_COLOR": "1", "NO_COLOR": "1"}).stdout == plain
    assert lint(invoke, "--color", "always", env={"NO_COLOR": "1"}).stdout == coloured
    assert lint(invoke, "--color", "never", env={"FORCE_COLOR": "1"}).stdout == plain
    for fmt in ("json", "github", "sarif"):  # machine formats never carry escapes
        assert "\x1b" not in lint(invoke, "--format", fmt, "--color", "always").stdout


def _sarif(invoke) -> dict:
    return json.loads(lint(invoke, "--format", "sarif").stdout)


def test_sarif_is_valid_against_the_2_1_0_schema(invoke, monkeypatch):
    monkeypatch.chdir(ROOT)
    schema = json.loads(SARIF_SCHEMA.read_text(encoding="utf-8"))
    validator = jsonschema.Draft4Validator(schema)
    assert [e.message for e in validator.iter_errors(_sarif(invoke))] == []
    clean = json.loads(invoke("lint", "rooms", "--no-config", "--format", "sarif").stdout)
    assert clean["runs"][0]["results"] == [] and validator.is_valid(clean)
    from roomc.compiler.diagnostics import Diagnostic, Severity
    from roomc.compiler.sarif import render
    nowhere = json.loads(render([Diagnostic("RC405", Severity.ERROR, "internal")], sources={}))
    assert "locations" not in nowhere["runs"][0]["results"][0] and validator.is_valid(nowhere)


def test_sarif_has_what_github_code_scanning_reads(invoke, monkeypatch):
    monkeypatch.chdir(ROOT)
    run = _sarif(invoke)["runs"][0]
    driver = run["tool"]["driver"]
    assert driver["version"] and driver["informationUri"].startswith("https://")
    for rule in driver["rules"]:
        assert rule["shortDescription"]["text"] and rule["fullDescription"]["text"]
        assert rule["help"]["text"] and rule["help"]["markdown"]
        assert rule["helpUri"].startswith("https://")
        assert rule["defaultConfiguration"]["level"] in ("error", "warning", "note")
    rc208 = next(rule for rule in driver["rules"] if rule["id"] == "RC208")
    assert "Failing:" in rc208["help"]["text"] and "```yaml" in rc208["help"]["markdown"]
    assert rc208["helpUri"].endswith("docs/rules.md#rc208-status-event-name")
    assert rc208["fullDescription"]["text"].startswith("Documented names are start, end, join")
    assert run["originalUriBaseIds"]["%SRCROOT%"]["uri"] == ROOT.as_uri() + "/"
    assert [r["ruleId"] for r in run["results"]] == ["RC402", "RC208", "RC401", "RC101"]
    for result in run["results"]:
        assert driver["rules"][result["ruleIndex"]]["id"] == result["ruleId"]
        location = result["locations"][0]["physicalLocation"]
        assert location["artifactLocation"]["uriBaseId"] == "%SRCROOT%"
        assert location["artifactLocation"]["uri"].startswith("tests/cli/golden/")
        assert result["partialFingerprints"]["primaryLocationLineHash"]
    region = run["results"][3]["locations"][0]["physicalLocation"]["region"]
    assert region == {"startLine": 6, "startColumn": 5, "endLine": 6, "endColumn": 19}  # under 'maxParticipant'


def test_sarif_fingerprints_survive_unrelated_edits(invoke, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    policy = (ROOT / "tests/cli/golden/rules.yaml").read_text(encoding="utf-8")

    def fingerprints():
        out = json.loads(invoke("lint", "p.yaml", "--no-config", "--format", "sarif").stdout)
        return {r["ruleId"]: r["partialFingerprints"]["primaryLocationLineHash"] for r in out["runs"][0]["results"]}

    (tmp_path / "p.yaml").write_text(policy, encoding="utf-8")
    before = fingerprints()
    (tmp_path / "p.yaml").write_text("# a new comment line\n\n" + policy, encoding="utf-8")
    after = fingerprints()
    assert before == after and len(set(before.values())) == 3
    (tmp_path / "p.yaml").write_text(policy.replace("mutte", "mutee"), encoding="utf-8")
    assert fingerprints()["RC208"] != before["RC208"]  # the finding's own line changed: a new alert


def test_sarif_paths_outside_the_root_are_absolute(invoke, tmp_path, monkeypatch):
    (tmp_path / "here").mkdir()
    monkeypatch.chdir(tmp_path / "here")
    (tmp_path / "p q.yaml").write_text("roomc: 1\nrooms: {m: {nme: x}}\n", encoding="utf-8")
    out = json.loads(invoke("lint", "../p q.yaml", "--no-config", "--format", "sarif").stdout)
    artifact = out["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["artifactLocation"]
    assert artifact == {"uri": (tmp_path / "p q.yaml").as_uri()}
    (tmp_path / "here" / "a b.yaml").write_text("roomc: 1\nrooms: {m: {nme: x}}\n", encoding="utf-8")
    out = json.loads(invoke("lint", "a b.yaml", "--no-config", "--format", "sarif").stdout)
    artifact = out["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["artifactLocation"]
    assert artifact == {"uri": "a%20b.yaml", "uriBaseId": "%SRCROOT%"}


def test_readme_shows_the_text_format_as_it_is(invoke, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "policy.yaml").write_text((GOLDEN / "schema.yaml").read_text(encoding="utf-8"), encoding="utf-8")
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    shown = readme.split("$ roomc lint policy.yaml\n", 1)[1].split("```", 1)[0]
    result = invoke("lint", "policy.yaml", "--no-config", "--format", "text", env={"NO_COLOR": "1"})
    assert shown == result.stdout


def test_readme_names_every_json_key(invoke, monkeypatch):
    monkeypatch.chdir(ROOT)
    keys = json.loads(lint(invoke, "--format", "json").stdout)[0].keys()
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "`{" + ", ".join(keys) + "}`" in readme.replace("\n", " ")


def test_sarif_rule_help_is_what_the_rules_page_says():
    from roomc.compiler.sarif import catalogue

    page = (ROOT / "docs" / "rules.md").read_text(encoding="utf-8")
    for code, doc in catalogue().items():
        assert f"| {code} | {doc.name} | {doc.severity.value} |" in page, code
        if doc.failing:
            section = page.split(f"## {code} {doc.name}\n", 1)[1].split("\n## ", 1)[0]
            assert f"```yaml\n{doc.failing}\n```" in section and f"```yaml\n{doc.passing}\n```" in section, code
            assert " ".join(section.split()).startswith(f"{doc.summary} {doc.why}"), code
