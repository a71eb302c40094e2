"""Golden lint output for each case directory of broken policies (exact file:line:col per finding).

Regenerate on purpose with `ROOMC_REGENERATE=1 make test`, then read the diff.
"""
import os
from pathlib import Path

import pytest

from roomc.compiler import pipeline
from roomc.compiler.reporters import text

from ..conftest import REGENERATE, ROOT

CASES = Path(__file__).parent / "cases"


@pytest.mark.parametrize("case", sorted(p.name for p in CASES.iterdir() if p.is_dir()))
def test_lint_output_matches_golden(case, monkeypatch):
    monkeypatch.chdir(ROOT)  # findings name files relative to the repository, as in CI
    folder = CASES / case
    compilation = pipeline.run([os.path.relpath(folder, ROOT)])
    output = text(compilation.diagnostics)
    expected = folder / "expected.txt"
    if REGENERATE:
        expected.write_text(output, encoding="utf-8")
    assert output == expected.read_text(encoding="utf-8")
    assert compilation.diagnostics, "every case exists to produce findings"


def test_every_rule_has_a_code_of_its_own():
    """Two helpers once gave their rules the same codes (RC230-RC232): the docs showed one, silencing hid both."""
    from roomc.compiler.codes import CODES
    from roomc.compiler.rules import RULES

    codes = [rule.CODE for rule in RULES]
    assert sorted(c for c in set(codes) if codes.count(c) > 1) == []
    assert not set(codes) & set(CODES)
