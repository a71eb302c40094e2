"""The platform's open questions as switches: each reading of fact sheet §9 / issue 10 the local Sautikit can play.

One `Readings` value configures the engine. The same names are `roomc sautikit-local`
options (`--digits-to voice-callback-url`) and keys of a scenario's `platform:` section
(`digits_to: voice-callback-url`). The defaults are the readings the engine played before
the switches existed, so nothing changes unless a switch is set. docs/simulate.md says
which platform question each switch answers.
"""
from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any, Mapping

# Retry delays (seconds before each further attempt) of a status or call event delivery.
RETRY_SCHEDULES: dict[str, tuple[float, ...]] = {
    "immediate": (0.0, 0.0),  # 3 attempts back to back (the engine's first reading)
    # B-RETRY's nominal schedule: 8 attempts, immediate then 30 s, 2 min, 10 min, 30 min, 2 h, 6 h, 24 h.
    "documented": (30.0, 120.0, 600.0, 1800.0, 7200.0, 21600.0, 86400.0),
}

CHOICES: dict[str, tuple[Any, ...]] = {
    "digits_to": ("answering-url", "voice-callback-url"),
    "events_signed": (True, False),
    "event_shape": ("twilio", "thirdparty", "sautikit-envelope"),
    "start_on_enter_default": (True, False),
    "retry_resign": (True, False),
    "retry_schedule": tuple(RETRY_SCHEDULES),
    "redirect_own_server": ("follow", "refuse"),
    "call_events": ("not-emitted", "emitted"),
    "voice_body": ("form", "json"),
}

# The platform question each switch answers (CLI help; docs/simulate.md says more).
QUESTIONS: dict[str, str] = {
    "digits_to": "Where collected digits are POSTed: the URL that asked, or the call's voice_callback_url.",
    "events_signed": "Whether conference status events carry X-Sautikit-Signature.",
    "event_shape": "How a conference status event is spelled.",
    "start_on_enter_default": "What an unset startOnEnter means.",
    "retry_resign": "Whether a retried event is signed afresh or keeps its first `t`.",
    "retry_schedule": "When failed event deliveries are retried: back to back, or over hours (8 attempts).",
    "redirect_own_server": "Whether the PBX follows a redirect to a URL Sautikit does not own.",
    "call_events": "Whether call.answered/completed/failed reach the number's events_url.",
    "voice_body": "Whether voice callbacks are form-encoded or JSON.",
}


@dataclass(frozen=True)
class Readings:
    """How the local Sautikit answers each open platform question (defaults: its first readings)."""

    digits_to: str = "answering-url"          # where getDigits' Digits are POSTed
    events_signed: bool = True                # whether conference status events carry X-Sautikit-Signature
    event_shape: str = "twilio"               # the body of a conference status event
    start_on_enter_default: bool = True       # what an unset `startOnEnter` means
    retry_resign: bool = True                 # whether a retried delivery is signed afresh or keeps its first `t`
    retry_schedule: str = "immediate"         # when failed event deliveries are tried again
    redirect_own_server: str = "follow"       # whether `redirect` to a non-Sautikit URL is followed
    call_events: str = "not-emitted"          # whether call.answered/completed/failed reach the number's events_url
    voice_body: str = "form"                  # voice callbacks form-encoded or JSON

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any] | None, *, where: str = "platform") -> "Readings":
        """Readings from a scenario's `platform:` section or CLI options; a clear ValueError for a bad one."""
        if data is None:
            return cls()
        if not isinstance(data, Mapping):
            raise ValueError(f"{where}: must be a mapping of switch: value ({', '.join(CHOICES)})")
        chosen: dict[str, Any] = {}
        for key, value in data.items():
            name = str(key).replace("-", "_")
            if name not in CHOICES:
                raise ValueError(f"{where}: unknown switch {key!r}; the switches are {', '.join(CHOICES)}")
            chosen[name] = parse(name, value, where=where)
        return cls(**chosen)

    def with_options(self, **options: Any) -> "Readings":
        """These readings with the CLI options that were given (None = not given) applied."""
        given = {k: parse(k, v, where=f"--{k.replace('_', '-')}") for k, v in options.items() if v is not None}
        return replace(self, **given)

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def describe(self) -> str:
        """One line naming every reading in force, for start-up banners and reports."""
        return ", ".join(f"{k}={str(v).lower() if isinstance(v, bool) else v}" for k, v in self.as_dict().items())


def parse(name: str, value: Any, *, where: str = "platform") -> Any:
    """One switch's value, checked against its choices (booleans also as true/false text)."""
    allowed = CHOICES[name]
    if isinstance(allowed[0], bool):
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in ("true", "yes", "1"):
            return True
        if text in ("false", "no", "0"):
            return False
        raise ValueError(f"{where}: {name} must be true or false, not {value!r}")
    if value not in allowed:
        raise ValueError(f"{where}: {name} must be one of {', '.join(allowed)}, not {value!r}")
    return value
