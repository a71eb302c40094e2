"""The SDK's contract: JSON Schemas written from sautikit-node v0.5.0's types, and a checker for logged responses."""
import json
import re
from pathlib import Path

from jsonschema import Draft202012Validator

CONTRACT = json.loads((Path(__file__).parent / "sautikit-sdk.schema.json").read_text())
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
