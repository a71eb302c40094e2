"""Lint settings from a configuration file: `roomc.toml`, `.roomc.toml` or `[tool.roomc]` in pyproject.toml.

Found by walking up from the linted paths; in one folder `.roomc.toml` wins over `roomc.toml`,
which wins over `pyproject.toml` (as ruff does). Command-line options win over the file.
"""
from __future__ import annotations

import difflib
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

NAMES = (".roomc.toml", "roomc.toml", "pyproject.toml")
KEYS = ("select", "ignore", "fail-on", "format")
FAIL_ON = ("error", "warning")
MAX_BYTES = 1 << 20  # a configuration file is a few lines; anything bigger is refused, not read


class ConfigError(Exception):
    """A configuration file that cannot be used; the message names the file."""


@dataclass(frozen=True)
class Config:
    """The settings a configuration file gives (None or empty where it is silent)."""

    path: str | None = None
    select: tuple[str, ...] = ()
    ignore: tuple[str, ...] = ()
    fail_on: str | None = None
    format: str | None = None


def _read(path: Path) -> str:
    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):
            raise ConfigError(f"{path}: not a regular file")
        if info.st_size > MAX_BYTES:
            raise ConfigError(f"{path}: larger than {MAX_BYTES:,} bytes; refused")
        with path.open("rb") as handle:
            return handle.read(MAX_BYTES + 1).decode("utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8") from None


def _parse(path: Path, text: str) -> dict[str, Any] | None:
    """The roomc table of a file, or None for a pyproject.toml without one."""
    if path.name == "pyproject.toml" and "roomc" not in text:
        return None  # not ours: skip without parsing (it may be anything)
    import tomllib

    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    if path.name != "pyproject.toml":
        return data
    if "tool" in data and not isinstance(data["tool"], dict):
        raise ConfigError(f"{path}: 'tool' must be a table ([tool.roomc] holds roomc's settings)")
    table = data.get("tool", {}).get("roomc")
    if table is not None and not isinstance(table, dict):
        raise ConfigError(f"{path}: [tool.roomc] must be a table")
    return table


def _strings(path: Path, key: str, value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{path}: '{key}' must be a list of codes or prefixes, e.g. [\"RC2\", \"RC401\"]")
    if any(not v.replace(",", " ").split() for v in value) or (key == "select" and not value):
        # An empty selection would quietly select everything (or an empty entry nothing): say so instead.
        raise ConfigError(f"{path}: '{key}' has an empty entry; name codes or prefixes, e.g. [\"RC2\", \"RC401\"], "
                          "or leave the key out")
    return tuple(value)


def _choice(path: Path, key: str, value: Any, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise ConfigError(f"{path}: '{key}' must be one of {', '.join(allowed)}, not {value!r}")
    return str(value)


def load(path: Path, formats: tuple[str, ...]) -> Config | None:
    """The settings in one file (None when it is a pyproject.toml without [tool.roomc])."""
    table = _parse(path, _read(path))
    if table is None:
        return None
    where = "[tool.roomc]" if path.name == "pyproject.toml" else "the file"
    for key in table:
        if key not in KEYS:
            near = difflib.get_close_matches(key, KEYS, n=1)
            hint = f"; did you mean '{near[0]}'?" if near else f"; known keys: {', '.join(KEYS)}"
            raise ConfigError(f"{path}: unknown key '{key}' in {where}{hint}")
    return Config(
        path=str(path),
        select=_strings(path, "select", table["select"]) if "select" in table else (),
        ignore=_strings(path, "ignore", table["ignore"]) if "ignore" in table else (),
        fail_on=_choice(path, "fail-on", table["fail-on"], FAIL_ON) if "fail-on" in table else None,
        format=_choice(path, "format", table["format"], formats) if "format" in table else None,
    )


def find(paths: list[str], formats: tuple[str, ...]) -> Config:
    """The nearest configuration above the linted paths (their common folder), or the defaults."""
    absolute = [os.path.abspath(p) for p in paths] or [os.getcwd()]
    folder = Path(os.path.commonpath(absolute))
    if not folder.is_dir():
        folder = folder.parent
    for candidate in (folder, *folder.parents):
        for name in NAMES:
            path = candidate / name
            if os.path.lexists(path):
                found = load(path, formats)
                if found is not None:
                    return found
    return Config()
