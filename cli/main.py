"""The `roomc` command: thin wrappers that parse arguments and call the compiler and runtime."""
from __future__ import annotations

import gc
import os
import sys
from pathlib import Path

import click

from roomc.compiler import pipeline
from roomc.compiler.diagnostics import Diagnostic, Severity, sort_diagnostics
from roomc.compiler.emit import emit
from roomc.compiler.reporters import REPORTERS, Options
from roomc.compiler.schemas import POLICY, schema_text

from . import config as config_files

DEFAULT_PATHS = ("rooms",)
FORMATS = tuple(sorted(REPORTERS))
CONTEXT = {"help_option_names": ["-h", "--help"]}


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
    # A symbolic-link loop is not missing: the loader names it (RC000) like any file it refuses.
    missing = [p for p in chosen if not Path(p).exists() and not Path(p).is_symlink()]
    if missing:
        raise Failure(f"no such file or folder: {', '.join(missing)}")
    return chosen


def _one_policy(paths: tuple[str, ...], command: str) -> list[str]:
    """The one policy (a file or a folder) a command other than lint works on."""
    chosen = _existing(paths)
    if len(chosen) > 1:
        raise Failure(f"{command} takes one policy, a file or a folder, not {len(chosen)} paths: put the files "
                      "of one policy in one folder (`roomc lint` checks several policies at once)")
    return chosen


def use_color(choice: str, stream) -> bool:
    """`--color`: always/never as told; auto honours NO_COLOR, then FORCE_COLOR, then whether `stream` is a TTY."""
    if choice != "auto":
        return choice == "always"
    if os.environ.get("NO_COLOR"):
        return False
    if os.environ.get("FORCE_COLOR", "") not in ("", "0"):
        return True
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty()) and os.environ.get("TERM") != "dumb"


def _sources(compilation: pipeline.Compilation) -> dict[str, str]:
    return {source.path: source.text for source in compilation.sources}


def _fails(diagnostics, fail_on: str) -> bool:
    threshold = Severity(fail_on).rank
    return any(d.severity.rank >= threshold for d in diagnostics)


def _config(paths: list[str], path: str | None, skip: bool) -> config_files.Config:
    try:
        if skip:
            return config_files.Config()
        if path:
            found = config_files.load(Path(path), FORMATS)
            if found is None:
                raise config_files.ConfigError(f"{path}: no [tool.roomc] table")
            return found
        return config_files.find(paths, FORMATS)
    except config_files.ConfigError as exc:
        raise Failure(f"configuration: {exc}") from None


def _selectors(values: tuple[str, ...], option: str) -> tuple[str, ...]:
    from roomc.compiler.selection import parse_selectors

    try:
        return parse_selectors(values, option)
    except ValueError as exc:
        raise Failure(str(exc)) from None


def show_findings(diagnostics: list[Diagnostic], sources: dict[str, str], color: str = "auto") -> None:
    """Findings in the text format on standard error, as `compile` and the other commands show them."""
    if diagnostics:
        stream = sys.stderr
        colour = use_color(color, stream)
        click.echo(REPORTERS["text"](diagnostics, Options(sources=sources, color=colour)), err=True, nl=False,
                   color=colour)


@click.group(context_settings=CONTEXT)
@click.version_option(pipeline.VERSION, prog_name="roomc")
def main() -> None:
    """Declarative conference rooms for Sautikit: lint, compile, explain and serve room policies."""


@main.command()
@click.argument("paths", nargs=-1, type=click.Path())
@click.option("--format", "fmt", type=click.Choice(FORMATS), default=None,
              help="Output format (default text; github when GITHUB_ACTIONS=true). concise: one line per finding.")
@click.option("--fail-on", type=click.Choice(config_files.FAIL_ON), default=None,
              help="Lowest severity that makes the exit code 1.  [default: error]")
@click.option("--select", multiple=True, metavar="CODES",
              help="Report only these codes or prefixes, e.g. RC2,RC401 (repeatable; replaces the config's).")
@click.option("--ignore", multiple=True, metavar="CODES",
              help="Do not report these codes or prefixes (repeatable; added to the config's).")
@click.option("--color", type=click.Choice(["auto", "always", "never"]), default="auto", show_default=True,
              help="Colour the text format; auto: on a terminal, unless NO_COLOR is set (FORCE_COLOR forces it).")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None,
              help="Settings file to use instead of the nearest roomc.toml or pyproject.toml [tool.roomc].")
