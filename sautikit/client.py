"""A client for the Sautikit calls API (fact sheet §6): create, get, list, hang up.

Only what a conference line needs. Errors become `SautikitError` with the platform's code,
message and request_id. Retries (with exponential backoff) happen only where repeating is
safe: reads, hang-ups (documented idempotent), and creates, which carry an Idempotency-Key
so a replay returns the original call instead of dialling twice.
"""
from __future__ import annotations

import http.client
import io
import json
import os
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass
from typing import Any, Iterator

DEFAULT_BASE_URL = "https://api.sautikit.com"
RETRYABLE = {408, 425, 429, 500, 502, 503, 504}


class _DeadlineSocket:
    """A connected socket whose every read and write waits only for what is left of one deadline,
    so an answer trickled a byte at a time cannot outlast it (a socket timeout is per read)."""

    def __init__(self, sock: socket.socket, deadline: float):
        self._sock, self._deadline = sock, deadline

    def _arm(self) -> None:
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("timed out (the whole answer took longer than the client's timeout)")
        self._sock.settimeout(left)

    def recv_into(self, buffer: Any, nbytes: int = 0, flags: int = 0) -> int:
        self._arm()
        return self._sock.recv_into(buffer, nbytes, flags)

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        self._arm()
        return self._sock.recv(bufsize, flags)

    def sendall(self, data: Any, flags: int = 0) -> None:
        self._arm()
        self._sock.sendall(data, flags)

    def makefile(self, mode: str = "rb", buffering: int | None = None, **_: Any) -> Any:
        """A buffered reader whose reads go through this wrapper (http.client reads the answer from it)."""
        raw = socket.SocketIO(self, "rb")  # type: ignore[arg-type]
        self._sock._io_refs += 1  # type: ignore[attr-defined]  # as socket.makefile does: the file keeps it open
        return raw if buffering == 0 else io.BufferedReader(raw, io.DEFAULT_BUFFER_SIZE)

    def _decref_socketios(self) -> None:
        """The file made by `makefile` is closed: the socket may close once the connection lets it go."""
        self._sock._decref_socketios()  # type: ignore[attr-defined]

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


def _opener(deadline: float) -> urllib.request.OpenerDirector:
    """A urllib opener whose connections honour `deadline` (time.monotonic) for the whole exchange."""

    def bounded(base: type[http.client.HTTPConnection]) -> type[http.client.HTTPConnection]:
        class Bounded(base):  # type: ignore[valid-type, misc]
            def connect(self) -> None:
                super().connect()
                self.sock = _DeadlineSocket(self.sock, deadline)  # type: ignore[has-type, arg-type, assignment]

        return Bounded

    class Http(urllib.request.HTTPHandler):
        def http_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
            return self.do_open(bounded(http.client.HTTPConnection), req)

    class Https(urllib.request.HTTPSHandler):
        def https_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
            return self.do_open(bounded(http.client.HTTPSConnection), req,
                                context=self._context)  # type: ignore[attr-defined]

    return urllib.request.build_opener(Http(), Https())


class SautikitError(Exception):
    """An error answer from the platform, or no answer at all (status 0)."""

    def __init__(self, status: int, code: str, message: str, request_id: str | None = None):
        super().__init__(f"{code}: {message}" + (f" (request {request_id})" if request_id else ""))
        self.status, self.code, self.message, self.request_id = status, code, message, request_id


@dataclass
class CallsClient:
    """The calls API. Key from SAUTIKIT_API_KEY and base URL from SAUTIKIT_API_URL unless given."""

    api_key: str | None = None
    base_url: str | None = None
    attempts: int = 4
    backoff: float = 0.25
    timeout: float = 10.0  # for each attempt's whole exchange: connecting, asking and reading the answer

    def __post_init__(self) -> None:
        self.api_key = self.api_key or os.environ.get("SAUTIKIT_API_KEY")
        self.base_url = (self.base_url or os.environ.get("SAUTIKIT_API_URL") or DEFAULT_BASE_URL).rstrip("/")
        if not self.api_key:
            raise SautikitError(0, "api_key.missing", "set SAUTIKIT_API_KEY (never commit a key to the repository)")

    def _request(self, method: str, path: str, body: dict | None = None, *, retry: bool,
                 headers: dict | None = None) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        request_headers = {"Authorization": f"Bearer {self.api_key}", "Accept": "application/json",
                           **({"Content-Type": "application/json"} if data else {}), **(headers or {})}
        for attempt in range(self.attempts if retry else 1):
            request = urllib.request.Request(f"{self.base_url}{path}", data=data, method=method,
                                             headers=request_headers)
            deadline = time.monotonic() + self.timeout
            try:
                with _opener(deadline).open(request, timeout=self.timeout) as response:
                    return response.status, json.loads(response.read() or b"null")
            except urllib.error.HTTPError as error:
                payload = _json_or_none(error.read())
                if error.code in RETRYABLE and retry and attempt + 1 < self.attempts:
                    time.sleep(self.backoff * 2 ** attempt)
                    continue
                raise _error(error.code, payload) from None
            except (urllib.error.URLError, TimeoutError, ConnectionError, http.client.HTTPException) as error:
                if retry and attempt + 1 < self.attempts:
                    time.sleep(self.backoff * 2 ** attempt)
                    continue
                raise SautikitError(0, "network.unreachable", str(getattr(error, "reason", error))) from None
        raise AssertionError("unreachable")

    def create_call(self, *, from_: str, to: str | list[str], voice_callback_url: str,
                    client_request_id: str | None = None, idempotency_key: str | None = None) -> dict:
        """Place a call (POST /v1/calls); returns {call_id, session_id, status, client_request_id}."""
        body = {"from": from_, "to": [to] if isinstance(to, str) else list(to),
                "voice_callback_url": voice_callback_url}
        if client_request_id:
            body["client_request_id"] = client_request_id
        key = idempotency_key or str(uuid.uuid4())
        return self._request("POST", "/v1/calls", body, retry=True, headers={"Idempotency-Key": key})[1]

    def get_call(self, call_id: str) -> dict:
        """One call (GET /v1/calls/{id}), by call id or HD_ session id."""
        return self._request("GET", f"/v1/calls/{urllib.parse.quote(call_id, safe='')}", retry=True)[1]["call"]

    def list_calls(self, *, limit: int = 100, **filters: str) -> Iterator[dict]:
        """Every call matching the filters (status, direction, q, session_id, from, to), newest first."""
        cursor = None
        while True:
            query = {k: v for k, v in {**filters, "limit": str(limit), "cursor": cursor}.items() if v}
            page = self._request("GET", "/v1/calls?" + urllib.parse.urlencode(query), retry=True)[1]
            yield from page.get("data", [])
            cursor = page.get("next_cursor")
            if not cursor:
                return

    def hangup(self, call_id: str) -> dict:
        """End a live call (POST /v1/calls/{id}/hangup); idempotent on the platform."""
        return self._request("POST", f"/v1/calls/{urllib.parse.quote(call_id, safe='')}/hangup", {}, retry=True)[1]


def _json_or_none(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return None


def _error(status: int, payload: Any) -> SautikitError:
    """Both error shapes the platform uses: {"error": {code, message, request_id}} and {code, reason}."""
    if isinstance(payload, dict) and isinstance(payload.get("error"), dict):
        e = payload["error"]
        return SautikitError(status, str(e.get("code", "unknown")), str(e.get("message", "")), e.get("request_id"))
    if isinstance(payload, dict) and "code" in payload:
        return SautikitError(status, str(payload["code"]), str(payload.get("reason", "")))
    return SautikitError(status, f"http.{status}", "unexpected answer from the platform")
