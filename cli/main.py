"""The `roomc` command: thin wrappers that parse arguments and call the compiler and runtime."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from roomc.compiler import pipeline
from roomc.compiler.diagnostics import Severity
from roomc.compiler.emit import emit
from roomc.compiler.reporters import REPORTERS
from roomc.compiler.schemas import POLICY, schema_text

DEFAULT_PATHS = ("rooms",)


class Failure(click.ClickException):
    """A user-facing failure with its exit code: 1 for findings, 2 for usage or internal errors."""

    def __init__(self, message: str, exit_code: int = 2):
        super().__init__(message)
        self.exit_code = exit_code  # type: ignore[misc]  # click reads it per instance

    def show(self, file=None) -> None:  # noqa: D102 - click's hook
        click.echo(f"roomc: {self.format_message()}", err=True)


def _default_format() -> str:
    return "github" if os.environ.get("GITHUB_ACTIONS") == "true" else "text"


def _existing(paths: tuple[str, ...]) -> list[str]:
    chosen = list(paths or DEFAULT_PATHS)
    missing = [p for p in chosen if not Path(p).exists()]
    if missing:
        raise Failure(f"no such file or folder: {', '.join(missing)}")
    return chosen


def _report(diagnostics, fmt: str) -> None:
    output = REPORTERS[fmt](diagnostics)
    if output:
        click.echo(output, nl=False)


def _fails(diagnostics, fail_on: str) -> bool:
    threshold = Severity(fail_on).rank
    return any(d.severity.rank >= threshold for d in diagnostics)


@click.group()
@click.version_option(pipeline.VERSION, prog_name="roomc")
def main() -> None:
    """Declarative conference rooms for Sautikit: lint, compile, explain and serve room policies."""


@main.command()
@click.argument("paths", nargs=-1, type=click.Path())
@click.option("--format", "fmt", type=click.Choice(sorted(REPORTERS)), default=None,
              help="Output format (default text; github when GITHUB_ACTIONS=true).")
@click.option("--fail-on", type=click.Choice(["error", "warning"]), default="error", show_default=True,
              help="Lowest severity that makes the exit code 1.")
def lint(paths: tuple[str, ...], fmt: str | None, fail_on: str) -> None:
    """Check room policies (default rooms/) and report every problem at file:line:column."""
    compilation = pipeline.run(_existing(paths), until="verify")
    _report(compilation.diagnostics, fmt or _default_format())
    sys.exit(1 if _fails(compilation.diagnostics, fail_on) else 0)


@main.command("compile")
@click.argument("paths", nargs=-1, type=click.Path())
@click.option("-o", "--output", type=click.Path(dir_okay=False), default=None,
              help="Where to write the route table (default: standard output).")
@click.option("--emit", "stage", type=click.Choice(["table", "ir"]), default="table", show_default=True,
              help="`ir` prints the intermediate form instead, for debugging the compiler.")
def compile_(paths: tuple[str, ...], output: str | None, stage: str) -> None:
    """Compile room policies into the route table the runtime serves; refuses on lint errors."""
    compilation = pipeline.run(_existing(paths))
    errors = [d for d in compilation.diagnostics if d.severity is Severity.ERROR]
    if errors or compilation.table is None:
        click.echo(REPORTERS["text"](compilation.diagnostics), err=True, nl=False)
        raise Failure("not compiled: fix the errors above", exit_code=1)
    if stage == "ir":
        import pprint

        click.echo(pprint.pformat(compilation.policy, width=110, sort_dicts=False))
        return
    text = emit(compilation.table)
    if output:
        Path(output).parent.mkdir(parents=True, exist_ok=True)
        Path(output).write_text(text, encoding="utf-8")
        click.echo(f"wrote {output} ({len(compilation.table['routes'])} routes)", err=True)
    else:
        click.echo(text, nl=False)


@main.command()
def schema() -> None:
    """Print the room-language JSON Schema (for editors and other validators)."""
    click.echo(schema_text(POLICY), nl=False)


def load_table(paths: tuple[str, ...]) -> dict:
    """A route table from a compiled JSON file, or compiled now from YAML paths."""
    import json

    chosen = _existing(paths)
    if len(chosen) == 1 and chosen[0].endswith(".json"):
        from roomc.compiler.schemas import ROUTE_TABLE, validator

        try:
            table = json.loads(Path(chosen[0]).read_text(encoding="utf-8"))
        except ValueError as exc:
            raise Failure(f"{chosen[0]} is not JSON: {exc}") from None
        problems = list(validator(ROUTE_TABLE).iter_errors(table))
        if problems:
            first = problems[0]
            where = ".".join(map(str, first.absolute_path)) or "top level"
            raise Failure(f"{chosen[0]} is not a roomc route table ({where}: {first.message}); "
                          "compile it with `roomc compile`")
        return table
    compilation = pipeline.run(chosen)
    if compilation.table is None:
        click.echo(REPORTERS["text"](compilation.diagnostics), err=True, nl=False)
        raise Failure("not compiled: fix the errors above", exit_code=1)
    return compilation.table


def run() -> None:
    """Console entry point: an unexpected error is a one-line message and exit 2, never a traceback."""
    try:
        main(standalone_mode=True)
    except SystemExit:
        raise
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as exc:  # the last line of defence for users; tests call `main` directly
        click.echo(f"roomc: internal error: {type(exc).__name__}: {exc}", err=True)
        sys.exit(2)


if __name__ == "__main__":
    run()
