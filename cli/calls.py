"""`roomc dial`, `roomc calls`, `roomc barge`, `roomc sautikit-local`, `roomc simulate`."""
from __future__ import annotations

import json
import os
import re
import uuid
from urllib.parse import urlencode

import click

from .explain import parse_pairs
from .main import Failure, load_table, main

E164 = re.compile(r"\+[1-9][0-9]{6,14}")


def _client():
    from roomc.sautikit.client import CallsClient, SautikitError

    try:
        return CallsClient()
    except SautikitError as exc:
        raise Failure(exc.message) from None


def _failure(exc) -> Failure:
    """A SautikitError as the user should read it: what was tried, and what to set."""
    from roomc.sautikit.client import DEFAULT_BASE_URL

    if exc.code == "network.unreachable":
        # Nothing refused anything: nothing answered. Say where we knocked and what to set.
        base = os.environ.get("SAUTIKIT_API_URL")
        where = f"SAUTIKIT_API_URL is {base}" if base else f"SAUTIKIT_API_URL is not set, so {DEFAULT_BASE_URL} was used"
        return Failure(f"cannot reach Sautikit ({exc.message}); {where}: set SAUTIKIT_API_URL to the platform's "
                       "address (e.g. http://127.0.0.1:8700 for `roomc sautikit-local`)", exit_code=1)
    if exc.status in (401, 403) and exc.code.startswith("api_key"):
        return Failure(f"Sautikit refused the API key ({exc.code}: {exc.message}); set SAUTIKIT_API_KEY to a "
                       "key of this workspace", exit_code=1)
    return Failure(f"Sautikit refused: {exc}", exit_code=1)


def _call(fn, *args, **kwargs):
    from roomc.sautikit.client import SautikitError

    try:
        return fn(*args, **kwargs)
    except SautikitError as exc:
        raise _failure(exc) from None


def _e164(value: str, option: str) -> str:
    if not E164.fullmatch(value):
        raise Failure(f"{option} {value!r} is not an E.164 number: write it with + and the country code, "
                      "e.g. +254711000001")
    return value


def room_tag(room: str) -> str:
    """The client_request_id prefix of a dialled call: it reaches the runtime's callbacks (never GET /v1/calls)."""
    return f"roomc.{room}."


def _db_path(db: str | None) -> str:
    return db or os.environ.get("ROOMC_DB") or "roomc.db"


def _dial(paths: tuple[str, ...], route: str, queries: tuple[str, ...], to: str, from_: str, public_url: str | None,
          db: str | None = None) -> dict:
    from roomc.runtime.storage import open_store

    _e164(to, "--to")
    _e164(from_, "--from")
    table = load_table(paths)
    spec = table["routes"].get(route)
    if spec is None or spec["kind"] != "join":
        raise Failure(f"{route!r} is not a join route of the policy")
    query = parse_pairs(queries, "--query")
    base = (public_url or os.environ.get("ROOMC_PUBLIC_URL") or table["server"].get("publicUrl") or "").rstrip("/")
    if not base:
        raise Failure("no public URL: set server.publicUrl, ROOMC_PUBLIC_URL or --public-url")
    # Rendered through the runtime's own Responder, with the call fields its callback will carry,
    # so the room (or the error) is exactly what the runtime will answer; nothing is reserved.
    secrets = {name: os.environ[name] for name in table.get("secrets", []) if name in os.environ}
    call = {"id": "", "from": from_, "to": to, "direction": "outbound", "digits": "", "clientRequestId": "",
            "raw": {}}
    from roomc.runtime.render import Responder  # lazily: Flask is slow to import for `roomc lint`

    answer = Responder(table, public_url=base, secrets=secrets).answer(
        route, query, call, digits_sent=False, seats=lambda room, role, limit: (True, ""), explain=True)
    if answer.failed:
        raise Failure(f"not dialled: the runtime would answer this call with the fallback ({answer.error}); "
                      "pass the --query values the route's room name needs")
    if answer.room is None:
        why = (answer.trace or ["no room"])[-1]
        raise Failure(f"not dialled: the runtime would not put this call in a room ({why})")
    room, role = answer.room, answer.role
    url = base + route + ("?" + urlencode(query) if query else "")
    client = _client()
    location = _db_path(db)
    # The store is opened (and its dialled-calls table read) before anyone's phone rings: a call
    # roomc cannot record is one `roomc calls --room` would never find.
    try:
        store = open_store(location)
        store.dialled_calls(room)
    except Exception as exc:  # any store's error: a missing folder, a refused connection, a wrong schema
        raise Failure(f"not dialled: cannot use the store {location} ({type(exc).__name__}: {exc}); "
                      "pass --db or set ROOMC_DB to the runtime's store", exit_code=1) from None
    with store:
        created = _call(client.create_call, from_=from_, to=to, voice_callback_url=url,
                        client_request_id=room_tag(room) + uuid.uuid4().hex[:8])
        if created.get("call_id"):
            try:
                store.record_dialled_call(room, created["call_id"], role=role,
                                          session_id=created.get("session_id"), to=to)
            except Exception as exc:
                raise Failure(f"call {created['call_id']} was placed (it is ringing {to}) but could not be "
                              f"recorded in {location} ({type(exc).__name__}: {exc}): `roomc calls --room {room}` "
                              f"will not list it; the calls API (`GET /v1/calls/{{id}}`, `roomc barge`) still finds it by that id",
                              exit_code=1) from None
    return created | {"room": room, "role": role, "url": url}


