"""The calls-API client against hostile servers on loopback: its timeout bounds a whole answer."""
from __future__ import annotations

import socket
import threading
import time
from typing import Iterator

import pytest

from roomc.sautikit.client import CallsClient, SautikitError


@pytest.fixture
def trickling() -> Iterator[str]:
    """A server that answers one byte every 0.3 s, in its status line or in its body, for up to 12 s."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    stop = threading.Event()

    def drip(conn: socket.socket) -> None:
        with conn:
            request = conn.recv(65536)
            head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
            if b"/v1/calls/in-body" in request:
                conn.sendall(head)
                head = b" " * 40
            for byte in head[:40]:
                if stop.wait(0.3):
                    return
                try:
                    conn.sendall(bytes([byte]))
                except OSError:
                    return

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            threading.Thread(target=drip, args=(conn,), daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    stop.set()
    listener.close()


@pytest.mark.parametrize("call", ["in-head", "in-body"])
def test_a_trickling_answer_is_cut_off_at_the_total_timeout(trickling, call):
    """Each read gets a byte within 0.3 s, so a per-read timeout of 1 s never fires: the old client
    waited the full 12 s of trickle. The timeout is for the whole answer."""
    client = CallsClient(api_key="k", base_url=trickling, attempts=1, timeout=1.0)
    started = time.monotonic()
    with pytest.raises(SautikitError) as raised:
        client.get_call(call)
    assert time.monotonic() - started < 5.0  # 1 s plus generous slack for a loaded machine
    assert raised.value.status == 0 and "timed out" in raised.value.message
