"""`roomc serve` and `roomc rooms`: run the webhook server, read what it stored."""
from __future__ import annotations

import errno
import json
import os
import sys
import tempfile
from pathlib import Path

import click

from roomc.compiler.emit import emit

from .main import Failure, load_table, main

# One Python thread per worker (the event loop's): a second only contends for the GIL, and seat writes
# are serialised anyway (bench/serve_bench.py, 2 cores: handing requests to a second thread answered
# 25-30 % fewer requests/s).
DEFAULT_BLOCKING_THREADS = 1
# Slow clients (docs/runtime.md): headers must arrive within this, bodies within --body-timeout.
HEADER_READ_TIMEOUT_MS = 5000
DEFAULT_BODY_TIMEOUT = 5.0


def connections_per_worker(workers: int) -> int:
    """Open connections each granian worker may hold (its `--backpressure`): as many as file descriptors allow.

    granian counts every open connection against this limit, even one that has not sent a byte
    (and such a connection is never timed out), so its default (1,024 a server) let 1,024 idle
    sockets from anyone stop every caller. The soft file-descriptor limit is raised to the hard
    one (granian's workers inherit it), and the connections share it, keeping 256 for the rest.
    """
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and (hard == resource.RLIM_INFINITY or soft < hard):
        wanted = 1 << 20 if hard == resource.RLIM_INFINITY else hard
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
            soft = wanted
        except (ValueError, OSError):
            pass
    available = 1 << 20 if soft == resource.RLIM_INFINITY else soft
    return max(1024, (available - 256) // max(1, workers))


def port_problem(host: str, port: int) -> str | None:
    """Why `host:port` cannot be listened on, or None.

    granian binds with SO_REUSEPORT, so a second server on a taken port would start and
    silently take part of the traffic; a plain bind (SO_REUSEADDR only, which still refuses
    a port someone listens on) tells a taken port from a free one first.
    """
    import socket  # only `serve` binds: not imported by every lint run

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                return f"port {port} on {host} is already in use (another roomc serve, or another program)"
            return f"cannot listen on {host}:{port}: {error.strerror or error}"
    return None


def _claim_port(port: int) -> int | str:
    """Hold a per-port lock for the life of this process (granian's parent): two `roomc serve`
    started at the same moment both pass the bind probe, and granian's SO_REUSEPORT lets both bind."""
    import fcntl
    import tempfile

    path = Path(tempfile.gettempdir()) / f"roomc-port-{port}.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return f"port {port} is being served by another roomc serve (lock {path})"
    return fd


def _loopback(host: str) -> bool:
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def default_workers() -> int:
    """One worker process per core, at least one, whichever the store.

    Under granian's RSGI interface a saturated worker keeps about one core busy: its event-loop
    thread runs every request, and its I/O threads wait for the GIL that thread holds, so one
    worker on 2 cores left the second core partly idle. Measured on this project's 2-core machine,
    quiet, wrk beside it (README, "Speed"): SQLite joins 3,354 a second with two workers against
    2,811 with one (median of 3 interleaved rounds; p99 31-46 ms against 32-61). On PostgreSQL a
    worker's loop goes on serving while its batch waits for the database (runtime/batch.py), so it
    needs no extra worker to fill that wait: two such workers answered 5-15 % more joins than three
    that waited out each round trip, at 9-15 % less CPU a join (4 interleaved rounds, /proc).
    """
    try:
        return max(1, len(os.sched_getaffinity(0)))  # the cores this process may use (containers, taskset)
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def _say(log_format: str, level: str, message: str) -> None:
    """A start-up line on stderr, as one JSON object under --log-format json like every later line."""
    click.echo(json.dumps({"level": level, "logger": "roomc", "message": message}) if log_format == "json" else message,
               err=True)


@main.command()
@click.argument("paths", nargs=-1, type=click.Path())
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--db", default=lambda: (os.environ.get("ROOMC_DB") or "roomc.db"), show_default="roomc.db or $ROOMC_DB",
              help="The store: a SQLite file, or postgresql://USER@HOST:PORT/DB shared by many instances.")
@click.option("--workers", default=None, show_default="one per core, at least 1",
              type=click.IntRange(min=1), help="Worker processes (granian); a worker that dies is replaced.")
