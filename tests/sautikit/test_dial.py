"""`roomc dial` and `roomc calls` refuse what the runtime or the platform would refuse, and say what to set."""
import sqlite3
import threading

import pytest

from roomc.runtime.store import SQLiteStore

from ..conftest import ROOMS
from ..runtime.server import free_port

TOWN_HALL = str(ROOMS / "town-hall.yaml")


def dial(invoke, *args, env):
    return invoke("dial", TOWN_HALL, "--route", "/townhall/join", "--from", "+254700000001", *args, env=env)


def test_numbers_must_be_e164(invoke, tmp_path):
    env = {"ROOMC_PUBLIC_URL": "https://rooms.example.com", "SAUTIKIT_API_KEY": "k", "ROOMC_DB": str(tmp_path / "d.db")}
    result = dial(invoke, "--query", "room=99", "--to", "0711000001", env=env)
    assert result.exit_code == 2
    assert "--to '0711000001' is not an E.164 number" in result.output and "+254711000001" in result.output


def test_no_room_is_invented_where_the_runtime_would_answer_the_fallback(invoke, tmp_path):
    env = {"ROOMC_PUBLIC_URL": "https://rooms.example.com", "SAUTIKIT_API_KEY": "k", "ROOMC_DB": str(tmp_path / "d.db")}
    result = dial(invoke, "--to", "+254711000001", env=env)  # no --query room: the room name cannot render
    assert result.exit_code == 2
    assert "the runtime would answer this call with the fallback" in result.output and "room" in result.output
    assert "townhall" not in result.output.replace("/townhall/join", "")


def test_an_unreachable_platform_names_the_variable_to_set(invoke, tmp_path):
    api = f"http://127.0.0.1:{free_port()}"
    env = {"ROOMC_PUBLIC_URL": "https://rooms.example.com", "SAUTIKIT_API_KEY": "k", "SAUTIKIT_API_URL": api,
           "ROOMC_DB": str(tmp_path / "d.db")}
    result = dial(invoke, "--query", "room=99", "--to", "+254711000001", env=env)
    assert result.exit_code == 1
    assert "cannot reach Sautikit" in result.output and f"SAUTIKIT_API_URL is {api}" in result.output
    assert "Sautikit refused" not in result.output
    with SQLiteStore(str(tmp_path / "d.db")) as store:
        assert store.dialled_calls("townhall-99") == []  # nothing placed, nothing recorded


def test_calls_for_a_room_nothing_was_dialled_into(invoke, tmp_path):
    result = invoke("calls", "--room", "townhall-1", "--db", str(tmp_path / "d.db"), env={"SAUTIKIT_API_KEY": ""})
    assert result.exit_code == 0 and "no calls dialled into townhall-1" in result.output


def test_store_keeps_dialled_calls_per_room(tmp_path):
    with SQLiteStore(str(tmp_path / "d.db")) as store:
        store.record_dialled_call("a", "c1", role="host", session_id="HD_1", to="+254711000001", at=10.0)
        store.record_dialled_call("a", "c1", role="host", at=11.0)  # recorded once
        store.record_dialled_call("b", "c2", at=12.0)
        assert [(c["callId"], c["role"], c["sessionId"]) for c in store.dialled_calls("a")] == [("c1", "host", "HD_1")]
        assert [c["callId"] for c in store.dialled_calls("b")] == ["c2"]


@pytest.fixture
def local_api():
    """The local Sautikit over HTTP on loopback; its calls API is how the test sees what was placed."""
    from werkzeug.serving import make_server

    from roomc.sautikit.client import CallsClient
    from roomc.sautikit.engine import Platform, VirtualClock
    from roomc.sautikit.local_server import create_local_app

    server = make_server("127.0.0.1", 0, create_local_app(Platform(VirtualClock()), api_key="k"), threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}"
    yield url, CallsClient(api_key="k", base_url=url, attempts=1, timeout=5)
    server.shutdown()


def test_an_unusable_store_is_found_before_the_call_is_placed(invoke, local_api, tmp_path):
    url, client = local_api
    env = {"ROOMC_PUBLIC_URL": "https://rooms.example.com", "SAUTIKIT_API_KEY": "k", "SAUTIKIT_API_URL": url}
    result = dial(invoke, "--query", "room=6", "--to", "+254711000009", "--db", str(tmp_path / "no" / "x.db"), env=env)
    assert result.exit_code == 1, result.output
    assert "not dialled" in result.output and str(tmp_path / "no" / "x.db") in result.output
    assert "internal error" not in result.output and "Traceback" not in result.output
    assert list(client.list_calls()) == []  # nobody's phone rang


def test_a_call_placed_but_not_recorded_is_named(invoke, local_api, tmp_path, monkeypatch):
    """The store worked when checked and failed at the write (a disk filling up, a lock held too long):
    the call is ringing, so its id is printed with the error."""
    url, client = local_api

    def failing(self, *args, **kwargs):
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(SQLiteStore, "record_dialled_call", failing)
    env = {"ROOMC_PUBLIC_URL": "https://rooms.example.com", "SAUTIKIT_API_KEY": "k", "SAUTIKIT_API_URL": url}
    result = dial(invoke, "--query", "room=6", "--to", "+254711000009", "--db", str(tmp_path / "d.db"), env=env)
    placed = list(client.list_calls())
    assert len(placed) == 1 and result.exit_code == 1, result.output
    assert placed[0]["id"] in result.output and "could not be recorded" in result.output
    assert "database or disk is full" in result.output and "internal error" not in result.output
