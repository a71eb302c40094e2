"""Fixtures of the local-platform tests: a scriptable webhook server, and the SDK contract every response keeps."""
import json
import re
import threading
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator
from werkzeug.serving import make_server


class Received(list):
    """(path, body, signature) of each request, in order; `.headers` holds each request's headers."""

    def __init__(self) -> None:
        super().__init__()
        self.headers: list[dict] = []


@pytest.fixture
def webhook():
    """A loopback server answering each POST with the next queued reply, recording what it got."""
    replies, received = [], Received()

    def app(environ, start_response):
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        received.append((environ["PATH_INFO"], body, environ.get("HTTP_X_SAUTIKIT_SIGNATURE")))
        received.headers.append({k: v for k, v in environ.items() if k.startswith(("HTTP_", "CONTENT_TYPE"))})
        reply = replies.pop(0) if replies else {"ok": True}
        status, reply = reply if isinstance(reply, tuple) else ("200 OK", reply)
        data = reply if isinstance(reply, bytes) else json.dumps(reply).encode()
        start_response(status, [("Content-Type", "application/json")])
        return [data]

    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}", replies, received
    server.shutdown()


# -- the contract: every response the local Sautikit gives, checked against the SDK's types ----------
CONTRACT = json.loads((Path(__file__).parent / "contract" / "sautikit-sdk.schema.json").read_text())
ID = r"[^/]+"
ROUTES = [  # (method, path, status) -> the SDK type of the body (None: no JSON body)
    ("POST", r"/v1/calls", 201, "createCallResponse"),
    ("GET", r"/v1/calls", 200, "callListPage"),
    ("GET", r"/v1/calls/stats", 200, "callStats"),
    ("GET", rf"/v1/calls/{ID}", 200, "callEnvelope"),
    ("POST", rf"/v1/calls/{ID}/hangup", 200, "hangupResponse"),
    ("GET", rf"/v1/calls/{ID}/recording", 202, "recordingPending"),
    ("GET", rf"/v1/calls/{ID}/recording", 302, None),
    ("POST", rf"/v1/calls/{ID}/supervision", 201, "supervision"),
    ("PATCH", rf"/v1/calls/{ID}/supervision", 200, "supervision"),
    ("DELETE", rf"/v1/calls/{ID}/supervision", 204, None),
    ("GET", rf"/v1/calls/{ID}/supervision", 200, "supervisionEnvelope"),
]
LOCAL_ONLY = re.compile(r"^/(v1/local/|recordings/)")  # rehearsal extensions: only their errors are checked


def _check(validator: Draft202012Validator, kind: str, body) -> list[str]:
    return [f"{'.'.join(map(str, e.absolute_path)) or 'body'}: {e.message}"
            for e in validator.evolve(schema={"$ref": f"#/$defs/{kind}", "$defs": CONTRACT["$defs"]}).iter_errors(body)]


def contract_problems(lines: list[dict]) -> list[str]:
    """What in these logged responses breaks the SDK's types or the platform's error envelope."""
    validator = Draft202012Validator(CONTRACT, format_checker=Draft202012Validator.FORMAT_CHECKER)
    problems = []
    for line in lines:
        where = f"{line['method']} {line['path']} -> {line['status']}"
        if line["status"] >= 400:
            problems += [f"{where}: {p}" for p in _check(validator, "error", line["body"])]
            continue
        if LOCAL_ONLY.match(line["path"]):
            continue
        kinds = [kind for method, path, status, kind in ROUTES
                 if method == line["method"] and status == line["status"] and re.fullmatch(path, line["path"])]
        # /v1/calls/stats also matches /v1/calls/{id}: the first (most specific) route is the one served.
        if not kinds:
            problems.append(f"{where}: no such response in the SDK's contract")
        elif kinds[0] is None:
            if line["status"] == 302 and not line["location"]:
                problems.append(f"{where}: a redirect without Location")
        else:
            problems += [f"{where}: {p}" for p in _check(validator, kinds[0], line["body"])]
    return problems


@pytest.fixture(autouse=True)
def sdk_contract(tmp_path, monkeypatch):
    """Log every response of every local Sautikit this test starts (in process or not) and check them all."""
    from roomc.sautikit.local_server import RESPONSE_LOG

    log = tmp_path / "sautikit-responses.jsonl"
    monkeypatch.setenv(RESPONSE_LOG, str(log))
    yield log
    lines = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    problems = contract_problems(lines)
    assert not problems, "the local Sautikit broke the SDK's contract:\n" + "\n".join(problems[:20])
