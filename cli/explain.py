"""`roomc explain` and `roomc graph`: see what a caller gets, and a whole policy at a glance."""
from __future__ import annotations

import json
from typing import TYPE_CHECKING

import click

from .main import Failure, load_table, main

if TYPE_CHECKING:
    from roomc.runtime.render import CompiledRole


# Instants `--at` takes: wide enough for any opening hours worth previewing, narrow enough that every zone
# conversion stays inside what datetime can represent (years 1 and 9999 overflow with an offset).
EARLIEST, LATEST = 1970, 9998


def parse_instant(text: str) -> float:
    """An ISO 8601 instant with its offset as a Unix time; a naive time is refused (whose 09:00 would it be?)."""
    import datetime as dt

    try:
        instant = dt.datetime.fromisoformat(text.strip().replace("z", "Z"))
    except ValueError:
        raise Failure(f"--at takes an ISO 8601 time with an offset, e.g. 2026-12-25T09:00+03:00, not {text[:64]!r}") \
            from None
    if instant.tzinfo is None or instant.utcoffset() is None:
        raise Failure(f"--at {text[:64]!r} has no offset: add one (+03:00, Z) so it names one instant, "
                      "e.g. 2026-12-25T09:00+03:00")
    if not EARLIEST <= instant.year <= LATEST:
        raise Failure(f"--at {text[:64]!r} is outside the years {EARLIEST} to {LATEST}")
    return instant.timestamp()


def parse_pairs(values: tuple[str, ...], option: str) -> dict[str, str]:
    """`KEY=VALUE` options as a dict; anything else is a usage error naming the option."""
    out = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise Failure(f"{option} takes KEY=VALUE, not {item!r}")
        out[key] = value
    return out


@main.command()
@click.argument("paths", nargs=-1, type=click.Path())
@click.option("--route", "route_path", required=True, help="Route path, e.g. /conference/join.")
@click.option("--query", "queries", multiple=True, metavar="KEY=VALUE", help="Query-string value (repeatable).")
@click.option("--form", "forms", multiple=True, metavar="KEY=VALUE", help="Voice-callback field, e.g. From=+2547...")
@click.option("--participants", default=0, show_default=True, type=int,
              help="Seats already taken in the room's own pool, to see the answer when it is full.")
@click.option("--taken", "taken_pools", multiple=True, metavar="POOL=N",
              help="Seats already taken in a named pool (repeatable).")
@click.option("--present", "present_roles", multiple=True, metavar="ROLE=N",
              help="Callers of a role already in the room (default 0: seats held for hosts are still empty).")
@click.option("--secret", "secrets", multiple=True, metavar="NAME=VALUE", help="Value for a declared secret.")
@click.option("--at", "at_text", metavar="TIME",
              help="Answer as of this instant, ISO 8601 with an offset (2026-12-25T09:00+03:00); default: now.")
@click.option("--try", "try_number", default=1, show_default=True, type=click.IntRange(1, 1000),
              help="Which digit entry at its flow this is, for a flow with `tries` (3 of 3 shows the last try).")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="json prints only the response.")
def explain(paths: tuple[str, ...], route_path: str, queries: tuple[str, ...], forms: tuple[str, ...],
            participants: int, taken_pools: tuple[str, ...], present_roles: tuple[str, ...],
            secrets: tuple[str, ...], at_text: str | None, try_number: int, fmt: str) -> None:
    """Print the exact JSON the server would answer for a request, and (on stderr) why."""
    at = parse_instant(at_text) if at_text is not None else None
    table = load_table(paths)
    if route_path not in table["routes"]:
        raise Failure(f"no route {route_path!r}; routes: {', '.join(sorted(table['routes']))}")
    if table["routes"][route_path]["kind"] == "events":
        raise Failure(f"{route_path} is the status-events sink; it answers no actions")
    fields = parse_pairs(forms, "--form")
    if table["routes"][route_path]["kind"] == "keys":
        from roomc.runtime.keys import explain as explain_keys

        result, trace = explain_keys(table["routes"][route_path]["keys"], fields, parse_pairs(queries, "--query"))
        click.echo(json.dumps(result, indent=2, ensure_ascii=False))
        if fmt == "text":
            for line in trace:
                click.echo(f"# {line}", err=True)
        return
    # Imported here: the runtime pulls in Flask, which `roomc lint` should not pay for at start-up.
    from roomc.runtime.directory import DirectoryError, load
    from roomc.runtime.normalise import call_fields, has_digits
    from roomc.runtime.render import Responder

    try:
        directory = load(table)  # read as `roomc serve` reads it: the file, or the one its fileEnv names
    except DirectoryError as exc:
        raise Failure(str(exc)) from None
    responder = Responder(table, secrets=parse_pairs(secrets, "--secret"), directory=directory)

    taken_by_pool = {pool: _count(n, "--taken") for pool, n in parse_pairs(taken_pools, "--taken").items()}
    present = {role: _count(n, "--present") for role, n in parse_pairs(present_roles, "--present").items()}

    def seats(room: str, role: CompiledRole, limit: int) -> tuple[bool, str]:
        return explain_seat(role, limit, participants, taken_by_pool, present)

    answer = responder.answer(route_path, parse_pairs(queries, "--query"), call_fields(fields),
                              digits_sent=has_digits(fields), seats=seats, explain=True, at=at,
                              tries=lambda flow, digits: try_number)
    click.echo(json.dumps({"actions": answer.actions}, indent=2, ensure_ascii=False))
    if fmt == "text":
        if at_text is not None:
            click.echo(f"# as of {at_text.strip()} (--at)", err=True)
        for line in answer.trace:
            click.echo(f"# {line}", err=True)


