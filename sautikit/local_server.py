"""`roomc sautikit-local`: the calls API on loopback, backed by the engine in scaled real time.

It answers as the official SDK (sautikit-node v0.5.0, src/calls.ts) expects: `Call`
objects with every field of the SDK's type, list filters and cursor paging, stats,
recordings, supervision, and every error as `{"error": {"code", "message", "request_id"}}`.
Local-only extensions, for rehearsals: `local_digits` (keys the callee presses at each
getDigits), `local_keys` (keys pressed in a room, posted to its digitsCallbackUrl), `local_hangup_after` (simulated seconds after answer), `local_label` on
POST /v1/calls (a create dials at most MAX_DESTINATIONS numbers; `local_hangup_after` is at most
MAX_HANGUP_AFTER simulated seconds); POST /v1/local/inbound for a call *to* your number; GET /v1/local/report
for the timeline and the bill; GET /recordings/<file> serves recordings.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import math
import os
import re
import threading
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import urlsplit

from flask import Flask, Response, jsonify, request
from werkzeug.exceptions import HTTPException

from roomc.compiler.schemas import actions_problems

from .engine import LIVE, Leg, Platform, ScaledClock
from .readings import Readings

E164 = re.compile(r"\+[1-9][0-9]{6,14}")
STATUSES = ("ringing", "answered", "completed", "failed", "no_answer", "busy", "canceled")
MISSED = ("no_answer", "busy", "canceled")
RESERVED_PREFIXES = ("mcp:", "broadcast:")
UNSAFE_IN_CALLBACKS = re.compile(r"[\s,{}\[\]\"']")  # the PBX refuses these in a clientRequestId
RECORDING_TTL = 7 * 24 * 3600  # simulated seconds a recording stays downloadable; then 410
RESPONSE_LOG = "ROOMC_SAUTIKIT_RESPONSE_LOG"  # tests: append every response here to check it against the SDK's types


class Invalid(Exception):
    """A request the platform refuses: status, code and message for the error envelope."""

    def __init__(self, message: str, code: str = "calls.invalid_request", status: int = 400):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def _error(status: int, code: str, message: str) -> tuple[Response, int]:
    return jsonify({"error": {"code": code, "message": message, "request_id": uuid.uuid4().hex[:12]}}), status


def report(platform: Platform) -> dict:
    """The timeline, rooms and bill so far, in the shape `roomc simulate --format json` prints."""
    calls = sorted(platform.legs.values(), key=lambda leg: (leg.created_at, leg.label))
    rounding = platform.rounding
    legs: list[dict[str, Any]] = []
    for leg in calls:
        legs.append({"label": leg.label, "callId": leg.id, "direction": leg.direction, "status": leg.status,
                     "meeting": leg.meeting, "durationSeconds": leg.duration, "heldSeconds": round(leg.held_seconds),
                     "costMinor": leg.cost_minor(rounding)})
        # Supervisor legs are billed on their own (SDK 0.5.0), next to the call they supervised.
        for number, supervisor in enumerate(leg.supervisors, 1):
            legs.append({"label": f"{leg.label} supervisor {number}", "callId": leg.id, "direction": "supervisor",
                         "status": "ended" if supervisor.ended_at is not None else "live", "meeting": leg.meeting,
                         "durationSeconds": supervisor.duration, "heldSeconds": 0,
                         "costMinor": supervisor.cost_minor(rounding), "supervisorType": supervisor.kind})
    meetings: dict[str, int] = {}
    for row in legs:
        # A caller turned away by the policy never reached a room; their cost is listed on its own.
        key = row["meeting"] or "(no room)"
        meetings[key] = meetings.get(key, 0) + row["costMinor"]
    return {
        "timeline": [{"at": round(e.at, 3), "who": e.who, "what": e.what, "room": e.room} for e in platform.timeline],
        "legs": legs,
        "meetingsMinor": meetings,
        "sessions": sessions(platform),
        "totalMinor": sum(row["costMinor"] for row in legs),
        "currency": "KES",
        "rounding": rounding,
    }


def _e164(value: Any, name: str) -> str:
    if not isinstance(value, str) or not E164.fullmatch(value):
        raise Invalid(f"{name} must be an E.164 number as a string, e.g. \"+254711000001\"; got {value!r}")
    return value


def _url(value: Any, name: str, schemes: tuple[str, ...] = ("http", "https")) -> str:
    parts = urlsplit(value) if isinstance(value, str) else None
    if parts is None or parts.scheme not in schemes or not parts.netloc:
        raise Invalid(f"{name} must be an absolute {'/'.join(schemes)} URL; got {value!r}")
    return value


def _actions(value: Any, name: str) -> list[dict]:
    if not isinstance(value, list) or actions_problems({"actions": value}):
        raise Invalid(f"{name} must be a list of voice actions Sautikit accepts")
    return value


# Bounds of the local server's own (the platform documents none): one create rings at most this many
# numbers, a simulated call lasts at most a week, and times lie between 1970 and the year 9999.
MAX_DESTINATIONS = 100
MAX_HANGUP_AFTER = 7 * 86400.0
LATEST_MOMENT = 253402300799.0


def _seconds(value: Any, name: str) -> float | None:
    """A local `hangup_after`: None, or a finite number of seconds from 0 to MAX_HANGUP_AFTER."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= MAX_HANGUP_AFTER:
        raise Invalid(f"{name} must be a number of seconds from 0 to {MAX_HANGUP_AFTER:.0f}; got {value!r}")
    return float(value)


