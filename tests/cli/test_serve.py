"""`roomc serve`: the granian command it hands over to, and the default worker count."""
import json
import os
import socket

import pytest

from roomc.cli import serve as serve_module

from ..conftest import ROOMS
from ..runtime.server import free_port


@pytest.fixture
def granian_argv(monkeypatch, tmp_path):
    """The argv `roomc serve` would run granian with, captured instead of run."""
    captured: list[list[str]] = []

    def capture(argv, log_format="text"):
        captured.append(argv)
        return 0

    monkeypatch.setattr(serve_module, "supervise", capture)
    monkeypatch.chdir(tmp_path)  # serve writes build/serve-routes.json under the working directory
    monkeypatch.setenv("ROOMC_DB", str(tmp_path / "roomc.db"))
    for name in ("ROOMC_TABLE", "ROOMC_BODY_TIMEOUT", "ROOMC_REQUEST_THREADS", "ROOMC_ALLOW_UNSIGNED", "ROOMC_LOG_FORMAT",
                 "PROMETHEUS_MULTIPROC_DIR"):
        # serve sets them for granian's workers. setenv first: delenv of an unset name records
        # nothing, and the value serve sets would outlive the test (PROMETHEUS_MULTIPROC_DIR did).
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)
    monkeypatch.setenv("SAUTIKIT_VOICE_SECRET", "s3cret")  # rooms/ names it; serve fails closed without it
    return captured


@pytest.mark.parametrize("cores, workers", [(1, 1), (2, 2), (3, 3), (16, 16)])
def test_one_worker_per_core(monkeypatch, cores, workers):
    # Under RSGI a saturated worker keeps about one core busy (README, "Speed").
    monkeypatch.setattr(serve_module.os, "sched_getaffinity", lambda _pid: set(range(cores)), raising=False)
    assert serve_module.default_workers() == workers


def test_serve_hands_granian_rsgi_with_read_deadlines_and_respawn(invoke, granian_argv, monkeypatch):
    monkeypatch.setattr(serve_module.os, "sched_getaffinity", lambda _pid: {0, 1, 2, 3}, raising=False)
    port = free_port()
    result = invoke("serve", str(ROOMS), "--port", str(port))
    assert result.exit_code == 0, result.output
    argv = granian_argv[0]
    flag = {argv[i]: argv[i + 1] for i in range(len(argv) - 1) if argv[i].startswith("--")}
    # RSGI: bodies are read on the event loop under a deadline (runtime/rsgi.py); headers under granian's.
    assert flag["--interface"] == "rsgi" and argv[-1] == "roomc.runtime.wsgi:rsgi"
    assert flag["--workers"] == "4" and flag["--port"] == str(port)
    assert flag["--http1-header-read-timeout"] == str(serve_module.HEADER_READ_TIMEOUT_MS)
    assert int(flag["--backpressure"]) >= 1024  # granian's default, per server; now per worker, up to the fd limit
    assert "--respawn-failed-workers" in argv
    assert os.environ["ROOMC_TABLE"].endswith("serve-routes.json")
    assert os.environ["ROOMC_REQUEST_THREADS"] == "1" and float(os.environ["ROOMC_BODY_TIMEOUT"]) == 5.0


def test_a_taken_port_is_refused_before_granian_starts(invoke, granian_argv):
    # granian binds with SO_REUSEPORT: without this check a second server shares the port silently.
    with socket.socket() as taken:
        taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = invoke("serve", str(ROOMS), "--port", str(port))
    assert result.exit_code == 2
    assert f"port {port} on 127.0.0.1 is already in use" in result.output
    assert granian_argv == []


def test_a_postgresql_store_gets_a_worker_per_core_too(invoke, granian_argv, monkeypatch, pg_url):
    # A worker's loop serves on while its batch waits for the database (runtime/batch.py): no extra worker.
    monkeypatch.setattr(serve_module.os, "sched_getaffinity", lambda _pid: {0, 1}, raising=False)
    result = invoke("serve", str(ROOMS), "--port", str(free_port()), "--db", pg_url)
    assert result.exit_code == 0, result.output
    argv = granian_argv[0]
    assert argv[argv.index("--workers") + 1] == "2"
    assert os.environ["ROOMC_REQUEST_THREADS"] == "1"
    assert invoke("serve", str(ROOMS), "--port", str(free_port()), "--db", pg_url, "--workers", "0").exit_code == 2


