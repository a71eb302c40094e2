"""`roomc sautikit-local`: the calls API on loopback, backed by the engine in scaled real time.

Local-only extensions, for rehearsals: `local_digits` (keys the callee presses at each
getDigits), `local_hangup_after` (simulated seconds after answer), `local_label` on
POST /v1/calls; POST /v1/local/inbound for a call *to* your number; GET /v1/local/report
for the timeline and the bill; GET /recordings/<file> serves recordings.
"""
from __future__ import annotations

import hmac
import threading
import uuid

from flask import Flask, Response, jsonify, request

from .engine import Platform, ScaledClock
from .readings import Readings


def _error(status: int, code: str, message: str) -> tuple[Response, int]:
    return jsonify({"error": {"code": code, "message": message, "request_id": uuid.uuid4().hex[:12]}}), status


def report(platform: Platform) -> dict:
    """The timeline, rooms and bill so far, in the shape `roomc simulate --format json` prints."""
    legs = sorted(platform.legs.values(), key=lambda leg: (leg.created_at, leg.label))
    meetings: dict[str, int] = {}
    for leg in legs:
        # A caller turned away by the policy never reached a room; their cost is listed on its own.
        key = leg.meeting or "(no room)"
        meetings[key] = meetings.get(key, 0) + leg.cost_minor(platform.rounding)
    return {
        "timeline": [{"at": round(e.at, 3), "who": e.who, "what": e.what, "room": e.room} for e in platform.timeline],
        "legs": [{"label": leg.label, "callId": leg.id, "direction": leg.direction, "status": leg.status,
                  "meeting": leg.meeting,
                  "durationSeconds": leg.duration, "heldSeconds": round(leg.held_seconds),
                  "costMinor": leg.cost_minor(platform.rounding)} for leg in legs],
        "meetingsMinor": meetings,
        "totalMinor": sum(leg.cost_minor(platform.rounding) for leg in legs),
        "currency": "KES",
        "rounding": platform.rounding,
    }


def create_local_app(platform: Platform, *, api_key: str | None) -> Flask:
    """The calls API of fact sheet §6 over `platform`."""
    app = Flask(__name__, root_path=__file__.rsplit("/", 1)[0])
    replays: dict[str, tuple[dict, int]] = {}

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
        if key and key in replays:
            body, status = replays[key]
            return jsonify(body), status
        data = request.get_json(silent=True) or {}
        to = data.get("to")
        to = [to] if isinstance(to, str) else to
        if not data.get("from") or not to or not data.get("voice_callback_url"):
            return _error(400, "calls.invalid_request", "from, to and voice_callback_url are required")
        with platform.lock:
            leg = platform.place_call(local=data["from"], remote=to[0], url=data["voice_callback_url"],
                                      client_request_id=data.get("client_request_id"),
                                      label=data.get("local_label", ""), digits=data.get("local_digits"),
                                      hangup_after=data.get("local_hangup_after"))
        body = {"call_id": leg.id, "session_id": leg.session_id, "status": "ringing",
                "client_request_id": leg.client_request_id}
        if key:
            replays[key] = (body, 201)
        return jsonify(body), 201

    @app.post("/v1/local/inbound")
    def inbound():
        data = request.get_json(silent=True) or {}
        if not data.get("from") or not data.get("to") or not data.get("url"):
            return _error(400, "calls.invalid_request", "from, to and url are required")
        with platform.lock:
            leg = platform.place_call(local=data["to"], remote=data["from"], url=data["url"], direction="inbound",
                                      label=data.get("label", ""), digits=data.get("digits"),
                                      hangup_after=data.get("hangup_after"))
        return jsonify({"call_id": leg.id, "session_id": leg.session_id, "status": "ringing"}), 201

    @app.get("/v1/calls/<call_id>")
    def get_call(call_id: str):
        leg = platform.legs.get(call_id) or next((l for l in platform.legs.values() if l.session_id == call_id), None)
        if leg is None:
            return _error(404, "calls.not_found", f"no call {call_id}")
        return jsonify({"call": leg.as_call(platform.rounding, platform.epoch)})

    @app.get("/v1/calls")
    def list_calls():
        calls = sorted(platform.legs.values(), key=lambda leg: leg.created_at, reverse=True)
        if request.args.get("status"):
            calls = [c for c in calls if c.status in request.args["status"].split(",")]
        if request.args.get("direction"):
            calls = [c for c in calls if c.direction == request.args["direction"]]
        if request.args.get("q"):
            calls = [c for c in calls if request.args["q"] in c.remote or request.args["q"] in c.session_id]
        limit = max(1, min(100, int(request.args.get("limit", 25))))
        start = int(request.args.get("cursor") or 0)
        page = calls[start:start + limit]
        more = start + limit < len(calls)
        return jsonify({"data": [c.as_call(platform.rounding, platform.epoch) for c in page],
                        "next_cursor": str(start + limit) if more else None})

    @app.post("/v1/calls/<call_id>/hangup")
    def hangup(call_id: str):
        with platform.lock:
            leg = platform.legs.get(call_id)
        if leg is None:
            return _error(404, "calls.not_found", f"no call {call_id}")
        platform.at(platform.clock.now(), lambda: platform.hangup(call_id))
        return jsonify({"call_id": call_id, "status": "hung_up"})

    @app.get("/v1/local/report")
    def local_report():
        return jsonify(report(platform))

    @app.get("/recordings/<path:name>")
    def recording(name: str):
        return Response(b"ID3 roomc local recording " + name.encode(), mimetype="audio/mpeg")

    return app


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