def parse_create(data: Any) -> dict:
    """A POST /v1/calls body checked as the platform checks it; `Invalid` names the first problem."""
    if not isinstance(data, dict):
        raise Invalid("the body must be a JSON object")
    out: dict[str, Any] = {"from": _e164(data.get("from"), "from")}
    to = data.get("to")
    to = [to] if isinstance(to, str) else to
    if not isinstance(to, list) or not to:
        raise Invalid("to must be an E.164 number or a non-empty list of them")
    if len(to) > MAX_DESTINATIONS:
        raise Invalid(f"to takes at most {MAX_DESTINATIONS} numbers in one create; got {len(to)}")
    out["to"] = [_e164(number, f"to[{i}]") for i, number in enumerate(to)]
    caller_ids = {data[k] for k in ("caller_id", "callerId") if data.get(k) is not None}
    if len(caller_ids) > 1:
        raise Invalid("caller_id and callerId disagree")
    out["caller_id"] = _e164(caller_ids.pop(), "caller_id") if caller_ids else None
    control = data.get("control")
    if control is not None and control != "mcp":
        raise Invalid(f"control must be \"mcp\" when set; got {control!r}")
    url = data.get("voice_callback_url")
    if url is not None and control == "mcp":
        raise Invalid("voice_callback_url and control: \"mcp\" are mutually exclusive")
    out["voice_callback_url"] = _url(url, "voice_callback_url") if url is not None else None
    out["control"] = control
    if data.get("hold_audio_url") is not None:
        _url(data["hold_audio_url"], "hold_audio_url")
    timeout = data.get("control_timeout_ms", 10000)
    if isinstance(timeout, bool) or not isinstance(timeout, int) or not 0 < timeout <= 600000:
        raise Invalid(f"control_timeout_ms must be a whole number of milliseconds; got {timeout!r}")
    out["control_timeout_ms"] = timeout
    for key in ("opening_actions", "fallback_actions"):
        out[key] = _actions(data[key], key) if data.get(key) is not None else None
    label = data.get("client_request_id")
    if label is not None:
        if not isinstance(label, str) or not label or len(label) > 5000:
            raise Invalid("client_request_id must be a string of 1 to 5000 characters")
        if any(ord(c) < 32 or ord(c) == 127 for c in label):
            raise Invalid("client_request_id must not contain control characters")
        if label.startswith(RESERVED_PREFIXES):
            raise Invalid("client_request_id must not begin with mcp: or broadcast: (reserved for internal routing)")
    out["client_request_id"] = label
    digits = data.get("local_digits")
    if digits is not None and (not isinstance(digits, list) or not all(isinstance(d, str) for d in digits)):
        raise Invalid("local_digits must be a list of strings")
    out["local_digits"] = digits
    after = _seconds(data.get("local_hangup_after"), "local_hangup_after")
    out["local_hangup_after"], out["local_label"] = after, str(data.get("local_label") or "")
    out["local_keys"] = _room_keys(data.get("local_keys"), "local_keys")
    return out