def test_workers_can_be_set(invoke, granian_argv):
    assert invoke("serve", str(ROOMS), "--workers", "3", "--port", str(free_port())).exit_code == 0
    argv = granian_argv[0]
    assert argv[argv.index("--workers") + 1] == "3"


def test_serve_refuses_to_start_when_the_named_secret_is_unset(invoke, granian_argv, monkeypatch):
    for value in (None, "", "   "):
        if value is None:
            monkeypatch.delenv("SAUTIKIT_VOICE_SECRET", raising=False)
        else:
            monkeypatch.setenv("SAUTIKIT_VOICE_SECRET", value)
        result = invoke("serve", str(ROOMS), "--port", str(free_port()))
        assert result.exit_code == 2 and granian_argv == []
        assert "SAUTIKIT_VOICE_SECRET is unset or empty" in result.output and "--allow-unsigned" in result.output


def test_allow_unsigned_is_loud_and_loopback_only(invoke, granian_argv, monkeypatch):
    monkeypatch.delenv("SAUTIKIT_VOICE_SECRET", raising=False)
    result = invoke("serve", str(ROOMS), "--port", str(free_port()), "--host", "0.0.0.0", "--allow-unsigned")
    assert result.exit_code == 2 and "loopback" in result.output and granian_argv == []
    result = invoke("serve", str(ROOMS), "--port", str(free_port()), "--allow-unsigned")
    assert result.exit_code == 0 and "SIGNATURES OFF" in result.output
    assert os.environ.get("ROOMC_ALLOW_UNSIGNED") == "1"  # what the granian workers read
    monkeypatch.setenv("SAUTIKIT_VOICE_SECRET", "s3cret")
    monkeypatch.delenv("ROOMC_ALLOW_UNSIGNED")
    result = invoke("serve", str(ROOMS), "--port", str(free_port()))
    assert result.exit_code == 0 and "SIGNATURES OFF" not in result.output


def test_serve_refuses_a_table_with_no_public_url_unless_roomc_public_url_is_set(invoke, granian_argv, monkeypatch,
                                                                                  tmp_path):
    """A table compiled with RC406 suppressed (or from an older roomc) would send `/townhall/events` to the platform."""
    import json

    from roomc.compiler import pipeline

    table = pipeline.run([str(ROOMS / "town-hall.yaml")]).table
    table["server"]["publicUrl"] = None
    path = tmp_path / "routes.json"
    path.write_text(json.dumps(table))
    monkeypatch.delenv("ROOMC_PUBLIC_URL", raising=False)
    refused = invoke("serve", str(path), "--port", str(free_port()))
    assert refused.exit_code != 0 and "ROOMC_PUBLIC_URL" in refused.output and "/townhall/events" in refused.output
    assert granian_argv == []
    monkeypatch.setenv("ROOMC_PUBLIC_URL", "https://rooms.example.com")
    assert invoke("serve", str(path), "--port", str(free_port())).exit_code == 0
    assert len(granian_argv) == 1


def test_two_serves_started_together_on_one_port_cannot_both_start(invoke, granian_argv):
    port = free_port()
    held = serve_module._claim_port(port)  # what the first roomc serve holds for its life
    assert isinstance(held, int)
    try:
        second = invoke("serve", str(ROOMS), "--port", str(port))
        assert second.exit_code == 2 and "being served by another roomc serve" in second.output
        assert granian_argv == []
    finally:
        os.close(held)
    assert invoke("serve", str(ROOMS), "--port", str(port)).exit_code == 0


def test_localhost_is_handed_to_granian_as_an_address_over_http1_only(invoke, granian_argv):
    result = invoke("serve", str(ROOMS), "--port", str(free_port()), "--host", "localhost")
    assert result.exit_code == 0, result.output
    argv = granian_argv[0]
    flag = {argv[i]: argv[i + 1] for i in range(len(argv) - 1) if argv[i].startswith("--")}
    assert flag["--host"] == "127.0.0.1" and flag["--http"] == "1"


