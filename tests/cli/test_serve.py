"""`roomc serve`: the granian command it hands over to, and the default worker count."""
import os

import pytest

from roomc.cli import serve as serve_module

from ..conftest import ROOMS


@pytest.fixture
def granian_argv(monkeypatch, tmp_path):
    """The argv `roomc serve` would exec, captured instead of replacing the test process."""
    captured: list[list[str]] = []

    def capture(executable, argv):
        captured.append(argv)

    monkeypatch.setattr(serve_module.os, "execv", capture)
    monkeypatch.chdir(tmp_path)  # serve writes build/serve-routes.json under the working directory
    monkeypatch.setenv("ROOMC_DB", str(tmp_path / "roomc.db"))
    monkeypatch.delenv("ROOMC_TABLE", raising=False)  # serve sets it for granian's workers; undone after
    return captured


@pytest.mark.parametrize("cores, workers", [(1, 1), (2, 1), (3, 1), (4, 2), (16, 8)])
def test_one_worker_per_two_cores(monkeypatch, cores, workers):
    monkeypatch.setattr(serve_module.os, "sched_getaffinity", lambda _pid: set(range(cores)), raising=False)
    assert serve_module.default_workers() == workers


def test_serve_hands_granian_one_thread_per_worker_and_respawn(invoke, granian_argv, monkeypatch):
    monkeypatch.setattr(serve_module.os, "sched_getaffinity", lambda _pid: {0, 1, 2, 3}, raising=False)
    result = invoke("serve", str(ROOMS), "--port", "8099")
    assert result.exit_code == 0, result.output
    argv = granian_argv[0]
    flag = {argv[i]: argv[i + 1] for i in range(len(argv) - 1) if argv[i].startswith("--")}
    assert flag["--workers"] == "2" and flag["--blocking-threads"] == "1" and flag["--port"] == "8099"
    assert "--respawn-failed-workers" in argv
    assert argv[-1] == "roomc.runtime.wsgi:app"
    assert os.environ["ROOMC_TABLE"].endswith("serve-routes.json")


def test_workers_can_be_set(invoke, granian_argv):
    assert invoke("serve", str(ROOMS), "--workers", "3").exit_code == 0
    argv = granian_argv[0]
    assert argv[argv.index("--workers") + 1] == "3"