def _room_keys(value: object, name: str) -> list[tuple[float, str]]:
    """Local in-room key presses, `[{after: seconds in the room, digits: "1"}]`: at most 100, each 1-32 of 0-9 # *."""
    if value is None:
        return []
    if not isinstance(value, list) or len(value) > 100:
        raise Invalid(f"{name} must be a list of at most 100 {{after, digits}} objects")
    out = []
    for press in value:
        digits = press.get("digits") if isinstance(press, dict) else None
        if not isinstance(digits, str) or not re.fullmatch(r"[0-9#*]{1,32}", digits):
            raise Invalid(f"{name}: each press needs digits, 1 to 32 of 0-9 # *")
        after = _seconds(press.get("after"), f"{name}.after")
        if after is None:
            raise Invalid(f"{name}: each press needs after, seconds in the room")
        out.append((after, digits))
    return out


def _moment(value: str, name: str) -> float:
    """RFC 3339 or unix seconds, as the list and stats windows take them: a moment from 1970 to 9999."""
    problem = f"{name} must be an RFC 3339 time or unix seconds from 1970 to 9999; got {value!r}"
    try:
        seconds = float(value)
    except ValueError:
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise Invalid(problem) from None
        if moment.tzinfo is None:
            raise Invalid(f"{name} must carry a time zone (e.g. Z); got {value!r}") from None
        seconds = moment.timestamp()
    if not (math.isfinite(seconds) and 0 <= seconds <= LATEST_MOMENT):
        raise Invalid(problem)
    return seconds


def _whole(value: str | None, name: str, default: int, low: int, high: int | None = None) -> int:
    if value is None:
        return default
    if not re.fullmatch(r"[0-9]{1,9}", value) or int(value) < low or (high is not None and int(value) > high):
        span = f"from {low} to {high}" if high is not None else f"of at least {low}"
        code = "calls.invalid_cursor" if name == "cursor" else "calls.invalid_request"
        raise Invalid(f"{name} must be a whole number {span}; got {value!r}", code)
    return int(value)


def sessions(platform: Platform) -> list[dict]:
    """Each room session as the platform played it, read off the timeline: when it started and ended, who joined."""
    out: list[dict] = []
    current: dict[str, dict] = {}
    for entry in platform.timeline:
        name = entry.room
        if name is None:
            continue
        session = current.get(name)
        if session is None:
            session = current[name] = {"room": name, "startedAt": None, "endedAt": None, "joined": 0,
                                       "recordingUrl": None}
            out.append(session)
        if entry.what.startswith("joins "):
            session["joined"] += 1
        elif entry.what == f"starts {name}":
            session["startedAt"] = round(entry.at, 3)
        elif entry.what.startswith(f"{name} ends"):
            session["endedAt"] = round(entry.at, 3)
            if "; recording at " in entry.what:
                session["recordingUrl"] = entry.what.split("; recording at ", 1)[1]
            del current[name]  # the next join opens the room's next session
    for session in out:
        session["statusEventsAcknowledged"] = platform.acknowledged.get(session["room"], 0)
        room = platform.rooms.get(session["room"])
        session["statusEventsUrl"] = room.status_url if room else None
    return out