def test_serve_refuses_a_broken_meeting_directory_without_quoting_a_pin(invoke, granian_argv, monkeypatch, tmp_path):
    import shutil

    for name in ("dial-in-bridge.yaml", "dial-in-meetings.csv"):
        shutil.copy(ROOMS / name, tmp_path / name)
    monkeypatch.delenv("MEETINGS_FILE", raising=False)
    table = tmp_path / "routes.json"
    assert invoke("compile", str(tmp_path / "dial-in-bridge.yaml"), "-o", str(table)).exit_code == 0
    directory = tmp_path / "dial-in-meetings.csv"
    # Compiled from a policy folder, the file broken afterwards: lint refused it then, serve does now.
    directory.write_text("meeting,hostPin,participantPin\n123456,4321,4321\n")
    assert invoke("serve", str(tmp_path / "dial-in-bridge.yaml"), "--port", str(free_port()),
                  "--allow-unsigned").exit_code != 0
    refused = invoke("serve", str(table), "--port", str(free_port()), "--allow-unsigned")
    assert refused.exit_code == 2 and granian_argv == []
    assert "dial-in-meetings.csv:2: [RC233]" in refused.output and "4321" not in refused.output
    directory.unlink()
    missing = invoke("serve", str(table), "--port", str(free_port()), "--allow-unsigned")
    assert missing.exit_code == 2 and "cannot read the meeting directory" in missing.output
    good = tmp_path / "elsewhere.csv"
    good.write_text("meeting,hostPin,participantPin\n123456,4321,1111\n")
    monkeypatch.setenv("MEETINGS_FILE", str(good))  # the policy's fileEnv: the operator's own file wins
    assert invoke("serve", str(table), "--port", str(free_port()), "--allow-unsigned").exit_code == 0
    assert len(granian_argv) == 1


def test_serve_refuses_pin_tries_without_signatures(invoke, granian_argv, monkeypatch, tmp_path):
    """Unsigned, a request names its own call id: one local server gave up meeting 123456's host PIN to
    322 posts in 1.4 s, three per made-up call. So a policy that counts tries or checks PINs is served
    only signed, or unsigned on loopback when asked for (--allow-unsigned)."""
    import shutil

    for name in ("dial-in-bridge.yaml", "dial-in-meetings.csv"):
        shutil.copy(ROOMS / name, tmp_path / name)
    policy = tmp_path / "dial-in-bridge.yaml"
    table = tmp_path / "routes.json"
    monkeypatch.delenv("MEETINGS_FILE", raising=False)
    monkeypatch.delenv("ROOMC_ALLOW_UNSIGNED", raising=False)
    assert invoke("compile", str(policy), "-o", str(table)).exit_code == 0
    # A table from before RC237 (or written by hand) that names no secret.
    compiled = json.loads(table.read_text())
    compiled["server"]["signatureSecretEnv"] = None
    table.write_text(json.dumps(compiled))
    policy.write_text(policy.read_text().replace("  signatureSecretEnv: SAUTIKIT_VOICE_SECRET\n", ""))
    assert "signatureSecretEnv" not in policy.read_text()
    linted = invoke("serve", str(policy), "--port", str(free_port()))
    assert linted.exit_code == 1 and "RC237" in linted.output and granian_argv == []
    for host in ("0.0.0.0", "127.0.0.1"):
        refused = invoke("serve", str(table), "--port", str(free_port()), "--host", host)
        assert refused.exit_code == 2 and granian_argv == []
        assert "flow 'lobby'" in refused.output and "signatureSecretEnv" in refused.output, refused.output
    allowed = invoke("serve", str(table), "--port", str(free_port()), "--allow-unsigned")
    assert allowed.exit_code == 0 and "SIGNATURES OFF" in allowed.output


def test_the_shipped_dial_in_bridge_is_served_signed_only(invoke, granian_argv, monkeypatch):
    monkeypatch.delenv("SAUTIKIT_VOICE_SECRET", raising=False)
    monkeypatch.delenv("MEETINGS_FILE", raising=False)
    refused = invoke("serve", str(ROOMS / "dial-in-bridge.yaml"), "--port", str(free_port()), "--host", "0.0.0.0")
    assert refused.exit_code == 2 and "SAUTIKIT_VOICE_SECRET is unset or empty" in refused.output