def _count(text: str, option: str) -> int:
    if not text.isdigit():
        raise Failure(f"{option} takes a whole number of seats, not {text!r}")
    return int(text)


def explain_seat(role: CompiledRole, limit: int, participants: int, taken_by_pool: dict[str, int],
                 present: dict[str, int]) -> tuple[bool, str]:
    """The seat decision the store would take for `role`, in words: pool, seats taken, seats held for hosts."""
    from roomc.runtime.seats import admits, kept_back
    from roomc.runtime.store import EXTRA_POOL, MAIN_POOL

    pool = role.pool or MAIN_POOL
    name = {MAIN_POOL: "the room's own seats (maxParticipants)",
            EXTRA_POOL: "the uncounted roles' seats (extraSeats)"}.get(pool, f"pool '{pool}'")
    held = role.held or {}
    mine = {r: n for r, n in present.items() if r in held}
    taken = taken_by_pool.get(pool, participants if pool == MAIN_POOL else 0)
    taken = max(taken, sum(mine.values()))  # callers present are among those taken
    kept = kept_back(held, mine, role.id)
    holds = "; ".join(f"{n} held for '{r}' ({min(mine.get(r, 0), n)} filled)" for r, n in sorted(held.items()))
    detail = f"{name}: {taken} of {limit} taken" + (f", {holds}" if holds else "")
    if role.id in held and mine.get(role.id, 0) < held[role.id]:
        detail += f"; this caller fills a seat held for '{role.id}'"
    if admits(limit, taken, held, mine, role.id):
        return True, f"admitted: {detail}"
    sums = f": {taken} + {kept} held for others = {taken + kept} of {limit}" if kept else ""
    return False, f"full: {detail}{sums}, so the role's whenFull answers"


def _graph_edges(table: dict) -> tuple[list[tuple[str, str, str]], dict[str, str]]:
    nodes: dict[str, str] = {}
    edges: list[tuple[str, str, str]] = []

    def node(kind: str, name: str) -> str:
        key = f"{kind}_{''.join(c if c.isalnum() else '_' for c in name)}"
        nodes[key] = f"{kind} {name}"
        return key

    def scan(owner: str, actions: list, label: str = "") -> None:
        for item in actions:
            if "$join" in item:
                role = item["$join"].get("role")
                edges.append((owner, node("room", item["$join"]["room"]), label + (f"join as {role}" if role else "join")))
            url = item.get("redirect", {}).get("url") if "redirect" in item else None
            if isinstance(url, dict) and "$url" in url and "route" in url["$url"]:
                edges.append((owner, node("route", url["$url"]["route"]), label + "redirect"))

    for path, route in sorted(table["routes"].items()):
        src = node("route", path)
        if route["kind"] == "join":
            edges.append((src, node("room", route["room"]), "join"))
        elif route["kind"] == "flow":
            edges.append((src, node("flow", route["flow"]), "flow"))
    for fid, flow in sorted(table["flows"].items()):
        src = node("flow", fid)
        scan(src, flow["actions"])
        for branch in flow["branches"]:
            scan(src, branch["actions"], "digits: ")
        scan(src, flow["otherwise"], "otherwise: ")
        scan(src, flow.get("afterLastTry") or [], "after the last try: ")
    for rid, room in sorted(table["rooms"].items()):
        scan(node("room", rid), room["whenFull"], "when full: ")
        keys_routes = {r["actions"][-1].get("conference", {}).get("digitsCallbackUrl", {}).get("$url", {}).get("route")
                       for r in room["roles"] if r["actions"] and isinstance(
                           r["actions"][-1].get("conference", {}).get("digitsCallbackUrl"), dict)}
        for path in sorted(p for p in keys_routes if p):
            edges.append((node("room", rid), node("route", path), "in-room keys"))
    # Open hours: what keeps a schedule points at it; its closed actions lead on like any others.
    for path, route in sorted(table["routes"].items()):
        if route.get("hours"):
            edges.append((node("route", path), node("hours", route["hours"]), "closed"))
    for kind, section in (("room", "rooms"), ("flow", "flows")):
        for key, entry in sorted(table[section].items()):
            if entry.get("hours"):
                edges.append((node(kind, key), node("hours", entry["hours"]), "closed"))
    for sid, schedule in sorted((table.get("hours") or {}).items()):
        scan(node("hours", sid), schedule["closed"], "closed: ")
    return edges, nodes


@main.command()
@click.argument("paths", nargs=-1, type=click.Path())
@click.option("--format", "fmt", type=click.Choice(["mermaid", "dot"]), default="mermaid", show_default=True)
def graph(paths: tuple[str, ...], fmt: str) -> None:
    """Routes, rooms and flows with their joins and redirects, as a Mermaid or Graphviz graph."""
    edges, nodes = _graph_edges(load_table(paths))
    if fmt == "mermaid":
        lines = ["flowchart LR"]
        for key, label in sorted(nodes.items()):
            shape = ("([", "])") if label.startswith("route") else ("[[", "]]") if label.startswith("flow") else \
                ("{{", "}}") if label.startswith("hours") else ("[", "]")
            lines.append(f'  {key}{shape[0]}"{label}"{shape[1]}')
        lines += [f"  {a} -->|{label}| {b}" for a, b, label in edges]
    else:
        lines = ["digraph roomc {", "  rankdir=LR;"]
        for key, label in sorted(nodes.items()):
            dot_shape = "oval" if label.startswith("route") else "box3d" if label.startswith("flow") else \
                "hexagon" if label.startswith("hours") else "box"
            lines.append(f'  {key} [label="{label}", shape={dot_shape}];')
        lines += [f'  {a} -> {b} [label="{label}"];' for a, b, label in edges]
        lines.append("}")
    click.echo("\n".join(lines))
