"""`roomc dial`, `roomc calls`, `roomc barge`, `roomc sautikit-local`, `roomc simulate`."""
from __future__ import annotations

import json
import os
import uuid
from urllib.parse import urlencode

import click

from .explain import parse_pairs
from .main import Failure, load_table, main


def _client():
    from roomc.sautikit.client import CallsClient, SautikitError

    try:
        return CallsClient()
    except SautikitError as exc:
        raise Failure(exc.message) from None


def _call(fn, *args, **kwargs):
    from roomc.sautikit.client import SautikitError

    try:
        return fn(*args, **kwargs)
    except SautikitError as exc:
        raise Failure(f"Sautikit refused: {exc}", exit_code=1) from None


def room_tag(room: str) -> str:
    """The client_request_id prefix that finds a meeting's calls again (no spaces, commas, braces or quotes)."""
    return f"roomc.{room}."


def _dial(paths: tuple[str, ...], route: str, queries: tuple[str, ...], to: str, from_: str, public_url: str | None,
          label: str | None = None) -> dict:
    table = load_table(paths)
    spec = table["routes"].get(route)
    if spec is None or spec["kind"] != "join":
        raise Failure(f"{route!r} is not a join route of the policy")
    query = parse_pairs(queries, "--query")
    base = (public_url or os.environ.get("ROOMC_PUBLIC_URL") or table["server"].get("publicUrl") or "").rstrip("/")
    if not base:
        raise Failure("no public URL: set server.publicUrl, ROOMC_PUBLIC_URL or --public-url")
    # The room name, rendered the way the runtime will, so the call can be found by room later.
    try:
        from roomc.runtime.render import Responder  # lazily: Flask is slow to import for `roomc lint`

        room = Responder(table).rooms[spec["room"]].name({"query": query, "call": {}, "secret": {}})
    except Exception:
        room = spec["room"]
    url = base + route + ("?" + urlencode(query) if query else "")
    client = _client()
    return _call(client.create_call, from_=from_, to=to, voice_callback_url=url,
                 client_request_id=room_tag(room) + uuid.uuid4().hex[:8]) | {"room": room, "url": url}


@main.command()
@click.argument("paths", nargs=-1, type=click.Path())
@click.option("--route", required=True, help="The join route the participant is dialled into.")
@click.option("--query", "queries", multiple=True, metavar="KEY=VALUE")
@click.option("--to", "to", required=True, help="E.164 number to dial.")
@click.option("--from", "from_", required=True, help="Your Sautikit number (E.164).")
@click.option("--public-url", default=None, help="Base of the callback URL (default ROOMC_PUBLIC_URL or server.publicUrl).")
def dial(paths, route, queries, to, from_, public_url) -> None:
    """Dial a participant into a room (POST /v1/calls), tagged so `roomc calls --room` finds the call."""
    created = _dial(paths, route, queries, to, from_, public_url)
    click.echo(json.dumps(created, indent=2))


@main.command()
@click.option("--room", required=True, help="Room name, e.g. meeting-99.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
def calls(room: str, fmt: str) -> None:
    """The calls of one meeting (those placed by `roomc dial`), with status and duration."""
    client = _client()
    found = [c for c in _call(lambda: list(client.list_calls()))
             if str(c.get("client_request_id") or "").startswith(room_tag(room))]
    if fmt == "json":
        click.echo(json.dumps({"room": room, "calls": found}, indent=2))
        return
    if not found:
        click.echo(f"no calls for {room}")
    for c in found:
        click.echo(f"{c['id']}  {c['remote_e164']:<14} {c['status']:<10} {c.get('duration_seconds', 0):>6}s")


@main.command()
@click.argument("call_id")
@click.argument("paths", nargs=-1, type=click.Path())
@click.option("--route", required=True, help="Join route to re-dial into, with an unmuted role.")
@click.option("--query", "queries", multiple=True, metavar="KEY=VALUE",
              help="Query choosing the unmuted role, e.g. room=meeting-99 barge=1.")
@click.option("--public-url", default=None)
def barge(call_id, paths, route, queries, public_url) -> None:
    """Barge in: end the supervisor's muted leg, then dial the same phone back unmuted (the platform page's way)."""
    client = _client()
    leg = _call(client.get_call, call_id)
    _call(client.hangup, call_id)
    created = _dial(paths, route, queries, leg["remote_e164"], leg["local_e164"], public_url)
    click.echo(json.dumps({"ended": call_id, "redialled": created}, indent=2))


@main.command("sautikit-local")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8700, show_default=True, type=int)
@click.option("--speed", default=1.0, show_default=True, type=float, help="Simulated seconds per real second.")
@click.option("--api-key", envvar="SAUTIKIT_API_KEY", default=None, help="Bearer key to require (env SAUTIKIT_API_KEY).")
@click.option("--secret-env", default="SAUTIKIT_VOICE_SECRET", show_default=True,
              help="Env var with the secret to sign webhooks with (unset: unsigned).")
@click.option("--rounding", type=click.Choice(["per-second", "per-minute"]), default="per-second", show_default=True)
def sautikit_local(host, port, speed, api_key, secret_env, rounding) -> None:
    """A local Sautikit on loopback: the calls API, calls that play your actions, conference events."""
    from roomc.sautikit.local_server import serve_local

    secret = os.environ.get(secret_env)
    click.echo(f"roomc: local Sautikit on http://{host}:{port} (speed {speed}x"
               f"{', signing webhooks' if secret else ', webhooks unsigned'})", err=True)
    serve_local(host, port, speed=speed, api_key=api_key, secret=secret.encode() if secret else None,
                rounding=rounding)


@main.command()
@click.argument("scenario", type=click.Path(exists=True, dir_okay=False))
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option("--realtime", is_flag=True, help="Run at the speed of real time (demos).")
@click.option("--rounding", type=click.Choice(["per-second", "per-minute"]), default=None,
              help="Billing rounding (default: the scenario's `billing`, else per-second).")
def simulate(scenario, fmt, realtime, rounding) -> None:
    """Run a scenario through the local Sautikit and the real runtime: a timeline and a bill."""
    from roomc.sautikit.simulate import ScenarioError, render_text, run

    try:
        outcome = run(scenario, realtime=realtime, rounding=rounding)
    except ScenarioError as exc:
        raise Failure(str(exc)) from None
    if fmt == "json":
        click.echo(json.dumps({**outcome.report, "rooms": outcome.rooms}, indent=2))
    else:
        click.echo(render_text(outcome), nl=False)
