"""A few thousand generated requests against a real `roomc serve` (bench/fuzz.py runs 100,000)."""
import importlib.util
import sys

import pytest

from ..conftest import ROOT

pytestmark = [pytest.mark.server, pytest.mark.fuzz]


def load_fuzz():
    spec = importlib.util.spec_from_file_location("roomc_bench_fuzz", ROOT / "bench" / "fuzz.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_generated_requests_get_json_and_lose_nothing(tmp_path):
    result = load_fuzz().run(3000, seed=7, threads=4, workers=2, work=tmp_path)
    examples = result["examples"]
    assert result["non_json"] == 0, examples["non_json"]
    assert result["bad_5xx"] == 0, examples["bad_5xx"]
    assert result["tracebacks"] == 0, examples["traceback"]
    assert result["seats_over_limit"] == 0, examples["over"]
    assert result["acknowledged_missing"] == 0, examples["missing"]
    assert result["transport_errors"] == 0
    # The run reached every part it is meant to check.
    assert result["acknowledged_events"] > 100 and result["rooms_admitted"] > 20
    assert {200, 403, 404, 405, 413} <= set(result["answers"])
