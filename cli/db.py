"""`roomc db status|upgrade|copy`: the store's schema version, upgrades, and moving between stores."""
from __future__ import annotations

import json
import os

import click

from .main import Failure, main

DB_OPTION = click.option("--db", default=lambda: (os.environ.get("ROOMC_DB") or "roomc.db"),
                         show_default="roomc.db or $ROOMC_DB",
                         help="A SQLite file or postgresql://USER@HOST:PORT/DB.")


@main.group()
def db() -> None:
    """The store's schema: see its version, create or upgrade it, copy one store into another."""


def _failure(location: str, exc: Exception) -> Failure:
    from roomc.runtime.storage import SchemaMismatch, describe

    if isinstance(exc, SchemaMismatch):
        return Failure(str(exc))
    from roomc.runtime.postgres import is_url, scrub

    message = str(exc).strip()
    return Failure(f"cannot use the store {describe(location)}: {scrub(message, location) if is_url(location) else message}")


@db.command()
@DB_OPTION
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
def status(db: str, fmt: str) -> None:
    """The store's schema version and whether this roomc can serve it (exit 1 if not); changes nothing."""
    from roomc.runtime.storage import status as store_status

    try:
        found = store_status(db)
    except Exception as exc:
        raise _failure(db, exc) from None
    if fmt == "json":
        click.echo(json.dumps(found, indent=2))
    else:
        version = "none" if found["version"] is None else found["version"]
        click.echo(f"{found['store']} {found['location']}: schema version {version}, this roomc uses "
                   f"{found['expected']} ({found['state']}): {found['advice']}")
    if found["state"] in ("older", "newer", "foreign"):
        raise SystemExit(1)


@db.command()
@DB_OPTION
def upgrade(db: str) -> None:
    """Create the schema in an empty store, or upgrade an older one to this roomc's version."""
    from roomc.runtime.storage import describe, upgrade as store_upgrade

    try:
        before, after = store_upgrade(db)
    except Exception as exc:
        raise _failure(db, exc) from None
    if before == after:
        click.echo(f"{describe(db)}: already at schema version {after}")
    elif before is None:
        click.echo(f"{describe(db)}: created at schema version {after}")
    else:
        click.echo(f"{describe(db)}: upgraded from schema version {before} to {after}")


@db.command()
@click.argument("source")
@click.argument("destination")
@click.option("--replace", is_flag=True,
              help="Delete what DESTINATION holds, in the same transaction as the copy (else a store with rows is refused).")
@click.option("--nul", type=click.Choice(["refuse", "replace"]), default="refuse", show_default=True,
              help="A NUL character, which PostgreSQL text cannot hold: refuse the copy naming its row, or store U+FFFD "
                   "as the PostgreSQL store does for live requests.")
def copy(source: str, destination: str, replace: bool, nul: str) -> None:
    """Copy every room, seat and event from SOURCE into an empty DESTINATION (e.g. roomc.db into PostgreSQL).

    One transaction: a copy that fails leaves DESTINATION as it was.
    """
    from roomc.runtime.storage import copy as store_copy, describe

    try:
        counts = store_copy(source, destination, replace=replace, nul=nul)
    except ValueError as exc:
        raise Failure(str(exc)) from None
    except Exception as exc:
        raise _failure(source, exc) from None
    click.echo(f"copied {describe(source)} to {describe(destination)}: "
               + ", ".join(f"{n} {table}" for table, n in counts.items()))