def create_local_app(platform: Platform, *, api_key: str | None) -> Flask:
    """The calls API of fact sheet §6 and the SDK's src/calls.ts over `platform`."""
    app = Flask(__name__, root_path=__file__.rsplit("/", 1)[0])
    replays: dict[str, tuple[str, dict, int]] = {}  # Idempotency-Key -> (body digest, response, status)
    supervision_replays: dict[tuple[str, str], dict] = {}
    log_path = os.environ.get(RESPONSE_LOG)
    log_lock = threading.Lock()

    def wall() -> float:
        return platform.epoch + platform.clock.now()

    def found(call_id: str) -> Leg:
        leg = platform.find(call_id)
        if leg is None:
            raise Invalid(f"no call {call_id}", "calls.not_found", 404)
        return leg

    def call_object(leg: Leg) -> dict:
        return leg.as_call(platform.rounding, platform.epoch)

    @app.errorhandler(Invalid)
    def invalid(error: Invalid):
        return _error(error.status, error.code, error.message)

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException):
        code = {404: "route.not_found", 405: "route.method_not_allowed"}.get(error.code or 500, "request.invalid")
        return _error(error.code or 500, code, f"{request.method} {request.path}: {error.description}")

    @app.errorhandler(Exception)
    def internal(error: Exception):
        return _error(500, "internal_error", f"the local Sautikit failed: {type(error).__name__}")

    @app.after_request
    def log_response(response: Response) -> Response:
        if log_path:
            body = None
            if response.mimetype == "application/json":
                body = json.loads(response.get_data() or b"null")
            line = json.dumps({"method": request.method, "path": request.path, "status": response.status_code,
                               "mimetype": response.mimetype, "location": response.headers.get("Location"),
                               "body": body})
            with log_lock, open(log_path, "a", encoding="utf-8") as log:
                log.write(line + "\n")
        return response

    @app.before_request
    def authorise():
        if request.path.startswith("/recordings/"):
            return None
        given = request.headers.get("Authorization", "")
        if api_key and not hmac.compare_digest(given.encode(), f"Bearer {api_key}".encode()):
            return _error(401, "api_key.invalid", "missing or wrong bearer key")
        return None

    @app.post("/v1/calls")
    def create_call():
        key = request.headers.get("Idempotency-Key")
        raw = request.get_data()
        digest = hashlib.sha256(raw).hexdigest()
        with platform.lock:  # one create per key, however many arrive at once
            if key and key in replays:
                seen, body, status = replays[key]
                if seen != digest:
                    raise Invalid("this Idempotency-Key was used with another body", "idempotency.conflict", 409)
                return jsonify(body), status
            try:
                data = json.loads(raw) if raw else None
            except ValueError:
                raise Invalid("the body is not JSON") from None
            spec = parse_create(data)
            label = spec["client_request_id"]
            # A label the PBX refuses still comes back in this response, but never rides the call's callbacks.
            riding = label if label and not UNSAFE_IN_CALLBACKS.search(label) else None
            legs = [platform.place_call(local=spec["from"], remote=number, url=spec["voice_callback_url"],
                                        client_request_id=riding, label=spec["local_label"],
                                        digits=spec["local_digits"], hangup_after=spec["local_hangup_after"],
                                        caller_id=spec["caller_id"], control=spec["control"],
                                        opening_actions=spec["opening_actions"],
                                        fallback_actions=spec["fallback_actions"],
                                        control_timeout_ms=spec["control_timeout_ms"], room_keys=spec["local_keys"])
                    for number in spec["to"]]
            body = {"call_id": legs[0].id, "session_id": legs[0].session_id, "status": "ringing"}
            if label is not None:
                body["client_request_id"] = label
            if key:
                replays[key] = (digest, body, 201)
        return jsonify(body), 201

    @app.post("/v1/local/inbound")
    def inbound():
        data = request.get_json(silent=True)
        if not isinstance(data, dict) or not data.get("from") or not data.get("to") or not data.get("url"):
            raise Invalid("from, to and url are required")
        digits = data.get("digits")
        if digits is not None and (not isinstance(digits, list) or not all(isinstance(d, str) for d in digits)):
            raise Invalid("digits must be a list of strings")
        with platform.lock:
            leg = platform.place_call(local=_e164(data["to"], "to"), remote=_e164(data["from"], "from"),
                                      url=_url(data["url"], "url"), direction="inbound",
                                      label=str(data.get("label") or ""), digits=digits,
                                      hangup_after=_seconds(data.get("hangup_after"), "hangup_after"),
                                      room_keys=_room_keys(data.get("keys"), "keys"))
        return jsonify({"call_id": leg.id, "session_id": leg.session_id, "status": "ringing"}), 201

    @app.get("/v1/calls/stats")
    def stats():
        now = datetime.fromtimestamp(wall(), timezone.utc)
        since = request.args.get("since", "today")
        if since == "today":
            start = now.replace(hour=0, minute=0, second=0, microsecond=0)
        elif since == "7d":
            start = now - timedelta(days=7)
        elif since == "month":
            start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        else:
            start = datetime.fromtimestamp(_moment(since, "since"), timezone.utc)
        bucket = request.args.get("bucket")
        if bucket not in (None, "hour", "day"):
            raise Invalid(f"bucket must be hour or day; got {bucket!r}")
        with platform.lock:
            # Ended calls only, so that completed + missed + failed is the total in every bucket.
            legs = [leg for leg in platform.legs.values()
                    if leg.status not in LIVE and platform.epoch + leg.created_at >= start.timestamp()]
            totals = summarise(legs, platform.rounding)
        out = {"total": totals["total"], "failed": totals["failed"],
               "minutes_total": round(sum(leg.duration for leg in legs) / 60, 2),
               "spend_minor": totals["spend_minor"], "currency": "KES"}
        if bucket:
            step = timedelta(hours=1) if bucket == "hour" else timedelta(days=1)
            slot = start.replace(minute=0, second=0, microsecond=0)
            if bucket == "day":
                slot = slot.replace(hour=0)
            series = []
            while slot <= now and len(series) < 24 * 62:
                edge = (slot.timestamp(), (slot + step).timestamp())
                inside = [leg for leg in legs if edge[0] <= platform.epoch + leg.created_at < edge[1]]
                series.append({"start": slot.isoformat().replace("+00:00", "Z"), **summarise(inside, platform.rounding)})
                slot += step
            out["series"] = series
        return jsonify(out)

    @app.get("/v1/calls/<call_id>")
    def get_call(call_id: str):
        with platform.lock:
            return jsonify({"call": call_object(found(call_id))})

    @app.get("/v1/calls")
    def list_calls():
        args = request.args
        limit = _whole(args.get("limit"), "limit", 25, 1, 100)
        start = _whole(args.get("cursor") or None, "cursor", 0, 0)
        statuses = [s for s in (args.get("status") or "").split(",") if s]
        unknown = [s for s in statuses if s not in STATUSES]
        if unknown:
            raise Invalid(f"status takes a comma list of {', '.join(STATUSES)}; got {', '.join(unknown)}")
        direction = args.get("direction")
        if direction not in (None, "inbound", "outbound"):
            raise Invalid(f"direction must be inbound or outbound; got {direction!r}")
        after = _moment(args["from"], "from") if args.get("from") else None
        before = _moment(args["to"], "to") if args.get("to") else None
        with platform.lock:
            calls = sorted(platform.legs.values(), key=lambda leg: (leg.created_at, leg.id), reverse=True)
            if statuses:
                calls = [c for c in calls if c.status in statuses]
            if direction:
                calls = [c for c in calls if c.direction == direction]
            if args.get("q"):
                calls = [c for c in calls if args["q"] in c.remote or args["q"] in c.session_id]
            if args.get("session_id"):
                calls = [c for c in calls if c.session_id == args["session_id"]]
            if after is not None:
                calls = [c for c in calls if platform.epoch + c.created_at >= after]
            if before is not None:
                calls = [c for c in calls if platform.epoch + c.created_at <= before]
            page = [call_object(c) for c in calls[start:start + limit]]
            more = start + limit < len(calls)
        return jsonify({"data": page, "next_cursor": str(start + limit) if more else None})

    @app.post("/v1/calls/<call_id>/hangup")
    def hangup(call_id: str):
        with platform.lock:
            leg = found(call_id)
        if leg.status in LIVE:  # an ended call still answers hung_up: the platform documents it idempotent
            platform.at(platform.clock.now(), lambda: platform.hangup(leg.id))
        return jsonify({"call_id": leg.id, "status": "hung_up"})

    @app.get("/v1/calls/<call_id>/recording")
    def recording(call_id: str):
        with platform.lock:
            leg = found(call_id)
            held = dict(leg.recording) if leg.recording else None
        if held is None:
            raise Invalid(f"call {call_id} has no recording", "calls.recording_not_found", 404)
        if held["state"] == "pending":
            return jsonify({"status": "pending", "retry_after_seconds": 10}), 202
        if platform.clock.now() - held["ready_at"] > RECORDING_TTL:
            raise Invalid(f"the recording of call {call_id} has expired", "calls.recording_expired", 410)
        return Response(status=302, headers={"Location": held["url"]})

    @app.post("/v1/calls/<call_id>/supervision")
    def supervise(call_id: str):
        data = request.get_json(silent=True)
        params = parse_supervision(data)
        key = request.headers.get("Idempotency-Key")
        with platform.lock:
            leg = found(call_id)
            if key and (leg.id, key) in supervision_replays:
                return jsonify(supervision_replays[(leg.id, key)]), 201
            if leg.status not in LIVE:
                raise Invalid(f"call {call_id} is {leg.status}; only a live call can be supervised",
                              "calls.not_active", 409)
            current = leg.supervision
            if current and current["state"] not in ("ended", "failed"):
                who = current["supervisor"].get("label") or current["supervisor"].get("identity") or "a supervisor"
                raise Invalid(f"{who} is already supervising this call", "calls.supervision_in_progress", 409)
            supervision = platform.supervise(leg, params)
            if key:
                supervision_replays[(leg.id, key)] = supervision
            return jsonify(supervision), 201

    @app.patch("/v1/calls/<call_id>/supervision")
    def supervision_mode(call_id: str):
        data = request.get_json(silent=True)
        mode = data.get("mode") if isinstance(data, dict) else None
        if mode not in ("listen", "whisper", "barge"):
            raise Invalid(f"mode must be listen, whisper or barge; got {mode!r}")
        with platform.lock:
            current = active_supervision(found(call_id))
            if current is None:
                raise Invalid(f"call {call_id} has no supervisor", "calls.supervision_not_found", 404)
            if current["state"] in ("connecting", "ringing"):
                raise Invalid("the supervisor is still ringing", "calls.supervision_not_connected", 409)
            current["mode"] = mode
            return jsonify(current)

    @app.delete("/v1/calls/<call_id>/supervision")
    def stop_supervision(call_id: str):
        with platform.lock:
            platform.end_supervision(found(call_id))
        return Response(status=204)

    @app.get("/v1/calls/<call_id>/supervision")
    def get_supervision(call_id: str):
        with platform.lock:
            current = active_supervision(found(call_id))
            return jsonify({"supervision": dict(current) if current else None})

    @app.get("/v1/local/report")
    def local_report():
        with platform.lock:
            return jsonify(report(platform))

    @app.get("/recordings/<path:name>")
    def recording_file(name: str):
        return Response(b"ID3 roomc local recording " + name.encode(), mimetype="audio/mpeg")

    return app


