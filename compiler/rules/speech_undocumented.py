"""RC608 undocumented-speech: a voice or language Sautikit does not document.

Sautikit's say page names the voices `alice`, `man` and `woman` and the languages `en-US`,
`en-KE` and `sw-KE`, and publishes no full list; what the PBX does with another (its default
voice, or silence) is not documented. roomc passes it on unchanged; this finding makes sure it
was meant. Values that do not even look like a voice name or a BCP-47 tag are schema errors.

Failing::

    defaults:
      voice: polly.Joanna
      language: sw-TZ

Passing::

    defaults:
      voice: alice
      language: sw-KE
"""
from __future__ import annotations

from typing import Iterator

from ..diagnostics import Diagnostic, Severity
from ..ir import Policy
from ..templates import is_template
from ._sites import action_lists, walk_actions

CODE = "RC608"
NAME = "undocumented-speech"
SEVERITY = Severity.WARNING
VOICES = ("alice", "man", "woman")
LANGUAGES = ("en-US", "en-KE", "sw-KE")


def _problem(key: str, value: object) -> str | None:
    if not isinstance(value, str) or is_template(value):
        return None
    if key == "voice" and value not in VOICES:
        return f"voice '{value[:64]}' is not one Sautikit documents ({', '.join(VOICES)})"
    if key == "language" and value not in LANGUAGES:
        near = [lang for lang in LANGUAGES if lang.lower() == value.lower()]
        hint = f"; did you mean '{near[0]}'?" if near else ""
        return f"language '{value[:64]}' is not one Sautikit documents ({', '.join(LANGUAGES)}){hint}"
    return None


def check(policy: Policy) -> Iterator[Diagnostic]:
    for key in ("voice", "language"):
        written: list[tuple[tuple, object]] = [(("defaults", key), policy.defaults.get(key))]
        written += [(room.path + (key,), room.params.get(key)) for room in policy.rooms.values()]
        written += [(flow.path + (key,), flow.speech.get(key)) for flow in policy.flows.values()]
        for path, value in written:
            problem = _problem(key, value) if path in policy.spans else None
            if problem:
                yield Diagnostic(CODE, SEVERITY, problem, policy.span(path), path)
    for _, actions, _ in action_lists(policy):
        for action in walk_actions(actions):
            if action.verb != "say":
                continue
            for key in ("voice", "language"):
                # Only where the say itself writes it; defaults are reported once, where they are written.
                if action.path + (key,) in policy.spans:
                    problem = _problem(key, action.args.get(key))
                    if problem:
                        yield Diagnostic(CODE, SEVERITY, problem, policy.span(action.path + (key,)),
                                         action.path + (key,))
