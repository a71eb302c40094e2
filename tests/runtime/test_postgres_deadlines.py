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
