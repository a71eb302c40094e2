"""`roomc serve` and `roomc rooms`: run the webhook server, read what it stored."""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click

from roomc.compiler.emit import emit

from .main import Failure, load_table, main

# One Python thread per worker: a second only contends for the GIL, and seat writes are
# serialised anyway (bench/serve_bench.py, 2 cores: 2 threads a worker answered 5-20 % fewer requests/s).
DEFAULT_BLOCKING_THREADS = 1


def default_workers() -> int:
    """One worker process per two cores, at least one.

    A saturated worker keeps about 1.3 cores busy: its Python thread and granian's I/O thread.
    One worker per core oversubscribes the machine, and the queueing shows at the tail (2 cores,
    wrk beside it: p99 19-32 ms with two workers, 16-21 ms with one, at 85-95 % of the requests/s).
    """
    try:
        cores = len(os.sched_getaffinity(0))  # the cores this process may use (containers, taskset)
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, cores // 2)


@main.command()
@click.argument("paths", nargs=-1, type=click.Path())
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--db", default=lambda: os.environ.get("ROOMC_DB", "roomc.db"), show_default="roomc.db or $ROOMC_DB",
              help="SQLite file for seats, participants and events.")
@click.option("--workers", default=default_workers, show_default="one per two cores, at least 1", type=int,
              help="Worker processes (granian); a worker that dies is replaced.")
@click.option("--blocking-threads", default=DEFAULT_BLOCKING_THREADS, show_default=True, type=int,
              help="Threads per worker (granian).")
@click.option("--dev", is_flag=True, help="Flask's development server with the reloader, instead of granian.")
def serve(paths: tuple[str, ...], host: str, port: int, db: str, workers: int, blocking_threads: int,
          dev: bool) -> None:
    """Serve a route table (build/routes.json) or room policies (compiled first) as Sautikit webhooks."""
    table = load_table(paths or ("rooms",))
    table_path = Path(paths[0]) if len(paths) == 1 and paths[0].endswith(".json") else Path("build/serve-routes.json")
    if not (len(paths) == 1 and paths[0].endswith(".json")):
        table_path.parent.mkdir(parents=True, exist_ok=True)
        table_path.write_text(emit(table), encoding="utf-8")
    from roomc.runtime.store import SQLiteStore

    SQLiteStore(db)  # create the file and its tables once, before workers race to do it
    os.environ["ROOMC_TABLE"] = str(table_path.resolve())
    os.environ["ROOMC_DB"] = str(Path(db).resolve())
    click.echo(f"roomc: serving {len(table['routes'])} routes on http://{host}:{port} (db {db})", err=True)
    if dev:
        from roomc.runtime import create_app

        create_app(table, store=SQLiteStore(db)).run(host=host, port=port, debug=True, use_reloader=True)
        return
    os.execv(sys.executable, [sys.executable, "-m", "granian", "--interface", "wsgi", "--host", host,
                              "--port", str(port), "--workers", str(workers), "--blocking-threads",
                              str(blocking_threads), "--no-access-log", "--workers-kill-timeout", "5",
                              # Without this, one worker's death stops the whole server and every caller hears silence.
                              "--respawn-failed-workers", "--respawn-interval", "0.5",
                              "roomc.runtime.wsgi:app"])


@main.command()
@click.argument("name", required=False)
@click.option("--db", default=lambda: os.environ.get("ROOMC_DB", "roomc.db"), show_default="roomc.db or $ROOMC_DB")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
def rooms(name: str | None, db: str, fmt: str) -> None:
    """Live rooms with their counts, or one room's participants and recording (same JSON as GET /rooms)."""
    from roomc.runtime.store import SQLiteStore

    if not Path(db).exists():
        raise Failure(f"no store at {db} (run `roomc serve` first, or pass --db)")
    store = SQLiteStore(db)
    data = store.room(name) if name else {"rooms": store.live_rooms()}
    if data is None:
        raise Failure(f"no room named {name!r} in {db}", exit_code=1)
    if fmt == "json":
        click.echo(json.dumps(data, indent=2))
        return
    if name:
        click.echo(f"{data['name']}: started {data['started'] or '-'}, ended {data['ended'] or '-'}")
        for p in data["participants"]:
            click.echo(f"  {p['callId']:<24} {p['role'] or '-':<12} {'muted' if p['muted'] else '':<6} "
                       f"joined {p['joinedAt'] or '-'}  left {p['leftAt'] or '-'}")
        click.echo(f"  recording: {data['recordingUrl'] or '-'}")
        return
    if not data["rooms"]:
        click.echo("no live rooms")
    for r in data["rooms"]:
        click.echo(f"{r['name']:<40} {r['participants']} joined, {r['reserved']} reserved"
                   f"{', started' if r['started'] else ''}")