def active_supervision(leg: Leg) -> dict | None:
    current = leg.supervision
    return current if current and current["state"] not in ("ended", "failed") else None


def parse_supervision(data: Any) -> dict:
    """A supervision request checked as the SDK types it (SuperviseParams on the wire)."""
    if not isinstance(data, dict):
        raise Invalid("the body must be a JSON object")
    if data.get("mode") not in ("listen", "whisper", "barge"):
        raise Invalid(f"mode must be listen, whisper or barge; got {data.get('mode')!r}")
    target = data.get("supervisor")
    if not isinstance(target, dict) or target.get("type") not in ("client", "sip", "phone"):
        raise Invalid("supervisor must be {type: client|sip, identity} or {type: phone, number}")
    if target["type"] == "phone":
        target = {"type": "phone", "number": _e164(target.get("number"), "supervisor.number")}
    elif not isinstance(target.get("identity"), str) or not target["identity"]:
        raise Invalid(f"supervisor.identity is required for a {target['type']} supervisor")
    else:
        target = {"type": target["type"], "identity": target["identity"]}
    out: dict[str, Any] = {"mode": data["mode"], "supervisor": target}
    if data.get("announce") is not None:
        if data["announce"] not in ("none", "agent", "both"):
            raise Invalid(f"announce must be none, agent or both; got {data['announce']!r}")
        out["announce"] = data["announce"]
    if data.get("label") is not None:
        if not isinstance(data["label"], str) or len(data["label"]) > 64:
            raise Invalid("label must be a string of at most 64 characters")
        out["label"] = data["label"]
    if data.get("notify_agent") is not None:
        if not isinstance(data["notify_agent"], bool):
            raise Invalid("notify_agent must be true or false")
        out["notify_agent"] = data["notify_agent"]
    return out


