"""`--select` / `--ignore`: which codes are reported, by code or prefix (`RC204`, `RC2`, `RC`).

Like ruff, the most specific selector wins: `--ignore RC2 --select RC204` reports RC204 and no
other RC2xx. A file that could not be read or parsed is reported whatever is selected: hiding
that would pass a file nothing was checked in.
"""
from __future__ import annotations

import difflib
from typing import Iterable

from .diagnostics import Diagnostic

ALL = ("RC",)


def known_codes() -> set[str]:
    """Every code roomc can report."""
    from .codes import CODES
    from .rules import RULES

    return set(CODES) | {rule.CODE for rule in RULES}


def parse_selectors(values: Iterable[str], option: str) -> tuple[str, ...]:
    """Comma- or space-separated codes and prefixes, upper-cased; raises ValueError naming an unknown one."""
    known = known_codes()
    out: list[str] = []
    for value in values:
        for item in value.replace(",", " ").split():
            selector = item.strip().upper()
            if not any(code.startswith(selector) for code in known):
                near = difflib.get_close_matches(selector, sorted(known), n=1)
                hint = f"; did you mean {near[0]}?" if near else "; codes look like RC204, prefixes like RC2"
                raise ValueError(f"{option}: unknown code or prefix '{item}'{hint}")
            out.append(selector)
    return tuple(dict.fromkeys(out))


def _longest(code: str, selectors: tuple[str, ...]) -> int:
    return max((len(s) for s in selectors if code.startswith(s)), default=-1)


def is_selected(code: str, select: tuple[str, ...], ignore: tuple[str, ...]) -> bool:
    """Whether `code` is reported: selected by some selector more specific than any ignore that matches it."""
    chosen = _longest(code, select or ALL)
    return chosen >= 0 and chosen > _longest(code, ignore)


def select_diagnostics(diagnostics: Iterable[Diagnostic], select: tuple[str, ...], ignore: tuple[str, ...],
                       unchecked: frozenset[str] = frozenset()) -> list[Diagnostic]:
    """The findings to report; those in `unchecked` files (never loaded) are always kept."""
    return [d for d in diagnostics
            if d.span.file in unchecked or is_selected(d.code, select, ignore)]
