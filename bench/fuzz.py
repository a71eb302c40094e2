"""A fuzz run against a real `roomc serve`: generated requests, then every answer and the store checked.

The server serves the shipped rooms/ policies with a signing secret set (signatures on),
an admin token, and a reservation TTL longer than the run (so no seat is freed by time).
A seeded generator sends requests of every shape: methods, paths (routes, admin, unknown,
encoded, long), query strings (valid, hostile and long room names, roles), headers (random,
content types with charsets, event ids, bearer tokens), bodies (form, JSON, JSON with a BOM,
UTF-16, multipart, chunked, garbage, empty, oversized), signatures (valid, stale, forged,
replayed on another query, a 5,000-digit `t`, bare hex, none) and event timestamps (now,
milliseconds, ISO, inf, nan, 1e400, far past and future, garbage), with exact retries and
same-event duplicates mixed in. It reports, and exits 1 unless each is zero:

- answers that are not JSON (HEAD: not `application/json`, or with a body);
- 5xx answers other than the documented 503 on an events route;
- tracebacks in the server's log;
- seats over a limit: distinct calls admitted to a room beyond its capacity (+ extra seats),
  and active counted seats in the store beyond capacity, for rooms no event touched (an
  event may seat a caller the platform says joined, whatever the count);
- acknowledged events missing from the store: every 2xx `stored`/`unreadable` answer on an
  events route must be a stored row (found by the unique FuzzId its query carried); every
  `duplicate` must have a stored row for the same room, kind and call, or its own FuzzId.

Usage: python bench/fuzz.py [--requests 100000] [--seed 1] [--threads 8] [--workers 2]
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, urlencode

ROOT = Path(__file__).resolve().parent.parent
SECRET = "whsec_fuzz_secret"
ADMIN_TOKEN = "fuzz-admin"
METHODS = ["POST"] * 10 + ["GET"] * 4 + ["HEAD", "OPTIONS", "PUT", "DELETE", "PATCH"]
VOICE_ROUTES = {  # route -> the query key its room name is made from
    "/conference/join": "room", "/recorded/join": "room", "/coaching/join": "room", "/support/join": "ticket",
    "/townhall/join": "room", "/lobby": None, "/pin": "meeting",
}
EVENT_ROUTES = ["/conference/events", "/townhall/events"]
KEYS_ROUTE = "/townhall/keys"
HOSTILE_NAMES = ["../etc", "a/b", "x\r\ny", "n\x00ul", "é-room", "a" * 300, "{{ 7*7 }}", "", " ", "%00", "..",
                 "ok.name_1", "CON", "🙂", "' OR 1=1 --"]
KINDS = ["join", "leave", "start", "end", "mute", "unmute", "participant-join", "participant-left", "joined",
         "conference-end", "bogus", ""]
EVENT_ROOMS = [f"ev-{i}" for i in range(30)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sign(body: bytes, timestamp: int | None = None, secret: str = SECRET) -> str:
    from roomc.runtime.signatures import sign as roomc_sign

    return roomc_sign(secret.encode(), body, timestamp)


@dataclass
class Sent:
    """One generated request and what the checks need to know about it."""

    method: str
    path: str
    query: dict
    headers: dict
    body: bytes | None
    chunked: bool = False
    route: str = ""  # voice, events, admin or other
    fuzz_id: str | None = None
    event_fields: dict | None = None


@dataclass
class Findings:
    answers: Counter = field(default_factory=Counter)
    non_json: list = field(default_factory=list)
    bad_5xx: list = field(default_factory=list)
    transport_errors: int = 0
    acknowledged: list = field(default_factory=list)  # (outcome, Sent)
    admitted: dict = field(default_factory=lambda: defaultdict(set))  # conference name -> call ids
    lock: threading.Lock = field(default_factory=threading.Lock)


class Generator:
    """Seeded request generator: the same seed gives the same requests (their interleaving varies)."""

    def __init__(self, seed: int):
        self.rng = random.Random(seed)
        self.counter = 0
        self.history: list[Sent] = []  # signed requests, for exact retries and replays

    def fuzz_id(self) -> str:
        self.counter += 1
        return f"fz{self.counter}"

    def room_name(self, route: str) -> str:
        r = self.rng.random()
        if r < 0.1:
            return self.rng.choice(HOSTILE_NAMES)
        if r < 0.13:
            return self.rng.choice(EVENT_ROOMS)  # shared with events: excluded from the seat check
        return f"{route.strip('/').split('/')[0][:4]}{self.rng.randrange(40)}"

    def call_id(self) -> str:
        r = self.rng.random()
        if r < 0.05:
            return ""
        if r < 0.08:
            return self.rng.choice(["x" * 400, "CA\x01", "CA 1", "ÇÁ1"])
        return f"CA{self.rng.randrange(3000)}"

    def timestamp(self) -> object:
        now = time.time()
        return self.rng.choice([
            now, int(now * 1000), time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)), "inf", "nan", "1e400",
            "-1e400", 1e308, -5, 0, now + 10 ** 7, now - 10 ** 8, "yesterday", "9" * 400, None, None, True, [1],
            {"a": 1}, now * 1e6])

    def voice_fields(self) -> dict:
        fields: dict = {}
        call = self.call_id()
        if call or self.rng.random() < 0.5:
            fields[self.rng.choice(["CallId", "CallSid", "callSid", "call_id", "CALL-SID"])] = call
        if self.rng.random() < 0.7:
            fields["From"] = self.rng.choice(["+254700000001", "+254700000009", "anonymous", "", "+" + "9" * 40])
        if self.rng.random() < 0.3:
            fields["Digits"] = self.rng.choice(["", "123456", "4321", "#", "12345678901234567890", "abc"])
        if self.rng.random() < 0.1:
            fields[self.rng.choice(["Direction", "To", "junk", "ÿ"])] = self.rng.choice(["inbound", "x" * 100, "ünï"])
        return fields

    def event_fields(self) -> dict:
        fields: dict = {}
        spelling = self.rng.random()
        kind = self.rng.choice(KINDS)
        room = self.rng.choice(EVENT_ROOMS) if self.rng.random() < 0.9 else self.rng.choice(HOSTILE_NAMES)
        if spelling < 0.5:
            fields.update({"ConferenceName": room, "StatusCallbackEvent": kind})
        else:
            fields.update({"room": room, "event": kind})
        if self.rng.random() < 0.9:
            fields[self.rng.choice(["CallId", "CallSid", "participantCallId"])] = f"CA{self.rng.randrange(200)}"
        if self.rng.random() < 0.6:
            fields["Timestamp"] = self.timestamp()
        if self.rng.random() < 0.3:
            fields[self.rng.choice(["EventId", "SequenceNumber"])] = self.rng.choice([1, 2, 3, "e-1", self.rng.randrange(50)])
        if self.rng.random() < 0.1:
            fields["RecordingUrl"] = self.rng.choice(["https://r.example.com/a.mp3", "javascript:alert(1)", "x" * 3000])
        if self.rng.random() < 0.05:
            fields["Participants"] = self.rng.choice([[1, 2], {"n": 1}, None, 10 ** 30])
        return fields

    def encode(self, fields: dict, headers: dict) -> tuple[bytes, bool]:
        """A body for the fields in some encoding; (body, chunked)."""
        kind = self.rng.choice(["form", "form", "json", "json", "multipart", "charset", "bom", "utf16", "garbage",
                                "empty", "big", "chunked-form", "chunked-json", "textjson"])
        flat = {k: ("" if v is None else json.dumps(v) if isinstance(v, (list, dict, bool)) else str(v))
                for k, v in fields.items()}
        if kind in ("form", "chunked-form"):
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            return urlencode(flat).encode(), kind == "chunked-form"
        if kind in ("json", "chunked-json", "textjson"):
            headers["Content-Type"] = "text/plain" if kind == "textjson" else "application/json"
            return json.dumps(fields, default=str).encode(), kind == "chunked-json"
        if kind == "multipart":
            boundary = f"fzb{self.rng.randrange(10 ** 9)}"
            headers["Content-Type"] = f"multipart/form-data; boundary={boundary}"
            parts = "".join(f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'
                            for k, v in flat.items() if '"' not in k and "\r" not in k and "\n" not in k)
            return (parts + f"--{boundary}--\r\n").encode("utf-8", "replace"), False
        if kind == "charset":
            headers["Content-Type"] = "application/x-www-form-urlencoded; charset=iso-8859-1"
            return urlencode(flat, encoding="iso-8859-1", errors="replace").encode(), False
        if kind == "bom":
            headers["Content-Type"] = "application/json; charset=utf-8"
            return b"\xef\xbb\xbf" + json.dumps(fields, default=str).encode(), False
        if kind == "utf16":
            headers["Content-Type"] = "application/json; charset=utf-16"
            return json.dumps(fields, default=str).encode("utf-16"), False
        if kind == "garbage":
            headers["Content-Type"] = self.rng.choice(["application/json", "multipart/form-data; boundary=x",
                                                       "application/octet-stream", "text/html; charset=klingon", "?"])
            return bytes(self.rng.randrange(256) for _ in range(self.rng.randrange(1, 300))), self.rng.random() < 0.3
        if kind == "big":
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            return urlencode({**flat, "pad": "p" * (256 * 1024 + self.rng.randrange(-50, 5000))}).encode(), False
        return b"", False

    def signature(self, body: bytes, headers: dict) -> None:
        r = self.rng.random()
        if r < 0.7:
            headers["X-Sautikit-Signature"] = sign(body)
        elif r < 0.75:
            headers["X-Sautikit-Signature"] = sign(body, int(time.time()) - 400)  # stale
        elif r < 0.8:
            headers["X-Sautikit-Signature"] = sign(body, secret="whsec_wrong")
        elif r < 0.83:
            headers["X-Sautikit-Signature"] = "t=" + "9" * 5000 + ",v1=00"
        elif r < 0.86:
            import hashlib
            import hmac

            headers["X-Sautikit-Signature"] = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        elif r < 0.9:
            headers["X-Sautikit-Signature"] = self.rng.choice(["", "t=,v1=", "v1=zz", "t=1,v1=" + "a" * 64, "garbage"])
        # else: unsigned

    def request(self) -> Sent:
        rng = self.rng
        if self.history and rng.random() < 0.08:
            old = rng.choice(self.history)
            if rng.random() < 0.6:
                return old  # an exact retry, same signature
            # a replay of the signature on another query
            return Sent(old.method, old.path, {**old.query, "host": "1", "fz": self.fuzz_id()}, dict(old.headers),
                        old.body, old.chunked, old.route, old.fuzz_id, old.event_fields)
        method = rng.choice(METHODS)
        headers: dict = {}
        r = rng.random()
        if r < 0.5:
            path = rng.choice(list(VOICE_ROUTES))
            route = "voice"
        elif r < 0.81:
            path = rng.choice(EVENT_ROUTES)
            route = "events"
        elif r < 0.85:
            path = KEYS_ROUTE  # in-room keys: a webhook like events (JSON, 2xx or 403/413/503), never a 500
            route = "keys"
        elif r < 0.92:
            path = rng.choice(["/healthz", "/rooms", "/rooms/" + quote(self.room_name("/conference"), safe=""),
                               "/rooms/ev-1"])
            route = "admin"
            if rng.random() < 0.7:
                headers["Authorization"] = rng.choice([f"Bearer {ADMIN_TOKEN}", "Bearer nope", "Basic x"])
        else:
            path = rng.choice(["/", "/nope", "/conference", "/conference/join/", "/CONFERENCE/JOIN", "/%2e%2e/etc",
                               "/conference%2Fjoin", "/" + "a" * rng.randrange(1, 6000), "/rooms/", "/healthz/x",
                               "/" + quote("ünïcödé/🙂")])
            route = "other"
        query: dict = {}
        fuzz_id = self.fuzz_id()
        fields: dict | None = None
        if route == "voice":
            key = VOICE_ROUTES[path]
            if key and rng.random() < 0.9:
                query[key] = rng.choice(["123456", "654321"]) if key == "meeting" else self.room_name(path)
            if rng.random() < 0.2:
                query["host"] = rng.choice(["1", "0", "true"])
            fields = self.voice_fields()
        elif route == "keys":
            fields = {**self.event_fields(), rng.choice(["Digits", "digits", "dtmf"]): rng.choice(
                ["1", "2", "0", "9", "1#", "", "１", "<x>", "1" * 40, None, 7, ["1"]])}
            query["room"] = rng.choice(["townhall-" + self.room_name("/townhall/join"), "ev-1", "", "bad name"])
        elif route == "events":
            fields = self.event_fields()
            query["FuzzId"] = fuzz_id
            if rng.random() < 0.15:
                headers[rng.choice(["X-Sautikit-Event-Id", "X-Sautikit-Idempotency-Key"])] = rng.choice(
                    ["1", "2", "dup", str(rng.randrange(100))])
        if rng.random() < 0.05:
            query["long"] = "q" * rng.randrange(1000, 20000)
        if rng.random() < 0.1:
            headers[rng.choice(["X-Random", "Accept", "User-Agent", "Cookie", "X-Forwarded-For"])] = rng.choice(
                ["x" * rng.randrange(1, 4000), "*/*", "() { :; }; echo", "\t"])
        body: bytes | None = None
        chunked = False
        if fields is not None and (method not in ("GET", "HEAD", "OPTIONS") or rng.random() < 0.1):
            if method == "GET" and rng.random() < 0.5:
                query.update({k: str(v) for k, v in fields.items()})
            else:
                body, chunked = self.encode(fields, headers)
        elif fields is not None and method == "GET":
            query.update({k: "" if v is None else str(v) for k, v in fields.items()})
        if route in ("voice", "events", "keys"):
            self.signature(body or b"", headers)
        sent = Sent(method, path, query, headers, body, chunked, route, fuzz_id if route == "events" else None, fields)
        if "X-Sautikit-Signature" in headers and len(self.history) < 5000:
            self.history.append(sent)
        return sent


def send(conn: http.client.HTTPConnection, sent: Sent) -> tuple[int, dict, bytes]:
    url = sent.path + ("?" + urlencode(sent.query) if sent.query else "")
    headers = dict(sent.headers)
    if sent.chunked and sent.body is not None:
        data = sent.body
        pieces = [data[i:i + 97] for i in range(0, len(data), 97)] or [b""]
        conn.request(sent.method, url, body=iter(pieces), headers={**headers, "Transfer-Encoding": "chunked"},
                     encode_chunked=True)
    else:
        conn.request(sent.method, url, body=sent.body, headers=headers)
    response = conn.getresponse()
    body = response.read()
    return response.status, {k.lower(): v for k, v in response.getheaders()}, body


def check(sent: Sent, status: int, headers: dict, body: bytes, findings: Findings) -> None:
    label = f"{sent.method} {sent.path} -> {status}"
    parsed = None
    content_type = headers.get("content-type", "")
    if sent.method == "HEAD":
        ok_json = content_type.startswith("application/json") and body == b""
    else:
        try:
            parsed = json.loads(body)
            ok_json = content_type.startswith("application/json")
        except ValueError:
            ok_json = False
    with findings.lock:
        findings.answers[status] += 1
        if not ok_json:
            findings.non_json.append(f"{label} {content_type!r} {body[:80]!r}")
        if status >= 500 and not (status == 503 and sent.route in ("events", "keys")):
            findings.bad_5xx.append(f"{label} {body[:120]!r}")
        if sent.route == "events" and 200 <= status < 300 and sent.method in ("GET", "POST") and isinstance(parsed, dict):
            findings.acknowledged.append((parsed.get("outcome"), sent))
        if sent.route == "voice" and status == 200 and isinstance(parsed, dict):
            fields = sent.event_fields or {}
            call = next((str(v) for k, v in fields.items() if k.lower().replace("_", "").replace("-", "")
                         in ("callid", "callsid")), "")
            for action in _walk(parsed.get("actions")):
                conference = action.get("conference") if isinstance(action, dict) else None
                if isinstance(conference, dict):
                    findings.admitted[str(conference.get("name"))].add(call)


def _walk(actions: object):
    if isinstance(actions, list):
        for action in actions:
            yield action
            if isinstance(action, dict):
                for value in action.values():
                    if isinstance(value, dict):
                        yield from _walk(value.get("nested"))


def worker(port: int, queue: list[Sent], findings: Findings, position: list[int], lock: threading.Lock) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    while True:
        with lock:
            if position[0] >= len(queue):
                break
            sent = queue[position[0]]
            position[0] += 1
        for attempt in range(2):
            try:
                status, headers, body = send(conn, sent)
                check(sent, status, headers, body, findings)
                if headers.get("connection", "").lower() == "close":
                    conn.close()
                    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                break
            except (OSError, http.client.HTTPException):
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                if attempt == 1:
                    with findings.lock:
                        findings.transport_errors += 1
    conn.close()


class Limits:
    """Which policy room a conference name belongs to, and the seats of each of its pools, from the table."""

    def __init__(self, table: dict):
        import re

        self.patterns = []
        for room in table["rooms"].values():
            template = room["name"]["$t"] if isinstance(room["name"], dict) else str(room["name"])
            literal = len(re.sub(r"{{.*?}}", "", template))
            pattern = re.compile("^" + ".*".join(re.escape(part) for part in re.split(r"{{.*?}}", template)) + "$")
            if "pools" in room:  # pools and seats held for hosts (issue 13): held seats are inside their pool
                pools = {key: pool["seats"] for key, pool in room["pools"].items()}
            else:
                pools = {"": room["capacity"], "~extra": room["extraSeats"]} if room["capacity"] else {}
            self.patterns.append((literal, pattern, pools))
        self.patterns.sort(key=lambda item: -item[0])  # the most specific name first

    def __call__(self, conference: str) -> dict[str, int] | None:
        for _literal, pattern, pools in self.patterns:
            if pattern.match(conference):
                return pools or None  # no pools: seats are not counted
        return None


def store_checks(db_path: Path, findings: Findings, limit_for: Limits) -> dict:
    db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    db.row_factory = sqlite3.Row
    rows = db.execute("SELECT dedupe, room, kind, call_id, readable, body FROM events").fetchall()
    event_rooms = {r["room"] for r in rows if r["room"] is not None}
    fuzz_ids: set[str] = set()
    by_scope: set[tuple] = set()
    for r in rows:
        try:
            raw = json.loads(r["body"])
        except ValueError:
            raw = {}
        if isinstance(raw, dict) and isinstance(raw.get("FuzzId"), str):
            fuzz_ids.add(raw["FuzzId"])
        if r["readable"]:
            by_scope.add((r["room"], r["kind"], r["call_id"]))
    from roomc.runtime import normalise

    missing = []
    for outcome, sent in findings.acknowledged:
        if outcome in ("stored", "unreadable"):
            if sent.fuzz_id not in fuzz_ids:
                missing.append(f"{outcome} {sent.fuzz_id} not stored")
        elif outcome == "duplicate":
            if sent.fuzz_id in fuzz_ids:
                continue
            event = normalise.event({**{k: v for k, v in (sent.event_fields or {}).items()}})
            if (event.room, event.kind, event.call) not in by_scope:
                missing.append(f"duplicate {sent.fuzz_id} without a stored original")
        else:
            missing.append(f"2xx with outcome {outcome!r}")
    over = []
    for conference, calls in findings.admitted.items():
        limit = limit_for(conference)
        if limit and conference not in event_rooms and len(calls) > sum(limit.values()):
            over.append(f"{conference}: {len(calls)} calls admitted, limit {sum(limit.values())}")
    now = time.time()
    active = ("((left_at IS NULL AND (joined_at IS NOT NULL OR expires_at > :now)) OR (left_at IS NOT NULL AND "
              "reserved_at > left_at AND expires_at > :now AND (joined_at IS NULL OR joined_at <= left_at)))")
    for r in db.execute(f"SELECT room, pool, COUNT(*) AS taken FROM seats WHERE {active} GROUP BY room, pool",
                        {"now": now}):
        limit = limit_for(r["room"])
        if limit and r["room"] not in event_rooms and r["taken"] > limit.get(r["pool"], 0):
            over.append(f"{r['room']}: {r['taken']} seats of pool {r['pool']!r} in the store, limits {limit}")
    seats = db.execute("SELECT COUNT(*) FROM seats").fetchone()[0]
    db.close()
    return {"missing": missing, "over": over, "events": len(rows), "seats": seats}


def run(requests: int, seed: int = 1, threads: int = 8, workers: int = 2, work: Path | None = None,
        quiet: bool = False) -> dict:
    """Start a server, send `requests` generated requests, check everything; the figures as a dict."""
    work = work or Path(tempfile.mkdtemp(prefix="roomc-fuzz-"))
    db = work / "roomc.db"
    log_path = work / "server.log"
    port = free_port()
    env = {**os.environ, "SAUTIKIT_VOICE_SECRET": SECRET, "ROOMC_ADMIN_TOKEN": ADMIN_TOKEN,
           "ROOMC_RESERVATION_TTL": "86400", "HOST_PIN": "4321", "ROOMC_LOG_LEVEL": "WARNING"}
    env.pop("ROOMC_ALLOW_UNSIGNED", None)
    generator = Generator(seed)
    queue = [generator.request() for _ in range(requests)]
    with open(log_path, "wb") as log:
        server = subprocess.Popen([sys.executable, "-c", "from roomc.cli import run; run()", "serve",
                                   str(ROOT / "rooms"), "--port", str(port), "--db", str(db), "--workers", str(workers)],
                                  env=env, cwd=work, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    findings = Findings()
    started = time.monotonic()
    try:
        deadline = time.time() + 60
        while True:
            if server.poll() is not None:
                raise SystemExit(f"server exited: {log_path.read_text()[-2000:]}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.time() > deadline:
                    raise SystemExit("server did not start") from None
                time.sleep(0.1)
        started = time.monotonic()
        position, lock = [0], threading.Lock()
        pool = [threading.Thread(target=worker, args=(port, queue, findings, position, lock)) for _ in range(threads)]
        for thread in pool:
            thread.start()
        for thread in pool:
            thread.join()
    finally:
        elapsed = time.monotonic() - started
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGINT)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
    from roomc.compiler import pipeline

    table = pipeline.run([str(ROOT / "rooms")]).table
    assert table is not None
    stored = store_checks(db, findings, Limits(table))
    log_text = log_path.read_text(errors="replace")
    result = {
        "requests": requests, "seconds": round(elapsed, 1), "answers": dict(sorted(findings.answers.items())),
        "non_json": len(findings.non_json), "bad_5xx": len(findings.bad_5xx),
        "tracebacks": log_text.count("Traceback"), "seats_over_limit": len(stored["over"]),
        "acknowledged_events": len(findings.acknowledged), "acknowledged_missing": len(stored["missing"]),
        "events_stored": stored["events"], "seat_rows": stored["seats"], "transport_errors": findings.transport_errors,
        "rooms_admitted": len(findings.admitted),
        "examples": {"non_json": findings.non_json[:5], "bad_5xx": findings.bad_5xx[:5], "over": stored["over"][:5],
                     "missing": stored["missing"][:5],
                     "traceback": log_text[log_text.find("Traceback") - 300:][:1500] if "Traceback" in log_text else ""},
        "log": str(log_path),
    }
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    result = run(args.requests, args.seed, args.threads, args.workers)
    print(json.dumps(result, indent=2))
    zero = ("non_json", "bad_5xx", "tracebacks", "seats_over_limit", "acknowledged_missing", "transport_errors")
    print(f"\n{result['requests']:,} requests in {result['seconds']} s (seed {args.seed}, {args.workers} workers): "
          + ", ".join(f"{name} {result[name]}" for name in zero))
    sys.exit(0 if all(result[name] == 0 for name in zero) else 1)


if __name__ == "__main__":
    main()
