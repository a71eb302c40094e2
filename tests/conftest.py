"""Shared fixtures: Flask's app/client/runner trio, a lint helper, paths to the examples, and a
real PostgreSQL cluster for the session (tests/pg.py)."""
from __future__ import annotations

import gc
import itertools
import json
import os
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from roomc.cli import main
from roomc.compiler import pipeline
from roomc.runtime import Settings, create_app
from roomc.runtime.store import SQLiteStore

from .pg import Cluster


def pytest_collection_finish(session: pytest.Session) -> None:
    """Freeze what collection built (every module, every test item) before the first test runs.

    A store write waits at most 250 ms for its lock (runtime/store.py STORE_WAIT). In this process a
    full collection walks the whole suite's heap, and a stall of that kind is the likely reason a
    Flask-client join once heard the fallback in CI (its write gave up waiting). Served workers
    freeze their heap the same way (runtime/wsgi.py)."""
    gc.collect()
    gc.freeze()


ROOT = Path(__file__).resolve().parent.parent
ROOMS = ROOT / "rooms"
REGENERATE = os.environ.get("ROOMC_REGENERATE") == "1"  # rewrite golden files, on purpose only


def write_policy(tmp_path: Path, text: str, name: str = "policy.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def compile_text(tmp_path: Path, text: str) -> pipeline.Compilation:
    return pipeline.run([str(write_policy(tmp_path, text))])


def findings(tmp_path: Path, text: str) -> list[tuple[str, int, int]]:
    """(code, line, column) of every finding for a policy written as YAML text."""
    return [(d.code, d.span.line, d.span.column) for d in compile_text(tmp_path, text).diagnostics]


def table_for(tmp_path: Path, text: str) -> dict:
    compilation = compile_text(tmp_path, text)
    assert compilation.table is not None, [d.message for d in compilation.diagnostics]
    return compilation.table


@pytest.fixture(autouse=True)
def _environment_restored() -> Iterator[None]:
    """`roomc serve` sets variables for granian's workers; with granian's start patched out they would
    outlive the test and reach every later server (a leaked PROMETHEUS_MULTIPROC_DIR did)."""
    saved = dict(os.environ)
    yield
    if os.environ != saved:
        os.environ.clear()
        os.environ.update(saved)


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def invoke(runner):
    def run(*args: str, env: dict | None = None):
        return runner.invoke(main, list(args), catch_exceptions=False, env=env)
    return run


@pytest.fixture(scope="session")
def rooms_table() -> dict:
    compilation = pipeline.run([str(ROOMS)])
    assert compilation.table is not None, compilation.diagnostics
    return compilation.table


@pytest.fixture
def store(tmp_path) -> Iterator[SQLiteStore]:
    with SQLiteStore(str(tmp_path / "roomc.db")) as opened:
        yield opened


@pytest.fixture
def settings() -> Settings:
    return Settings(public_url="https://rooms.example.com", admin_token="admin-token",
                    secrets={"HOST_PIN": "4321"})


@pytest.fixture
def app(rooms_table, store, settings):
    application = create_app(rooms_table, store=store, settings=settings)
    application.config["TESTING"] = True
    return application


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture(autouse=True)
def sdk_contract(tmp_path, monkeypatch):
    """Every response any local Sautikit gives in any test (in process or a `roomc sautikit-local` process) is
    logged and checked against the official SDK's types and the platform's error envelope."""
    from roomc.sautikit.local_server import RESPONSE_LOG

    from .sautikit.contract import contract_problems

    log = tmp_path / "sautikit-responses.jsonl"
    monkeypatch.setenv(RESPONSE_LOG, str(log))
    yield log
    lines = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    problems = contract_problems(lines)
    assert not problems, "the local Sautikit broke the SDK's contract:\n" + "\n".join(problems[:20])
@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[Cluster]:
    """A PostgreSQL cluster of our own for the whole session: initdb'd, started on a free port,
    removed at the end. Fails (never skips) when PostgreSQL cannot start: `make test` installs it."""
    cluster = Cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()


_databases = itertools.count(1)


@pytest.fixture
def pg_url(pg_cluster) -> str:
    """The URL of a new, empty database in the session's cluster."""
    return pg_cluster.create_database(f"test_{os.getpid()}_{next(_databases)}")
