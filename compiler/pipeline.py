"""The compiler's passes, in order. Each stage reads what the one before it left in `Compilation`."""
from __future__ import annotations

import contextlib
import functools
import gc
import os
import sys
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

from .build import build, merge
from .codegen import codegen
from .diagnostics import Diagnostic, Severity, Span, sort_diagnostics
from .emit import digest
from .ir import Policy
from .lint import apply_suppressions, lint
from .load import SourceFile, discover_files, load_file
from .validate import validate
from .verify import verify



@functools.cache
def version() -> str:
    """roomc's installed version, found as importlib.metadata finds it, without importing it.

    importlib.metadata (and the email, zipfile and csv modules it imports) cost about 50 ms of every run,
    a tenth of linting one file; the metadata directory is the first `roomc-*.dist-info` or `roomc.egg-info`
    along sys.path, and its Version header is all that is read.
    """
    for entry in sys.path:
        try:
            names = sorted(e.name for e in os.scandir(entry or ".") if e.name.startswith("roomc") and e.is_dir())
        except OSError:
            continue
        for name in names:
            if name == "roomc.egg-info" or (name.startswith("roomc-") and name.endswith(".dist-info")):
                found = _metadata_version(os.path.join(entry or ".", name))
                if found is not None:
                    return found
    from importlib import metadata  # an install this does not recognise: ask the library

    try:
        return metadata.version("roomc")
    except metadata.PackageNotFoundError:  # running from a source tree without an install
        return "0.0.0"


def _metadata_version(folder: str) -> str | None:
    for file in ("METADATA", "PKG-INFO"):
        try:
            with open(os.path.join(folder, file), encoding="utf-8") as handle:
                for line in handle:
                    if line.startswith("Version:"):
                        return line[len("Version:"):].strip()
                    if not line.strip():
                        break  # the headers end at the first blank line
        except OSError:
            continue
    return None


def __getattr__(name: str) -> Any:
    if name == "VERSION":  # read when asked (SARIF, --version, compile), not at import
        return version()
    raise AttributeError(name)


@dataclass
class Compilation:
    """What the passes know so far about one policy."""

    paths: list[str]
    sources: list[SourceFile] = field(default_factory=list)
    diagnostics: list[Diagnostic] = field(default_factory=list)
    policy: Policy | None = None
    table: dict | None = None

    @property
    def has_errors(self) -> bool:
        effective = apply_suppressions(self.diagnostics, self.sources, report_unused=False)
        return any(d.severity is Severity.ERROR for d in effective)


def _load(c: Compilation) -> Compilation:
    files, problems = discover_files(c.paths)
    c.diagnostics.extend(problems)
    c.sources = [_unless_directory(load_file(p)) for p in files]
    for source in c.sources:
        c.diagnostics.extend(source.diagnostics)
    return c


def _unless_directory(source: SourceFile) -> SourceFile:
    """A YAML meeting directory found among the policy files is one finding, and none of its text: every
    other finding would show a line of it, and its lines hold PINs (docs/language.md, "Meeting directory")."""
    data = source.data
    if isinstance(data, dict) and "meetings" in data and "roomc" not in data:
        return SourceFile(source.path, diagnostics=[Diagnostic(
            "RC230", Severity.ERROR, "this is a meeting directory (`meetings:`), not a policy: keep it outside the "
            "policy folder, where it is not read as a policy (or write it as CSV)", Span(source.path, 1, 1))])
    return source


def _validate(c: Compilation) -> Compilation:
    for source in c.sources:
        c.diagnostics.extend(validate(source))
    return c


def _build(c: Compilation) -> Compilation:
    # Meaning rules need a well-formed document; schema errors come first.
    if c.has_errors or not c.sources:
        return c
    data, spans, key_spans, found = merge(c.sources)
    c.diagnostics.extend(found)
    c.policy = build(data, spans, key_spans, tuple(s.path for s in c.sources))
    return c


def _lint(c: Compilation) -> Compilation:
    if c.policy is not None:
        c.diagnostics.extend(lint(c.policy))
    return c


def _codegen(c: Compilation) -> Compilation:
    if c.policy is None or c.has_errors:
        return c
    c.table = codegen(c.policy, version=version(), digest=digest([s.path for s in c.sources]),
                      sources=[s.path for s in c.sources])
    return c


def _verify(c: Compilation) -> Compilation:
    if c.table is not None and c.policy is not None:
        c.diagnostics.extend(verify(c.table, c.policy))
        if c.has_errors:
            c.table = None
    return c


PASSES: tuple[tuple[str, Callable[[Compilation], Compilation]], ...] = (
    ("load", _load),
    ("validate", _validate),
    ("build", _build),
    ("lint", _lint),
    ("codegen", _codegen),
    ("verify", _verify),
)
STAGES = tuple(name for name, _ in PASSES)


@contextlib.contextmanager
def no_full_collections() -> Iterator[None]:
    """Python's full garbage collections held off while the passes run, then allowed again as they were.

    A run allocates a few objects per YAML node (data, spans, IR, table) and keeps every one of them to the
    end, so each full collection walked them all and freed nothing: 0.6-1.1 s of the 4,000-room file's
    2.5 s. Young collections still run, so a cycle made and dropped during the run is still freed.
    """
    young, middle, full = gc.get_threshold()
    gc.set_threshold(young, middle, 1 << 30)
    try:
        yield
    finally:
        gc.set_threshold(young, middle, full)


def run(paths: list[str], until: str = "verify") -> Compilation:
    """Run the passes up to and including `until`; findings are suppressed and sorted at the end."""
    with no_full_collections():
        return _run(paths, until)


def _run(paths: list[str], until: str) -> Compilation:
    compilation = Compilation(paths=list(paths))
    for name, step in PASSES:
        try:
            compilation = step(compilation)
        except (Exception, RecursionError) as exc:
            # A pass that fails on hostile input must not take the other files' findings (or the
            # SARIF upload) down with it: the policy gets one located error and nothing more runs.
            return _failed(compilation, name, exc)
        if name == until:
            break
    compilation.diagnostics = sort_diagnostics(apply_suppressions(compilation.diagnostics, compilation.sources))
    return compilation


def _failed(compilation: Compilation, name: str, exc: BaseException) -> Compilation:
    """The compilation as far as it got, plus one RC000 at the start of each file, and no table."""
    detail = str(exc).splitlines()[0][:200] if str(exc) else ""
    message = (f"roomc could not check this policy ({name} pass: {type(exc).__name__}"
               f"{': ' + detail if detail else ''}); simplify it, and please report this input")
    files = [source.path for source in compilation.sources] or list(compilation.paths)
    compilation.diagnostics = sort_diagnostics(
        list(compilation.diagnostics) + [Diagnostic("RC000", Severity.ERROR, message, Span(path, 1, 1)) for path in files])
    compilation.table = None
    return compilation
