"""PostgreSQL that stops answering: roomc enforces each statement's deadline itself (issue 12).

The server's own statement_timeout never fires on a database that is frozen or behind a black-holed
network, so a hung statement must be cut on roomc's side; here a lock held from another session
stands in for it (the server's 2 s statement_timeout would only end it later).
"""
import time

import psycopg
import pytest

from roomc.runtime.postgres import STATEMENT_WAIT
from roomc.runtime.storage import open_store
from roomc.runtime.store import StoreTimeout


def test_a_statement_that_hangs_is_cut_at_its_deadline_and_the_store_recovers(pg_url):
    with open_store(pg_url) as store:
        assert store.reserve("r", "a", "m", counted=True, limit=5, ttl=60, muted=False).admitted
        holder = psycopg.connect(pg_url, autocommit=False)
        try:
            holder.execute("LOCK TABLE seats IN ACCESS EXCLUSIVE MODE")
            started = time.monotonic()
            with pytest.raises(StoreTimeout):
                store.reserve("r", "b", "m", counted=True, limit=5, ttl=60, muted=False,
                              deadline=time.monotonic() + 2.0)
            took = time.monotonic() - started
            assert took < STATEMENT_WAIT + 0.5, took  # roomc's deadline, not the server's 2 s timeout
            assert store.health()["store"] == "degraded"
        finally:
            holder.rollback()
            holder.close()
        time.sleep(0.2)
        assert store.reserve("r", "b", "m", counted=True, limit=5, ttl=60, muted=False,
                             deadline=time.monotonic() + 2.0).admitted


def test_a_batch_that_hangs_is_cut_at_its_deadline_and_the_store_recovers(pg_url):
    """A batch waits for its results without holding the GIL (psycopg's get_result would), so the
    watchdog thread can cut it; then the pool has a clean connection again."""
    from roomc.runtime.store import SeatRequest

    seats = [SeatRequest("r", call, "m", True, 5, 60, False) for call in ("a", "b", "c")]
    with open_store(pg_url) as store:
        holder = psycopg.connect(pg_url, autocommit=False)
        try:
            holder.execute("LOCK TABLE seats IN ACCESS EXCLUSIVE MODE")
            started = time.monotonic()
            with pytest.raises(StoreTimeout):
                store.reserve_many(seats, deadline=time.monotonic() + 2.0)
            took = time.monotonic() - started
            assert took < STATEMENT_WAIT + 0.5, took
        finally:
            holder.rollback()
            holder.close()
        time.sleep(0.2)
        assert [a.admitted for a in store.reserve_many(seats, deadline=time.monotonic() + 2.0)] == [True] * 3


def test_passwords_never_reach_messages_in_any_form():
    from roomc.runtime.postgres import redact, scrub

    url = "postgresql://roomc@127.0.0.1:5/db?password=S3CRETPW&sslmode=disable"
    assert "S3CRETPW" not in redact(url) and "sslmode=disable" in redact(url)
    bad = "postgresql://roomc:S3%zzCRETPW@127.0.0.1:5/db"
    assert "S3%zzCRETPW" not in scrub('invalid percent-encoded token: "S3%zzCRETPW"', bad)
    assert "S3CRETPW" not in scrub("password authentication failed: S3CRETPW", url)


def test_an_empty_roomc_db_means_the_default_store(invoke, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ROOMC_DB", "")
    result = invoke("db", "status")
    assert "roomc.db" in result.output


def test_healthz_tells_a_silent_database_without_ever_waiting_on_it(rooms_table):
    """A database whose port takes connections and then says nothing (a frozen host, a black-holed
    network): /healthz answers at once every time, and within seconds says the worker cannot reach it."""
    import socket

    from roomc.runtime import Settings, create_app
    from roomc.runtime.postgres import PostgresStore

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(64)  # never accepted, never answered
    url = f"postgresql://roomc@127.0.0.1:{silent.getsockname()[1]}/roomc"
    store = PostgresStore(url, reachable=False)
    client = create_app(rooms_table, store=store, settings=Settings(public_url="https://r.example.com")).test_client()
    try:
        seen, slowest, started = [], 0.0, time.monotonic()
        while time.monotonic() - started < 8:
            before = time.monotonic()
            body = client.get("/healthz").get_json()
            slowest = max(slowest, time.monotonic() - before)
            seen.append(body["database"]["reachable"])
            if body["database"]["reachable"] is False:
                break
            time.sleep(0.05)
        assert slowest < 0.1, slowest  # never waits on the database
        assert body["store"] == "degraded" and body["database"]["reachable"] is False, body
        assert body["database"]["lastError"] and body["database"]["pool"]["max"] == 4
    finally:
        store.close()
        silent.close()


def test_healthz_reports_a_reachable_database_and_this_workers_pool(rooms_table, pg_url):
    from roomc.runtime import Settings, create_app

    with open_store(pg_url) as store:
        client = create_app(rooms_table, store=store, settings=Settings(public_url="https://r.example.com")).test_client()
        assert client.post("/conference/join?room=1", data={"CallId": "h1"}).status_code == 200
        body = client.get("/healthz").get_json()
        assert body["store"] == "ok" and body["database"]["reachable"] is True, body
        assert body["database"]["lastContactSeconds"] < 5 and body["database"]["pool"]["open"] >= 1
        time.sleep(2.5)  # idle: the worker's own probe keeps the answer fresh
        assert client.get("/healthz").get_json()["database"]["lastContactSeconds"] < 2.0
