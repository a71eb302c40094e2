"""`roomc db status|upgrade|copy`, and `roomc serve`/`roomc rooms` against either store."""
import json
import sqlite3

import pytest

from roomc.cli import serve as serve_module
from roomc.runtime.normalise import event
from roomc.runtime.storage import open_store
from roomc.runtime.store import SCHEMA_VERSION

from ..conftest import ROOMS


@pytest.fixture(params=["sqlite", "postgresql"])
def location(request, tmp_path):
    return str(tmp_path / "roomc.db") if request.param == "sqlite" else request.getfixturevalue("pg_url")


def test_status_upgrade_status(invoke, location):
    before = json.loads(invoke("db", "status", "--db", location, "--format", "json").output)
    assert before["state"] == "empty" and before["version"] is None
    assert "created at schema version" in invoke("db", "upgrade", "--db", location).output
    assert "already at schema version" in invoke("db", "upgrade", "--db", location).output
    text = invoke("db", "status", "--db", location)
    assert text.exit_code == 0 and f"schema version {SCHEMA_VERSION}" in text.output and "(current)" in text.output


def _make_old(location):
    """A store as roomc left it before schema versions were recorded."""
    open_store(location).close()
    if location.startswith("postgresql://"):
        import psycopg

        with psycopg.connect(location, autocommit=True) as conn:
            conn.execute("DROP TABLE roomc_schema")
    else:
        with sqlite3.connect(location) as db:
            db.execute("DROP TABLE roomc_schema")


def test_serve_refuses_an_older_store_and_says_what_to_run(invoke, location, monkeypatch, tmp_path):
    monkeypatch.setattr(serve_module, "supervise", lambda *a: pytest.fail("must not start granian"))
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ROOMC_TABLE", raising=False)
    monkeypatch.delenv("ROOMC_DB", raising=False)
    monkeypatch.setenv("SAUTIKIT_VOICE_SECRET", "s3cret")  # rooms/ names it; serve refuses to run unsigned
    _make_old(location)
    status = invoke("db", "status", "--db", location)
    assert status.exit_code == 1 and "(older)" in status.output
    refused = invoke("serve", str(ROOMS), "--db", location)
    assert refused.exit_code == 2
    assert f"run `roomc db upgrade --db {location}`" in refused.output and "Traceback" not in refused.output
    assert invoke("rooms", "--db", location).exit_code == 2
    assert "upgraded from schema version 0" in invoke("db", "upgrade", "--db", location).output
    captured = []
    monkeypatch.setattr(serve_module, "supervise", lambda argv, log_format="text": captured.append(argv) or 0)
    assert invoke("serve", str(ROOMS), "--db", location).exit_code == 0 and captured
    assert serve_module.os.environ["ROOMC_DB"].endswith("roomc.db") or serve_module.os.environ["ROOMC_DB"] == location


def test_serve_says_when_the_database_is_unreachable(invoke, monkeypatch, tmp_path):
    monkeypatch.setattr(serve_module, "supervise", lambda *a: pytest.fail("must not start granian"))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SAUTIKIT_VOICE_SECRET", "s3cret")
    from ..pg import free_port

    url = f"postgresql://roomc@127.0.0.1:{free_port()}/nowhere"
    refused = invoke("serve", str(ROOMS), "--db", url)
    assert refused.exit_code == 2 and f"cannot open the store {url}" in refused.output
    assert "Traceback" not in refused.output


def test_copy_sqlite_into_postgresql_then_rooms_reads_it(invoke, tmp_path, pg_url):
    source = str(tmp_path / "old.db")
    with open_store(source) as old:
        old.reserve("m-1", "c1", "host", counted=True, limit=10, ttl=60, muted=False)
        old.record(event({"ConferenceName": "m-1", "StatusCallbackEvent": "join", "CallId": "c1", "Timestamp": 1.7e9},
                         now=1.7e9))
    copied = invoke("db", "copy", source, pg_url)
    assert copied.exit_code == 0 and "1 events, 1 seats, 0 rooms" in copied.output
    one = json.loads(invoke("rooms", "m-1", "--db", pg_url, "--format", "json").output)
    assert one["participants"][0].pop("reservedAt").endswith("Z")
    assert one["participants"] == [{"callId": "c1", "role": "host", "muted": False,
                                    "joinedAt": "2023-11-14T22:13:20.000Z", "leftAt": None}]
    again = invoke("db", "copy", source, pg_url)
    assert again.exit_code == 2 and "copy only into an empty store" in again.output


def test_a_password_never_reaches_the_output(invoke, pg_cluster):
    url = f"postgresql://roomc:s3cret@127.0.0.1:{pg_cluster.port}/missing_db"
    result = invoke("db", "status", "--db", url)
    assert result.exit_code == 2 and "s3cret" not in result.output and "***" in result.output


def test_copy_of_a_hostile_file_says_which_row_and_copies_nothing(invoke, tmp_path, pg_url):
    source = str(tmp_path / "old.db")
    with open_store(source) as old:
        old.reserve("m-1", "c\x00d", "host", counted=True, limit=10, ttl=60, muted=False)
    refused = invoke("db", "copy", source, pg_url)
    assert refused.exit_code == 2 and "Traceback" not in refused.output
    assert "table seats, row 1 (room='m-1', call_id='c\\x00d')" in refused.output and "--nul replace" in refused.output
    assert json.loads(invoke("rooms", "--db", pg_url, "--format", "json").output) == {"rooms": []}
    copied = invoke("db", "copy", source, pg_url, "--nul", "replace")
    assert copied.exit_code == 0 and "1 seats" in copied.output
    assert "already holds 1 seats" in invoke("db", "copy", source, pg_url).output
    assert invoke("db", "copy", source, pg_url, "--replace", "--nul", "replace").exit_code == 0


def test_upgrade_and_status_refuse_another_applications_tables(invoke, location):
    if location.startswith("postgresql://"):
        import psycopg

        with psycopg.connect(location, autocommit=True) as conn:
            conn.execute("CREATE TABLE seats (id INTEGER PRIMARY KEY, flight TEXT)")
    else:
        with sqlite3.connect(location) as db:
            db.execute("CREATE TABLE seats (id INTEGER PRIMARY KEY, flight TEXT)")
    upgraded = invoke("db", "upgrade", "--db", location)
    assert upgraded.exit_code == 2 and "table seats has columns roomc's does not (flight, id)" in upgraded.output
    assert "a database of its own" in upgraded.output and "Traceback" not in upgraded.output
    status = invoke("db", "status", "--db", location)
    assert status.exit_code == 1 and "(foreign)" in status.output
