"""Generate schema/roomc.schema.json, the room-language schema editors and `roomc lint` use.

Written as code so that every property gets its title, description and
markdownDescription without hand-copying; tests check the committed JSON
equals this script's output (`python tools/gen_schema.py --check`).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "schema" / "roomc.schema.json"
STATUS_EVENTS = ["start", "end", "join", "leave", "mute", "unmute"]
KEY_EFFECTS = ("raiseHand", "lowerHand", "callOperator", "cancelOperator")
ENV_NAME = {"type": "string", "pattern": "^[A-Z_][A-Z0-9_]*$"}
TEMPLATE_NOTE = " May contain `{{ ... }}` templates over the request (see docs/language.md#template-context)."


def p(title: str, description: str, schema: dict | None = None, **extra) -> dict:
    """One documented property."""
    out = {"title": title, "description": description, "markdownDescription": description}
    out.update(schema or {})
    out.update(extra)
    return out


def string(title: str, description: str, **extra) -> dict:
    return p(title, description, {"type": "string", "minLength": 1}, **extra)


def boolean(title: str, description: str, default: bool | None = None) -> dict:
    extra = {} if default is None else {"default": default}
    return p(title, description, {"type": "boolean"}, **extra)


def integer(title: str, description: str, minimum: int = 0, **extra) -> dict:
    return p(title, description, {"type": "integer", "minimum": minimum}, **extra)


def ref(name: str, title: str, description: str, **extra) -> dict:
    return p(title, description, {"$ref": f"#/$defs/{name}"}, **extra)


CONFERENCE_PARAMS = {
    "maxParticipants": integer(
        "Capacity", "The room's own seats: most callers of roles without a `pool` (and counting toward capacity) "
        "admitted at once, seats held for roles that start the room included. roomc counts seats itself and answers "
        "`whenFull` instead of letting the platform stall the caller, and emits this plus every pool's seats. "
        "0 leaves the cap to the PBX.", examples=[10]),
    "beep": boolean("Entry/exit beep", "Play a tone when this participant joins or leaves.", False),
    "muted": boolean("Muted (listen-only)", "The participant hears the room but cannot be heard, e.g. a supervisor.", False),
    "startOnEnter": boolean(
        "Start on enter", "The room starts when a participant with this set joins; others hear `waitUrl` until then. "
        "Always emitted; left unset it is false for a muted role and when another role of the room sets it true "
        "(they wait for the host), else true."),
    "endOnExit": boolean("End on exit", "When this participant leaves, the room ends and everyone is disconnected.", False),
    "waitUrl": string("Hold music URL", "Audio played to participants waiting for the room to start. Use https." + TEMPLATE_NOTE,
                      examples=["https://cdn.example.com/hold-music.mp3"]),
    "record": boolean("Record the room", "Record the whole room session; the recording URL arrives with the `end` status event.", False),
    "statusEventsCallbackUrl": string(
        "Status events URL", "Where the PBX posts conference status events. Left out, it points at this policy's "
        "`events` route under `server.publicUrl`." + TEMPLATE_NOTE),
    "statusEvents": p("Status events", "Which conference events to receive; a list here, a space-separated string on the wire.",
                      {"type": "array", "items": {"type": "string", "minLength": 1,
                                                  "anyOf": [{"enum": STATUS_EVENTS}, {"type": "string"}]},
                       "uniqueItems": True}, examples=[STATUS_EVENTS]),
    "flags": string("FreeSWITCH flags", "Raw `mod_conference` flags, forwarded verbatim."),
    "collectDigits": boolean("Collect digits in the room", "Collect DTMF while in the conference.", False),
    "finishOnKey": p("Finish key", "Key that submits digits early when `collectDigits` is on.",
                     {"type": "string", "pattern": "^[0-9#*]?$"}, default="#"),
    "numDigits": integer("Digits to collect", "Exact number of in-room digits to collect; 0 = unlimited.", default=0),
    "digitsCallbackUrl": string("Digits URL", "Receives the `DigitsCollected` event for in-room digits: the path of a "
                                "`keys` route of this policy (`/townhall/keys`). Left out with `collectDigits: true`, "
                                "it points at this policy's keys route." + TEMPLATE_NOTE),
}

# Sautikit documents voices `alice`, `man`, `woman` and BCP-47 languages (`en-US`, `en-KE`, `sw-KE`) and
# no full list: a policy default must at least look like a voice name and a language tag (docs/runtime.md).
VOICE_PATTERN = "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
LANGUAGE_PATTERN = "^[A-Za-z]{2,3}(-[A-Za-z]{4})?(-([A-Za-z]{2}|[0-9]{3}))?$"
SPEECH = {
    "voice": p("Default voice", "Voice of every `say` here that names none (Sautikit documents `alice`, `man`, "
               "`woman`; others draw RC608).", {"type": "string", "pattern": VOICE_PATTERN}, examples=["alice"]),
    "language": p("Default language", "BCP-47 language of every `say` here that names none (Sautikit documents "
                  "`en-US`, `en-KE`, `sw-KE`; others draw RC608).", {"type": "string", "pattern": LANGUAGE_PATTERN},
                  examples=["sw-KE"]),
}
HOURS_REF = string("Open hours", "A schedule under `hours`; outside it, callers hear that schedule's `closed` actions.",
                   examples=["office"])
ZONE_SCHEMA = {"type": "string", "minLength": 1, "maxLength": 64}
ZONE = string("Time zone", "IANA time zone, e.g. `Africa/Nairobi`.", examples=["Africa/Nairobi"], maxLength=64)

SAY_OBJECT = {"type": "object", "additionalProperties": False, "required": ["text"], "properties": {
    "text": string("Text", "What is spoken." + TEMPLATE_NOTE),
    "voice": string("Voice", "Voice name, e.g. `alice`, `man`, `woman`; PBX default when left out."),
    "language": string("Language", "BCP-47 tag such as `en-KE` or `sw-KE`.", examples=["en-KE", "sw-KE"]),
    "loop": integer("Loop", "Times to repeat; 0 = once."),
}}
PLAY_OBJECT = {"type": "object", "additionalProperties": False, "required": ["url"], "properties": {
    "url": string("Audio URL", "Audio file to play; must be on the workspace CDN allow-list." + TEMPLATE_NOTE),
    "loop": integer("Loop", "Times to repeat; 0 = once."),
}}
SAY = p("say", "Speak text: a string, or an object with `text`, `voice`, `language`, `loop`.",
        {"oneOf": [{"type": "string", "minLength": 1}, SAY_OBJECT]}, examples=["Welcome to the meeting."])
PLAY = p("play", "Play audio: a URL, or an object with `url` and `loop`.",
         {"oneOf": [{"type": "string", "minLength": 1}, PLAY_OBJECT]})
EMPTY = {"oneOf": [{"type": "null"}, {"type": "object", "additionalProperties": False, "maxProperties": 0}]}

VERBS = {
    "say": SAY,
    "play": PLAY,
    "getDigits": p("getDigits", "Collect keypad digits; Sautikit posts them back as `Digits` to the same URL, "
                   "where the flow's `onDigits` branches choose what happens next.", {
        "type": "object", "additionalProperties": False, "properties": {
            "timeout": integer("Timeout", "Seconds to wait after the prompt."),
            "numDigits": integer("Digits", "Exact count to collect; 0 = unlimited."),
            "finishOnKey": p("Finish key", "Key that ends input.", {"type": "string", "pattern": "^[0-9#*]?$"}, default="#"),
            "nested": p("Prompt", "What is played while waiting: only `say` and `play`.", {
                "type": "array", "items": {"type": "object", "minProperties": 1, "maxProperties": 1,
                                           "additionalProperties": False,
                                           "properties": {"say": SAY, "play": PLAY}}}),
        }}),
    "dial": p("dial", "Connect the caller to a number or SIP URI.", {
        "type": "object", "additionalProperties": False, "minProperties": 1, "properties": {
            "number": string("Number", "E.164 number to dial." + TEMPLATE_NOTE, examples=["+254733000001"]),
            "numbers": p("Numbers", "Several E.164 numbers dialled at once (first to answer wins).",
                         {"type": "array", "minItems": 1, "items": {"type": "string", "minLength": 1}}),
            "sip": string("SIP URI", "SIP destination; must be on the allow-list." + TEMPLATE_NOTE),
            "callerId": string("Caller ID", "Number shown to the callee; must be one you own."),
            "timeout": integer("Ring timeout", "Seconds to ring."),
            "record": p("Record", "Record the dialled leg.", {"enum": ["record-from-answer", "record-from-ringing"]}),
        }}),
    "record": p("record", "Record the caller (voicemail style).", {
        "type": "object", "additionalProperties": False, "properties": {
            "action": string("Action URL", "Where recording metadata is posted." + TEMPLATE_NOTE),
            "method": p("Method", "HTTP method for `action`.", {"enum": ["GET", "POST"]}, default="POST"),
            "timeout": integer("Silence timeout", "Seconds of silence that end the recording."),
            "maxLength": integer("Max length", "Longest recording in seconds."),
            "finishOnKey": p("Finish key", "Key that ends the recording.", {"type": "string", "pattern": "^[0-9#*]?$"}),
            "transcribe": boolean("Transcribe", "Ask for a transcription.", False),
            "transcribeCallback": string("Transcription URL", "Where the transcription is posted." + TEMPLATE_NOTE),
        }}),
    "redirect": p("redirect", "Continue the call at another route of this policy (`/lobby`) or an absolute URL; "
                  "an object adds `query` values and `method`.", {"oneOf": [
                      {"type": "string", "minLength": 1},
                      # Exactly one target: codegen needs a route or a URL to build the redirect from.
                      {"type": "object", "additionalProperties": False, "minProperties": 1,
                       "oneOf": [{"required": ["route"]}, {"required": ["url"]}], "properties": {
                          "route": string("Route", "A route path of this policy, e.g. `/pin`."),
                          "url": string("URL", "An absolute https URL." + TEMPLATE_NOTE),
                          "query": p("Query", "Query values added to the URL; values may be templates.",
                                     {"type": "object", "additionalProperties": {"type": ["string", "integer"]}}),
                          "method": p("Method", "HTTP method Sautikit uses.", {"enum": ["GET", "POST"]}, default="POST"),
                      }}]}),
    "reject": p("reject", "Refuse the call without answering.", {"oneOf": [
        {"type": "null"}, {"type": "object", "additionalProperties": False, "properties": {
            "reason": p("Reason", "What the caller hears as the signal.", {"enum": ["rejected", "busy"]}, default="rejected")}}]}),
    "hangup": p("hangup", "End the call. Write `hangup: {}`.", EMPTY),
    "join": p("join", "Put the caller into a room of this policy, choosing the role by its `when` conditions, "
              "or a fixed `role`. Capacity is checked exactly as on a join route.", {"oneOf": [
                  {"type": "string", "minLength": 1},
                  {"type": "object", "additionalProperties": False, "required": ["room"], "properties": {
                      "room": string("Room", "Room id under `rooms`."),
                      "role": string("Role", "Role id of that room; skips role selection."),
                  }}]}),
}

ACTION = {"type": "object", "minProperties": 1, "maxProperties": 1, "additionalProperties": False,
          "properties": VERBS, "description": "One verb: exactly one key."}

ROLE = {"type": "object", "additionalProperties": False, "properties": {
    "when": string("Condition", "A Jinja expression over the template context; the first role whose condition holds wins. "
                   "No `when` = the default role.", examples=["query.host == '1'", "call.from in ['+254700000009']"]),
    "say": ref("say", "Greeting", "Spoken before the caller joins." + TEMPLATE_NOTE),
    "actions": ref("actions", "Actions before joining", "Extra actions run before the greeting and the conference."),
    "countsTowardCapacity": boolean("Counts toward capacity", "Whether this role takes a seat under `maxParticipants`. "
                                    "Supervisors usually do not; prefer a `pool` of their own.", True),
    "pool": p("Seat pool", "A pool of the room's `pools`: this role's callers take its seats instead of the room's "
              "`maxParticipants`.", {"type": "string", "pattern": "^[A-Za-z][A-Za-z0-9_-]*$"}, examples=["speakers"]),
    "reservedSeats": integer("Reserved seats", "Seats of this role's pool held back from every other role until this "
                             "role's callers fill them. Default: 1 for a role that starts the room while others wait "
                             "for it (`startOnEnter: true`), else 0; 0 opts out.", examples=[1]),
    "whenFull": ref("actions", "When full", "Answered instead of a conference when this role's pool is full; wins "
                    "over the pool's and the room's."),
    **{k: v for k, v in CONFERENCE_PARAMS.items() if k not in ("maxParticipants",)},
}}

POOL = {"type": "object", "additionalProperties": False, "required": ["seats"], "properties": {
    "seats": integer("Seats", "Most callers of this pool's roles admitted at once.", 1, examples=[2]),
    "whenFull": ref("actions", "When full", "Answered instead of a conference when this pool is full; wins over the "
                    "room's."),
}}

ROOM = {"type": "object", "additionalProperties": False, "required": ["name", "roles"], "properties": {
    "name": string("Room name", "The Sautikit room name: a template over the request, so each meeting gets its own room. "
                   "Rendered names must match `^[A-Za-z0-9._-]{1,64}$`.", examples=["meeting-{{ query.room }}"]),
    "whenFull": ref("actions", "When full", "Answered instead of a conference when every counted seat is taken "
                    "(the platform would otherwise stall the caller silently)."),
    "roles": p("Roles", "Who the caller is, tried in order: the first whose `when` holds wins.", {
        "type": "object", "minProperties": 1,
        "propertyNames": {"pattern": "^[A-Za-z][A-Za-z0-9_-]*$"},
        "additionalProperties": {"$ref": "#/$defs/role"}}),
    "pools": p("Seat pools", "Seats of their own for the roles that name them (`pool:`), counted apart from "
               "`maxParticipants`; the emitted `maxParticipants` covers every pool.", {
                   "type": "object", "propertyNames": {"pattern": "^[A-Za-z][A-Za-z0-9_-]*$"},
                   "additionalProperties": {"$ref": "#/$defs/pool"}}),
    "extraSeats": integer(
        "Seats for uncounted roles (deprecated)", "Deprecated (RC242): use a pool. Seats beyond `maxParticipants` for "
        "roles with `countsTowardCapacity: false` and no `pool`. Default: 2 when such a role exists, else 0."),
    **CONFERENCE_PARAMS,
    "hours": HOURS_REF,
    **SPEECH,
}}

BRANCH = {"type": "object", "additionalProperties": False, "required": ["actions"], "properties": {
    "digits": p("Digits", "Matches when the collected digits equal this exactly.", {"type": ["string", "integer"]}),
    "match": string("Pattern", "Matches when the digits fully match this regular expression.", examples=["^[0-9]{6}$"]),
    "when": string("Condition", "A Jinja expression over the template context.", examples=["call.digits == secret.HOST_PIN"]),
    "directory": p("Directory", "Matches against the policy's meeting directory: `meeting` when the digits are a "
                   "meeting number in it, `hostPin` / `participantPin` when they are that meeting's host or participant "
                   "PIN (the meeting number comes from `meeting`). PINs are compared as salted hashes.",
                   {"enum": ["meeting", "hostPin", "participantPin"]}),
    "meeting": string("Meeting number", "For `directory: hostPin` / `participantPin`: the meeting whose PIN is "
                      "checked. Default `{{ query.meeting }}`." + TEMPLATE_NOTE, examples=["{{ query.meeting }}"]),
    "actions": ref("actions", "Actions", "What happens when this branch matches."),
}}

FLOW = {"type": "object", "additionalProperties": False, "required": ["actions"], "properties": {
    "actions": ref("actions", "Actions", "Answered when the request carries no `Digits`: usually a `getDigits` prompt."),
    "onDigits": p("On digits", "Tried in order when Sautikit posts back `Digits`; the first matching branch answers.",
                  {"type": "array", "items": {"$ref": "#/$defs/branch"}}),
    "otherwise": ref("actions", "Otherwise", "Answered when digits arrive and no branch matches."),
    "tries": integer("Tries", "How many times a call may key digits at this flow. Counted per call in the store "
                     "(whichever URL the digits reach); past the last, `afterLastTry` answers and no branch is tried.",
                     1, maximum=20, examples=[3]),
    "afterLastTry": ref("actions", "After the last try", "Answered when the last try matches no branch, and to any "
                        "digits after it. Default: a spoken goodbye and hangup."),
    "hours": HOURS_REF,
    **SPEECH,
}}

SCHEDULE = {"type": "object", "additionalProperties": False, "properties": {
    "zone": ZONE,
    "weekly": p("Weekly hours", "Open ranges per day on the zone's wall clock: keys `mon`..`sun`, `mon-fri`, "
                "`sat,sun`, `daily`, `weekdays`, `weekends`; values `\"08:00-17:00\"`, a list of them, or `closed`. "
                "Left out: open every day (only closures close).", {
                    "type": "object", "maxProperties": 64, "additionalProperties": {"oneOf": [
                        {"type": "string", "minLength": 1},
                        {"type": "array", "maxItems": 48, "items": {"type": "string", "minLength": 1}}]}}),
    "closures": p("Closures", "Dated closures (holidays): `2026-12-25`, `{date: 2026-12-25, name: Christmas}` or "
                  "`{from: 2026-12-24, to: 2026-12-26, name: ...}` (both days included).", {
                      # anyOf, string first: the three shapes exclude each other, and a long list of dates
                      # is checked one type test per item instead of three schemas each.
                      "type": "array", "maxItems": 1000, "items": {"anyOf": [
                          {"type": "string", "minLength": 1},
                          {"type": "object", "additionalProperties": False, "required": ["date"], "properties": {
                              "date": string("Date", "YYYY-MM-DD"), "name": string("Name", "Said in `roomc explain`.")}},
                          {"type": "object", "additionalProperties": False, "required": ["from", "to"], "properties": {
                              "from": string("First day", "YYYY-MM-DD"), "to": string("Last day", "YYYY-MM-DD, included"),
                              "name": string("Name", "Said in `roomc explain`.")}}]}}),
    "closed": ref("actions", "When closed", "Answered outside the hours. Default: a short spoken message and hangup."),
}}

ROUTE = {"oneOf": [
    {"const": "events", "description": "The conference status-events sink."},
    {"type": "object", "additionalProperties": False, "required": ["join"], "properties": {
        "join": string("Join room", "Room id to join."),
        "role": string("Fixed role", "Role id; skips role selection."),
        "hours": HOURS_REF}},
    {"type": "object", "additionalProperties": False, "required": ["flow"], "properties": {
        "flow": string("Flow", "Flow id to run."),
        "hours": HOURS_REF}},
    {"type": "object", "additionalProperties": False, "required": ["keys"], "properties": {
        "keys": p("In-room keys", "Receives the in-room digits (`digitsCallbackUrl`) of rooms with `collectDigits`, "
                  "and maps each key (or key sequence) to an effect stored for the room: `raiseHand`, `lowerHand`, "
                  "`callOperator`, `cancelOperator` (see docs/language.md#in-room-keys).", {
                      "type": "object", "minProperties": 1, "propertyNames": {"pattern": "^[0-9#*]{1,8}$"},
                      "additionalProperties": {"enum": list(KEY_EFFECTS)}},
                  examples=[{"1": "raiseHand", "2": "lowerHand", "0": "callOperator"}])}},
]}

SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": "https://roomc.dev/schema/roomc.schema.json",
    "title": "roomc room policy",
    "description": "Conference rooms, lobbies and routes for Sautikit voice webhooks. See docs/language.md.",
    "type": "object",
    "additionalProperties": False,
    "required": ["roomc"],
    "properties": {
        "roomc": p("Format version", "The room-language version; always 1 for now.", {"const": 1}),
        "server": p("Server", "Settings for the webhook server.", {
            "type": "object", "additionalProperties": False, "properties": {
                "publicUrl": p("Public URL", "Base of every callback URL roomc emits; env `ROOMC_PUBLIC_URL` overrides.",
                               {"type": "string", "pattern": "^https?://[^\\s/]+(/[^\\s]*)?$"},
                               examples=["https://rooms.example.com"]),
                "signatureSecretEnv": p("Signature secret variable", "Env var holding the Sautikit signing secret; "
                                        "with it set, unsigned requests are refused.", ENV_NAME,
                                        examples=["SAUTIKIT_VOICE_SECRET"]),
                "reservationTtl": integer("Seat reservation TTL", "Seconds a seat stays reserved for a caller whose "
                                          "`join` event has not arrived.", 1, default=60),
                "eventsSignature": p("Events signature", "Whether the events route requires signatures: `required` "
                                     "(unsigned events get 403), `optional` (default: a signature present must verify, an "
                                     "unsigned event must carry its room's token from the events URL), `off`. Env "
                                     "`ROOMC_EVENTS_SIGNATURE` overrides.", {"enum": ["required", "optional", "off"]},
                                     default="optional"),
                "fallback": ref("actions", "Fallback actions", "Answered when anything fails while answering a voice "
                                "route; default: a short apology and hangup."),
            }}),
        "directory": p("Meeting directory", "Meeting numbers with their own host and participant PINs, from a CSV or "
                       "YAML file (docs/language.md#meeting-directory); loaded at start-up, never in the route table.", {
            "type": "object", "additionalProperties": False, "minProperties": 1, "properties": {
                "file": string("File", "Path of the directory file, relative to this policy file.",
                               examples=["meetings.csv"]),
                "fileEnv": p("File variable", "Env var naming the directory file at run time; when set it wins "
                             "over `file`.", ENV_NAME, examples=["ROOMC_MEETINGS"]),
            }}),
        "secrets": p("Secrets", "Env vars templates may read as `secret.NAME`; never spoken, never emitted.",
                     {"type": "array", "items": ENV_NAME, "uniqueItems": True}, examples=[["HOST_PIN"]]),
        "defaults": p("Defaults", "Conference parameters merged into every room (a room's own values win).", {
            "type": "object", "additionalProperties": False, "properties": {
                **CONFERENCE_PARAMS,
                "zone": p("Time zone", "The policy's IANA time zone: `now` in templates is on its clock, and a "
                          "schedule under `hours` without its own `zone` uses it.", ZONE_SCHEMA,
                          examples=["Africa/Nairobi"]),
                **SPEECH}}),
        "hours": p("Open hours", "Named weekly schedules with closures; rooms, flows and routes name one with "
                   "`hours:`.", {"type": "object", "propertyNames": {"pattern": "^[A-Za-z][A-Za-z0-9_-]*$"},
                                 "additionalProperties": {"$ref": "#/$defs/schedule"}}),
        "rooms": p("Rooms", "Conference rooms by id.", {
            "type": "object", "propertyNames": {"pattern": "^[A-Za-z][A-Za-z0-9_-]*$"},
            "additionalProperties": {"$ref": "#/$defs/room"}}),
        "flows": p("Flows", "IVR steps by id: actions, then branches on the digits Sautikit sends back.", {
            "type": "object", "propertyNames": {"pattern": "^[A-Za-z][A-Za-z0-9_-]*$"},
            "additionalProperties": {"$ref": "#/$defs/flow"}}),
        "routes": p("Routes", "The webhook paths Sautikit calls: `{join: room}`, `{flow: id}`, `{keys: {...}}` or `events`.", {
            "type": "object", "propertyNames": {"pattern": "^/[A-Za-z0-9._~/-]*$"},
            "additionalProperties": {"$ref": "#/$defs/route"}}),
    },
    "$defs": {
        "say": SAY,
        "actions": {"type": "array", "items": {"$ref": "#/$defs/action"}},
        "action": ACTION,
        "role": ROLE,
        "room": ROOM,
        "pool": POOL,
        "branch": BRANCH,
        "flow": FLOW,
        "route": ROUTE,
        "schedule": SCHEDULE,
    },
}


def render() -> str:
    return json.dumps(SCHEMA, indent=2, sort_keys=False) + "\n"


if __name__ == "__main__":
    text = render()
    if "--check" in sys.argv:
        sys.exit(0 if OUT.read_text() == text else "schema/roomc.schema.json is stale: run python tools/gen_schema.py")
    OUT.write_text(text)