@click.option("--blocking-threads", default=DEFAULT_BLOCKING_THREADS, show_default=True,
              type=click.IntRange(min=1), help="Request threads per worker (1: the worker's event loop thread).")
@click.option("--body-timeout", default=DEFAULT_BODY_TIMEOUT, show_default=True, type=click.FloatRange(min=0.1),
              help="Seconds a client has to send its request body; slower ones get 408.")
@click.option("--dev", is_flag=True, help="Flask's development server with the reloader, instead of granian.")
@click.option("--allow-unsigned", is_flag=True,
              help="Serve without verifying signatures even though the policy names a secret variable that is "
                   "unset (local testing only; loopback hosts only).")
@click.option("--log-format", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="json: one object per line (request id, route, call id, room, outcome, latency).")
def serve(paths: tuple[str, ...], host: str, port: int, db: str, workers: int | None, blocking_threads: int,
          body_timeout: float, dev: bool, allow_unsigned: bool, log_format: str) -> None:
    """Serve a route table (build/routes.json) or room policies (compiled first) as Sautikit webhooks."""
    workers = workers or default_workers()
    if host == "localhost":
        host = "127.0.0.1"  # granian wants an address; roomc's loopback check already knows the name
    problem = port_problem(host, port)
    if problem:
        raise Failure(f"{problem}; choose another --port or stop what is listening there")
    # Before anything is written: a serve refused here while another was between two granians (the
    # port free for a moment) had already written its table over build/serve-routes.json and emptied
    # the metrics folder, and the other's next granian served its rooms.
    # (Not --dev: Flask's reloader runs this command again in a child, which would find it taken.)
    claim = None if dev else _claim_port(port)
    if isinstance(claim, str):
        raise Failure(f"{claim}; choose another --port or stop what is listening there")
    try:
        _serve(paths, host, port, db, workers, blocking_threads, body_timeout, dev, allow_unsigned, log_format)
    finally:
        if claim is not None:
            os.close(claim)  # the port is given back only when serving has ended (or was refused)


