"""A real `roomc serve` process on a free loopback port, for tests that cross process boundaries."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """Starts `roomc serve` (granian, real worker processes) and talks HTTP to it."""

    def __init__(self, table: Path, db: Path | str, *, workers: int = 2, env: dict | None = None,
                 body_timeout: float | None = None, extra_args: tuple[str, ...] = (), log_path: Path | None = None):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.args = [sys.executable, "-c", "from roomc.cli import run; run()", "serve", str(table),
                     "--port", str(self.port), "--db", str(db), "--workers", str(workers), *extra_args]
        if body_timeout is not None:
            self.args += ["--body-timeout", str(body_timeout)]
        self.env = {**os.environ, **(env or {})}
        if not self.env.get("SAUTIKIT_VOICE_SECRET"):
            # rooms/ names this secret and serve fails closed without it; tests that sign set it.
            self.args.append("--allow-unsigned")
        self.log_path = log_path or Path(db).with_suffix(".log")  # a database URL needs one given
        self.process: subprocess.Popen | None = None

    def start(self) -> "Server":
        # A log file, not a pipe: an undrained pipe held by granian's workers stalls its shutdown.
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(self.args, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                            start_new_session=True)
        deadline = time.time() + 30
        while time.time() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited: {self.log_path.read_text()[-3000:]}")
            try:
                if self.get("/healthz")[0] == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError("server did not start in 30 s")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)  # granian stops its own workers
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()

    def request(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None):
        req = urllib.request.Request(self.base + path, data=body, method=method, headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=30) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"null")

    def get(self, path: str, headers: dict | None = None):
        return self.request("GET", path, headers=headers)

    def healthz_within(self, seconds: float) -> dict | None:
        """/healthz's answer once the server answers again (a worker or granian restarting), or None."""
        deadline = time.time() + seconds
        while time.time() < deadline:
            try:
                return self.get("/healthz")[1]
            except OSError:
                time.sleep(0.1)
        return None

    def post_form(self, path: str, form: str):
        return self.request("POST", path, form.encode(), {"Content-Type": "application/x-www-form-urlencoded"})

    def post_json(self, path: str, data: dict):
        return self.request("POST", path, json.dumps(data).encode(), {"Content-Type": "application/json"})