def summarise(legs: list[Leg], rounding: str) -> dict:
    """One stats bucket: completed + missed + failed == total."""
    return {"total": len(legs), "inbound": sum(leg.direction == "inbound" for leg in legs),
            "outbound": sum(leg.direction == "outbound" for leg in legs),
            "completed": sum(leg.status == "completed" for leg in legs),
            "missed": sum(leg.status in MISSED for leg in legs),
            "failed": sum(leg.status == "failed" for leg in legs),
            "spend_minor": sum(leg.cost_minor(rounding) for leg in legs)}


def serve_local(host: str, port: int, *, speed: float, api_key: str | None, secret: bytes | None,
                rounding: str, readings: Readings | None = None, events_url: str | None = None,
                voice_url: str | None = None) -> None:
    """Run the local platform until interrupted."""
    import logging

    from werkzeug.serving import make_server

    logging.getLogger("werkzeug").setLevel(logging.WARNING)

    platform = Platform(ScaledClock(speed), secret=secret, rounding=rounding,
                        recording_base=f"http://{host}:{port}/recordings", readings=readings,
                        events_url=events_url, voice_url=voice_url)
    stop = threading.Event()
    threading.Thread(target=platform.run_forever, args=(stop,), daemon=True, name="sautikit-engine").start()
    server = make_server(host, port, create_local_app(platform, api_key=api_key), threaded=True)
    try:
        server.serve_forever()
    finally:
        stop.set()