def _serve(paths: tuple[str, ...], host: str, port: int, db: str, workers: int, blocking_threads: int,
           body_timeout: float, dev: bool, allow_unsigned: bool, log_format: str) -> None:
    table = load_table(paths or ("rooms",))
    from roomc.runtime.app import MissingSecret, Settings, own_route_links

    if allow_unsigned:
        if not _loopback(host):
            raise Failure(f"--allow-unsigned serves only on a loopback address, not {host}: callers on a public "
                          f"address could choose their own role")
        os.environ["ROOMC_ALLOW_UNSIGNED"] = "1"
    else:
        os.environ.pop("ROOMC_ALLOW_UNSIGNED", None)
    try:
        settings = Settings.from_env(table)  # the same reading every worker makes, checked once up front
    except (MissingSecret, ValueError) as exc:
        raise Failure(str(exc)) from None
    relative = own_route_links(table) if not settings.public_url else []
    if relative:
        raise Failure(f"the table links to its own routes ({', '.join(relative[:3])}) but has no public URL, so the "
                      "platform would get callback URLs with no host: set ROOMC_PUBLIC_URL (or server.publicUrl)")
    if settings.signing_secret is None:
        _say(log_format, "WARNING", "roomc: WARNING: SIGNATURES OFF: requests are not verified; anyone who can reach "
             "this server can choose their role" + (" (--allow-unsigned)" if allow_unsigned else
                                                    " (the policy names no server.signatureSecretEnv)"))
    table_path = Path(paths[0]) if len(paths) == 1 and paths[0].endswith(".json") else Path("build/serve-routes.json")
    if not (len(paths) == 1 and paths[0].endswith(".json")):
        table_path.parent.mkdir(parents=True, exist_ok=True)
        table_path.write_text(emit(table), encoding="utf-8")
    from roomc.runtime.storage import describe, is_url

    # Once, before workers race to: an empty store is given the schema, any other version refused.
    check_store(db)
    os.environ["ROOMC_TABLE"] = str(table_path.resolve())
    os.environ["ROOMC_DB"] = db if is_url(db) else str(Path(db).resolve())
    os.environ["ROOMC_BODY_TIMEOUT"] = str(body_timeout)
    os.environ["ROOMC_REQUEST_THREADS"] = str(blocking_threads)
    os.environ["ROOMC_LOG_FORMAT"] = log_format
    # Metrics from every worker process meet in one folder (prometheus-client's multiprocess
    # mode); emptied at each start so a previous run's counts are not summed in.
    from roomc.runtime.observe import prepare_multiprocess_dir

    # (beside a SQLite file; for a database URL, in the temporary folder, one per port)
    beside = Path(tempfile.gettempdir()) / f"roomc-{port}" if is_url(db) else Path(db).resolve()
    metrics_dir = Path(os.environ.get("PROMETHEUS_MULTIPROC_DIR") or f"{beside}.metrics")
    prepare_multiprocess_dir(metrics_dir)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
    granian_logs: list[str] = []
    if log_format == "json":
        # granian's own lines too, so every line on stderr is one JSON object.
        config = metrics_dir / "granian-logging.json"
        formatter = {"()": "roomc.runtime.observe.JsonFormatter"}
        handler = {"formatter": "json", "class": "logging.StreamHandler", "stream": "ext://sys.stderr"}
        config.write_text(json.dumps({"formatters": {"json": formatter}, "handlers": {"console": handler},
                                      "loggers": {"_granian": {"handlers": ["console"], "level": "INFO",
                                                               "propagate": False}}}))
        granian_logs = ["--log-config", str(config)]
    _say(log_format, "INFO", f"roomc: serving {len(table['routes'])} routes on http://{host}:{port} (db {describe(db)})")
    if dev:
        from roomc.runtime import create_app
        from roomc.runtime.storage import open_store

        create_app(table, store=open_store(db)).run(host=host, port=port, debug=True, use_reloader=True)
        return
    # RSGI, not WSGI: granian's WSGI body read blocks the request thread with no deadline, so one
    # stalled upload stopped the worker (runtime/rsgi.py reads bodies on the event loop instead).
    argv = [sys.executable, "-m", "granian", "--interface", "rsgi", "--host", host,
            "--port", str(port), "--workers", str(workers), "--no-access-log",
            "--http1-header-read-timeout", str(HEADER_READ_TIMEOUT_MS),
            # HTTP/1 only: the header deadline does not apply to cleartext HTTP/2.
            "--http", "1",
            # asyncio's own tasks: runtime/rsgi.py cancels a late body read, which
            # granian's Rust tasks (GRANIAN_TASK_IMPL=rust) ignore.
            "--task-impl", "asyncio",
            "--backpressure", str(connections_per_worker(workers)),
            "--workers-kill-timeout", "5",
            # Without this, one worker's death stops the whole server and every caller hears silence.
            "--respawn-failed-workers", "--respawn-interval", "0.5",
            *granian_logs, "roomc.runtime.wsgi:rsgi"]
    code = supervise(argv, log_format)
    if code:
        raise SystemExit(code)


# granian stops the whole server when a worker slot dies again within 5.5 s of its respawn (its
# crash-loop rule, not configurable): the OOM killer taking a fresh worker twice would leave every
# caller in silence. A granian that stops without being asked to is started again, at most
# RESTARTS_PER_MINUTE times a minute (a server that cannot stay up is reported, not spun); one
# that refused its own arguments (status 2) is not.
# granian gets --workers-kill-timeout 5 to stop its workers; past this, a stopping granian is killed.
STOP_GRACE_SECONDS = 12.0
RESTARTS_PER_MINUTE = 5