@click.option("--no-config", is_flag=True,
              help="Ignore configuration files (for CI on pull requests, which can change them).")
def lint(paths: tuple[str, ...], fmt: str | None, fail_on: str | None, select: tuple[str, ...],
         ignore: tuple[str, ...], color: str, config_path: str | None, no_config: bool) -> None:
    """Check room policies (default rooms/): each file or folder named is one policy, checked on its own."""
    chosen = _existing(paths)
    settings = _config(chosen, config_path, no_config)
    chosen_select = _selectors(select, "--select") or _selectors(settings.select, "select")
    chosen_ignore = _selectors(settings.ignore, "ignore") + _selectors(ignore, "--ignore")
    fmt = fmt or settings.format or _default_format()
    fail_on = fail_on or settings.fail_on or "error"
    # Sorting and showing thousands of findings allocates while every object of the runs is alive: full
    # collections wait until the command ends, as they do during a run.
    with pipeline.no_full_collections():
        found: list[Diagnostic] = []
        sources: dict[str, str] = {}
        unchecked: set[str] = set()
        for path in chosen:  # one policy per argument, as ruff and yamllint check each file on its own
            compilation = pipeline.run([path], until="verify")
            found += compilation.diagnostics
            sources.update(_sources(compilation))
            # Files never checked (unreadable, refused, unparsable) are reported whatever --ignore says.
            unchecked.update(s.path for s in compilation.sources if s.data is None)
            unchecked.update(d.span.file for d in compilation.diagnostics if d.code == "RC000")
        from roomc.compiler.selection import select_diagnostics

        shown = sort_diagnostics(select_diagnostics(found, chosen_select, chosen_ignore, frozenset(unchecked)))
        colour = fmt in ("text", "concise") and use_color(color, sys.stdout)
        output = REPORTERS[fmt](shown, Options(sources=sources, color=colour))
        if output:
            click.echo(output, nl=False, color=colour)
    sys.exit(1 if _fails(shown, fail_on) else 0)


@main.command("compile")
@click.argument("paths", nargs=-1, type=click.Path())
@click.option("-o", "--output", type=click.Path(dir_okay=False), default=None,
              help="Where to write the route table (default: standard output).")
@click.option("--emit", "stage", type=click.Choice(["table", "ir"]), default="table", show_default=True,
              help="`ir` prints the intermediate form instead, for debugging the compiler.")
@click.option("--color", type=click.Choice(["auto", "always", "never"]), default="auto", show_default=True,
              help="Colour the findings on standard error (as for lint).")
def compile_(paths: tuple[str, ...], output: str | None, stage: str, color: str) -> None:
    """Compile one policy into the route table the runtime serves; shows warnings, refuses on errors."""
    chosen = _one_policy(paths, "roomc compile")
    compilation = pipeline.run(chosen)
    settings = _config(chosen, None, False)
    select, ignore = _selectors(settings.select, "select"), _selectors(settings.ignore, "ignore")
    from roomc.compiler.selection import is_selected

    # The configuration's select/ignore hide warnings here as in lint; an error is always shown, since it blocks.
    errors = [d for d in compilation.diagnostics if d.severity is Severity.ERROR]
    show_findings([d for d in compilation.diagnostics if d in errors or is_selected(d.code, select, ignore)],
                  _sources(compilation), color)
    if errors or compilation.table is None:
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

    chosen = _one_policy(paths, f"roomc {click.get_current_context().info_name}")
    if chosen[0].endswith(".json"):
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
        show_findings([d for d in compilation.diagnostics if d.severity is Severity.ERROR], _sources(compilation))
        raise Failure("not compiled: fix the errors above", exit_code=1)
    return compilation.table


def run() -> None:
    """Console entry point: an unexpected error is a one-line message and exit 2, never a traceback."""
    try:
        main(standalone_mode=True)
    except SystemExit:
        # The interpreter's collection at exit would walk every object a run kept (about 0.3 s of linting a
        # 4,000-room file) and find no garbage: frozen objects are left to be freed without that walk.
        gc.freeze()
        raise
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as exc:  # the last line of defence for users; tests call `main` directly
        click.echo(f"roomc: internal error: {type(exc).__name__}: {exc}", err=True)
        sys.exit(2)


if __name__ == "__main__":
    run()
