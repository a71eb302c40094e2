"""Fixtures of the local-platform tests: a scriptable webhook server on loopback.

The SDK contract every local Sautikit response keeps is checked for the whole suite by
`sdk_contract` in tests/conftest.py (the schemas and checker are in contract/).
"""
import json
import threading

import pytest
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
        received.headers.append({k: v for k, v in environ.items()
                                 if k.startswith(("HTTP_", "CONTENT_TYPE", "QUERY_STRING"))})
        reply = replies.pop(0) if replies else {"ok": True}
        status, reply = reply if isinstance(reply, tuple) else ("200 OK", reply)
        data = reply if isinstance(reply, bytes) else json.dumps(reply).encode()
        start_response(status, [("Content-Type", "application/json")])
        return [data]

    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}", replies, received
    server.shutdown()