DB_OPTION = click.option("--db", default=None, help="The runtime's store, where dialled calls are recorded "
                         "(default ROOMC_DB, else roomc.db).")


@main.command()
@click.argument("paths", nargs=-1, type=click.Path())
@click.option("--route", required=True, help="The join route the participant is dialled into.")
@click.option("--query", "queries", multiple=True, metavar="KEY=VALUE")
@click.option("--to", "to", required=True, help="E.164 number to dial.")
@click.option("--from", "from_", required=True, help="Your Sautikit number (E.164).")
@click.option("--public-url", default=None, help="Base of the callback URL (default ROOMC_PUBLIC_URL or server.publicUrl).")
@DB_OPTION
def dial(paths, route, queries, to, from_, public_url, db) -> None:
    """Dial a participant into a room (POST /v1/calls) and record the call so `roomc calls --room` finds it."""
    created = _dial(paths, route, queries, to, from_, public_url, db)
    click.echo(json.dumps(created, indent=2))


@main.command()
@click.option("--room", required=True, help="Room name, e.g. meeting-99.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@DB_OPTION
def calls(room: str, fmt: str, db: str | None) -> None:
    """The calls `roomc dial` placed into one room, with their status and duration from the calls API."""
    from roomc.runtime.storage import open_store
    from roomc.sautikit.client import SautikitError

    with open_store(_db_path(db)) as store:
        dialled = store.dialled_calls(room)
    found: list[dict] = []
    client = _client() if dialled else None  # no key needed to learn that nothing was dialled
    for record in dialled:
        assert client is not None
        try:
            call = client.get_call(record["callId"])
        except SautikitError as exc:
            if exc.status != 404:
                raise _failure(exc) from None
            call = {"id": record["callId"], "remote_e164": record["to"], "status": "not found by the API"}
        found.append({**call, "role": record["role"], "dialled_at": record["dialledAt"]})
    if fmt == "json":
        click.echo(json.dumps({"room": room, "calls": found}, indent=2))
        return
    if not found:
        from roomc.runtime.storage import describe

        click.echo(f"no calls dialled into {room} (recorded in {describe(_db_path(db))})")
    for c in found:
        duration = c.get("duration_seconds")
        click.echo(f"{c['id']}  {c['remote_e164']:<14} {c['role'] or '-':<12} {c['status']:<10} "
                   f"{'-' if duration is None else duration:>6}s")


@main.command()
@click.argument("call_id")
@click.argument("paths", nargs=-1, type=click.Path())
@click.option("--route", required=True, help="Join route to re-dial into, with an unmuted role.")
@click.option("--query", "queries", multiple=True, metavar="KEY=VALUE",
              help="Query choosing the unmuted role, e.g. room=meeting-99 barge=1.")
@click.option("--public-url", default=None)
@DB_OPTION
def barge(call_id, paths, route, queries, public_url, db) -> None:
    """Barge in: end the supervisor's muted leg, then dial the same phone back unmuted (the platform page's way)."""
    client = _client()
    leg = _call(client.get_call, call_id)
    _call(client.hangup, call_id)
    created = _dial(paths, route, queries, leg["remote_e164"], leg["local_e164"], public_url, db)
    click.echo(json.dumps({"ended": call_id, "redialled": created}, indent=2))


def _switch_options(command):
    """One CLI option per platform reading (sautikit/readings.py), each defaulting to the engine's first reading."""
    from roomc.sautikit.readings import CHOICES, QUESTIONS, Readings

    defaults = Readings()
    for name in reversed(list(CHOICES)):
        choices = [str(c).lower() for c in CHOICES[name]]
        default = str(getattr(defaults, name)).lower()
        command = click.option(f"--{name.replace('_', '-')}", name, type=click.Choice(choices), default=None,
                               help=f"{QUESTIONS[name]} Default {default}.")(command)
    return command


@main.command("sautikit-local")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8700, show_default=True, type=int)
@click.option("--speed", default=1.0, show_default=True, type=float, help="Simulated seconds per real second.")
@click.option("--api-key", envvar="SAUTIKIT_API_KEY", default=None, help="Bearer key to require (env SAUTIKIT_API_KEY).")
@click.option("--secret-env", default="SAUTIKIT_VOICE_SECRET", show_default=True,
              help="Env var with the secret to sign webhooks with (unset: unsigned).")