def supervise(argv: list[str], log_format: str = "text") -> int:
    """Run granian as this process's child until asked to stop; start it again if it stopped on its own.

    SIGINT and SIGTERM are passed on to granian, SIGHUP and SIGQUIT as SIGTERM (granian reads SIGHUP
    as "respawn the workers" and does not handle SIGQUIT at all), and then nothing is restarted;
    one this process was started ignoring (nohup) stays ignored.
    Returns granian's exit status (a signal's number as 128 + n, as a shell reports it); a stop
    asked for is 0, as granian's own is.
    """
    import signal
    import subprocess
    import time

    stopping = False
    stop_asked_at = 0.0
    child: subprocess.Popen | None = None

    def pass_on(signum: int, _frame: object) -> None:
        nonlocal stopping, stop_asked_at
        if stopping:
            return  # once: signals in a row can deadlock granian's own handler (it sets a threading.Event)
        stopping, stop_asked_at = True, time.monotonic()
        if child is not None and child.poll() is None:
            child.send_signal(signum if signum in (signal.SIGINT, signal.SIGTERM) else signal.SIGTERM)

    # A signal this process was started ignoring stays ignored: `nohup roomc serve &` must outlive
    # the terminal's hangup (so must a background job of a script, which ignores SIGINT).
    handled = [signum for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)
               if signal.getsignal(signum) != signal.SIG_IGN]
    previous = {signum: signal.signal(signum, pass_on) for signum in handled}
    # granian's workers outlive a granian killed outright (kill -9, the OOM killer): reparented to
    # this process rather than to init, they are ended here before another granian starts.
    _prctl(36, 1)  # PR_SET_CHILD_SUBREAPER
    stop_with_parent = _stop_with_parent()
    restarts: list[float] = []
    try:
        while True:
            if stopping:  # asked to stop during the pause before a restart: nothing is running
                return 0
            started = time.monotonic()
            # If this supervisor dies (kill -9), its granian is told to stop rather than serve on unwatched.
            child = subprocess.Popen(argv, preexec_fn=stop_with_parent)
            if stopping:  # asked to stop while it was being started: it missed the signal
                child.terminate()
            killed = False
            while True:
                try:
                    code = child.wait(timeout=0.5)
                    break
                except subprocess.TimeoutExpired:
                    # A granian that has not stopped well past its own workers' kill timeout never will
                    # (a deadlocked signal handler was seen): killed, and its workers with it, below.
                    if stopping and not killed and time.monotonic() - stop_asked_at > STOP_GRACE_SECONDS:
                        _say(log_format, "ERROR", f"roomc: granian did not stop within {STOP_GRACE_SECONDS:.0f} s "
                                                  "of being asked to; killed")
                        child.kill()
                        killed = True
            code = 128 - code if code < 0 else code
            _end_leftovers()
            if stopping:  # (a SIGTERM that reached granian before its own handler did is that stop too)
                return 0 if code == 128 + signal.SIGTERM or killed else code
            now = time.monotonic()
            restarts = [at for at in restarts if now - at < 60]
            if code == 2 or len(restarts) >= RESTARTS_PER_MINUTE:
                why = "it refused its arguments" if code == 2 else f"{RESTARTS_PER_MINUTE} restarts within a minute"
                _say(log_format, "ERROR", f"roomc: granian exited with status {code}; not restarted ({why})")
                return code or 1
            restarts.append(now)
            how = (f"was killed by {signal.Signals(code - 128).name}" if code > 128 and code - 128 in signal.valid_signals()
                   else f"stopped on its own (status {code}; its crash-loop rule stops the server when a worker dies "
                        "twice within 5.5 s)")
            _say(log_format, "ERROR", f"roomc: granian {how} after {now - started:.0f} s; starting it again")
            time.sleep(0.5)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _prctl(option: int, value: int) -> bool:
    """Linux's prctl(2); False where there is none."""
    try:
        import ctypes

        return ctypes.CDLL(None, use_errno=True).prctl(option, value, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _stop_with_parent():
    """What granian's process runs before it starts: SIGTERM when roomc serve dies (Linux; elsewhere nothing).

    Resolved here, in the parent: the child, between fork and exec, imports and loads nothing.
    """
    parent = os.getpid()
    try:
        import ctypes

        prctl = ctypes.CDLL(None).prctl
    except (OSError, AttributeError):
        return None

    def in_child() -> None:
        prctl(1, 15, 0, 0, 0)  # PR_SET_PDEATHSIG, SIGTERM
        if os.getppid() != parent:  # roomc serve died before that took hold: nobody would stop this one
            os._exit(1)

    return in_child


def _end_leftovers(grace: float = 5.0) -> None:
    """End this process's children other than granian (its workers, once granian was killed outright):
    SIGTERM, then SIGKILL after `grace` seconds (granian's --workers-kill-timeout), reaping each."""
    import signal
    import time

    me, deadline, asked = str(os.getpid()), time.monotonic() + grace, set()
    while True:
        left = []
        for entry in os.listdir("/proc") if os.path.isdir("/proc") else ():
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat") as handle:
                    if handle.read().rsplit(")", 1)[1].split()[1] == me:
                        left.append(int(entry))
            except (OSError, IndexError):
                continue
        for pid in left:
            try:
                if os.waitpid(pid, os.WNOHANG)[0]:
                    continue  # it had ended: now reaped
                if time.monotonic() > deadline:
                    os.kill(pid, signal.SIGKILL)
                elif pid not in asked:
                    os.kill(pid, signal.SIGTERM)
                    asked.add(pid)
            except (ChildProcessError, ProcessLookupError):
                pass
        if not left:
            return
        time.sleep(0.05)


def check_store(db: str) -> None:
    """Open the store once: create an empty one, refuse one at another schema version or out of reach."""
    from roomc.runtime.storage import SchemaMismatch, describe, open_store

    try:
        open_store(db).close()
    except SchemaMismatch as exc:
        raise Failure(str(exc)) from None
    except Exception as exc:  # unreachable database, unreadable file: say which, not a traceback
        raise Failure(f"cannot open the store {describe(db)}: {str(exc).strip()}") from None


@main.command()
@click.argument("name", required=False)
@click.option("--db", default=lambda: (os.environ.get("ROOMC_DB") or "roomc.db"), show_default="roomc.db or $ROOMC_DB")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option("--watch", is_flag=True, help="The live page's view (participants, hold times, last events), "
              "redrawn as the store changes, until Ctrl-C.")
@click.option("--interval", default=1.0, show_default=True, type=click.FloatRange(min=0.05),
              help="With --watch: seconds between redraws when nothing changed (hold times still count).")
@click.option("--max-refreshes", type=click.IntRange(min=1), default=None, hidden=True)  # bounds tests
def rooms(name: str | None, db: str, fmt: str, watch: bool, interval: float, max_refreshes: int | None) -> None:
    """Live rooms with their counts, or one room's participants and recording (same JSON as GET /rooms)."""
    from roomc.runtime.storage import describe, is_url, open_store

    if not is_url(db) and not Path(db).exists():
        raise Failure(f"no store at {db} (run `roomc serve` first, or pass --db)")
    check_store(db)
    store = open_store(db)
    if watch:
        _watch(store, name, interval, max_refreshes)
        return
    with store:
        data = store.room(name) if name else {"rooms": store.live_rooms()}
    if data is None:
        raise Failure(f"no room named {name!r} in {describe(db)}", exit_code=1)
    if fmt == "json":
        click.echo(json.dumps(data, indent=2))
        return
    if name:
        click.echo(f"{data['name']}: started {data['started'] or '-'}, ended {data['ended'] or '-'}")
        for p in data["participants"]:
            click.echo(f"  {p['callId']:<24} {p['role'] or '-':<12} {'muted' if p['muted'] else '':<6} "
                       f"joined {p['joinedAt'] or '-'}  left {p['leftAt'] or '-'}")
        click.echo(f"  recording: {data['recordingUrl'] or '-'}")
        for key, label in (("handsRaised", "hand raised"), ("operatorRequested", "operator requested")):
            for flag in data.get(key, []):
                click.echo(f"  {label}: {flag['callId']} ({flag['role'] or '-'}, since {flag['at']})")
        return
    if not data["rooms"]:
        click.echo("no live rooms")
    for r in data["rooms"]:
        click.echo(f"{r['name']:<40} {r['participants']} joined, {r['reserved']} reserved"
                   f"{', started' if r['started'] else ''}")


def _watch(store, name: str | None, interval: float, max_refreshes: int | None) -> None:
    """Redraw the rooms view whenever the store changes (polled cheaply), or every `interval` seconds."""
    import time

    from roomc.runtime.ui import render_text, snapshot

    clear = sys.stdout.isatty()
    drawn = 0
    try:
        while max_refreshes is None or drawn < max_refreshes:
            view = snapshot(store)
            if name:
                view = {**view, "rooms": [r for r in view["rooms"] if r["name"] == name],
                        "ended": [r for r in view["ended"] if r["name"] == name]}
            if clear:
                click.clear()
            click.echo(render_text(view) + ("" if clear else "---"))
            drawn += 1
            if max_refreshes is not None and drawn >= max_refreshes:
                break
            marker, until = store.change_marker(), time.monotonic() + interval
            while time.monotonic() < until and store.change_marker() == marker:
                time.sleep(min(0.1, interval))
    except KeyboardInterrupt:
        pass
