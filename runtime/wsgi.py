"""The WSGI entry point granian loads: the table and database come from the environment.

`roomc serve` sets ROOMC_TABLE (a compiled route table) and ROOMC_DB (a SQLite path or a
PostgreSQL URL) before starting
granian, so every worker process builds the same app.
"""
from __future__ import annotations

import gc
import os

import orjson

from .app import create_app
from .batch import BatchingStore
from .observe import configure_logging
from .rsgi import RSGIServer
from .storage import is_url, open_store

configure_logging(os.environ.get("ROOMC_LOG_LEVEL", "INFO"), os.environ.get("ROOMC_LOG_FORMAT", "text"))

with open(os.environ["ROOMC_TABLE"], "rb") as handle:
    _table = orjson.loads(handle.read())

# A worker respawned while PostgreSQL is away must start anyway (or granian, seeing a crash loop,
# stops the whole server): `roomc serve` checked the store before starting the workers.
_db = os.environ.get("ROOMC_DB") or "roomc.db"
# Seats and events asked for in one event-loop turn are stored in one transaction (runtime/batch.py).
# ROOMC_BATCH=0 stores each on its own, as before.
_store = open_store(_db, **({"reachable": False} if is_url(_db) else {}))
_batcher = BatchingStore(_store, max_batch=int(os.environ.get("ROOMC_BATCH_MAX") or 0)) \
    if os.environ.get("ROOMC_BATCH", "1") != "0" else None
app = create_app(_table, store=_batcher or _store)
if _batcher is not None:
    _batcher.observer = app.extensions["roomc"]["observer"]

# `roomc serve` runs granian's RSGI interface with this (runtime/rsgi.py): bodies are read on the
# event loop with a deadline before a request thread is taken.
rsgi = RSGIServer(app, max_body_bytes=app.extensions["roomc"]["settings"].max_body_bytes,
                  body_timeout=float(os.environ.get("ROOMC_BODY_TIMEOUT") or 5),
                  threads=int(os.environ.get("ROOMC_REQUEST_THREADS") or 1),
                  streams=app.extensions["roomc"].get("streams"), batcher=_batcher)


# Everything built so far (modules, the table, compiled templates) lives as long as the worker:
# frozen, the collector's full passes no longer walk it. Unfrozen, each full pass walked the whole
# heap on the event loop, stopping every request of the worker for about 30 ms, several times a minute
# under load (the transient objects of parked requests promote into the oldest generation quickly):
# p99 at 64 connections 30-43 ms, against 22-28 ms frozen (docs/runtime.md, "Garbage collection").
gc.collect()
gc.freeze()