@click.option("--rounding", type=click.Choice(["per-second", "per-minute"]), default="per-second", show_default=True)
@click.option("--events-url", default=None, help="The number's events_url (where call.* events go when emitted).")
@click.option("--voice-url", default=None, help="The number's voice_callback_url (calls placed without one use it).")
@_switch_options
def sautikit_local(host, port, speed, api_key, secret_env, rounding, events_url, voice_url, **switches) -> None:
    """A local Sautikit on loopback: the calls API, calls that play your actions, conference events."""
    from roomc.sautikit.local_server import serve_local
    from roomc.sautikit.readings import Readings

    try:
        readings = Readings().with_options(**switches)
    except ValueError as exc:
        raise Failure(str(exc)) from None
    secret = os.environ.get(secret_env)
    click.echo(f"roomc: local Sautikit on http://{host}:{port} (speed {speed}x"
               f"{', signing webhooks' if secret else ', webhooks unsigned'})", err=True)
    click.echo(f"roomc: platform readings: {readings.describe()}", err=True)
    serve_local(host, port, speed=speed, api_key=api_key, secret=secret.encode() if secret else None,
                rounding=rounding, readings=readings, events_url=events_url, voice_url=voice_url)


@main.command()
@click.argument("scenario", type=click.Path(exists=True, dir_okay=False))
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option("--realtime", is_flag=True, help="Run at the speed of real time (demos).")
@click.option("--rounding", type=click.Choice(["per-second", "per-minute"]), default=None,
              help="Billing rounding (default: the scenario's `billing`, else per-second).")
@click.option("--platform", "switches", multiple=True, metavar="SWITCH=VALUE",
              help="Override a platform reading of the scenario, e.g. digits_to=voice-callback-url.")
@click.option("--db", default=None, help="Store the runtime uses: a SQLite file or a postgresql:// URL of an empty "
                                         "database (default: a new SQLite file in a temporary folder).")
def simulate(scenario, fmt, realtime, rounding, switches, db) -> None:
    """Run a scenario through the local Sautikit and the real runtime: a timeline and a bill."""
    from roomc.runtime.storage import SchemaMismatch
    from roomc.sautikit.simulate import ScenarioError, render_text, run

    try:
        outcome = run(scenario, realtime=realtime, rounding=rounding,
                      platform=parse_pairs(switches, "--platform"), db=db)
    except (ScenarioError, SchemaMismatch) as exc:
        raise Failure(str(exc)) from None
    if fmt == "json":
        click.echo(json.dumps({**outcome.report, "rooms": outcome.rooms}, indent=2))
    else:
        click.echo(render_text(outcome), nl=False)
