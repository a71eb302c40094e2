"""A stranger against the shipped dial-in bridge on a real `roomc serve` (granian, two workers, loopback, on SQLite and PostgreSQL):
unsigned posts with made-up call ids, PINs posted at once for one call to both workers, and keypad
look-alikes (Arabic-Indic and fullwidth digits, a trailing #, a NUL). Signed, as RC237 requires."""
import os
import shutil
import threading
import urllib.parse

import pytest

from roomc.runtime.signatures import sign

from ..conftest import ROOMS
from .server import Server

SECRET = "attack-s3cret"


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def bridge(request, tmp_path_factory):
    folder = tmp_path_factory.mktemp("bridge")
    for name in ("dial-in-bridge.yaml", "dial-in-meetings.csv"):
        shutil.copy(ROOMS / name, folder / name)
    db = str(folder / "roomc.db") if request.param == "sqlite" else \
        request.getfixturevalue("pg_cluster").create_database(f"pin_attacks_{os.getpid()}")
    server = Server(folder / "dial-in-bridge.yaml", db, workers=2, log_path=folder / "server.log",
                    env={"SAUTIKIT_VOICE_SECRET": SECRET, "MEETINGS_FILE": ""}).start()
    yield server
    server.stop()


def post(server: Server, path: str, signed: bool = True, **fields: str):
    body = urllib.parse.urlencode(fields).encode()
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    if signed:
        headers["X-Sautikit-Signature"] = sign(SECRET.encode(), body)
    return server.request("POST", path, body, headers)


def at_pin_step(server: Server, call: str) -> None:
    post(server, "/lobby", callId=call)
    status, answer = post(server, "/lobby", callId=call, digits="123456")
    assert status == 200 and "meeting=123456" in str(answer)


def joined(answer) -> bool:
    return any("join" in action or "conference" in action for action in answer["actions"])


def test_unsigned_guesses_with_made_up_call_ids_are_refused(bridge):
    for call in ("CA-stranger-1", "CA-stranger-2"):
        status, answer = post(bridge, "/pin?meeting=123456", signed=False, callId=call, digits="4321")
        assert status == 403 and "actions" not in answer


def test_pins_posted_at_once_to_two_workers_are_tried_three_times_at_most(bridge):
    at_pin_step(bridge, "CA-burst")
    pins = [f"{n:04d}" for n in range(12)] + ["4321", "1111"]  # the right PINs among them
    answers: dict[str, dict] = {}

    def guess(pin: str) -> None:
        answers[pin] = post(bridge, "/pin?meeting=123456", callId="CA-burst", digits=pin)[1]
    threads = [threading.Thread(target=guess, args=(pin,)) for pin in pins]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    tried = [pin for pin, answer in answers.items() if "Goodbye" not in str(answer) or joined(answer)]
    assert len(answers) == len(pins) and len(tried) <= 3, tried
    assert all(not joined(answer) for pin, answer in answers.items() if pin not in ("4321", "1111"))


@pytest.mark.parametrize("digits", ["٤٣٢١", "４３２１", "4321#", " 4321", "04321", "4321\x00"])
def test_keypad_look_alikes_of_the_host_pin_are_wrong_pins(bridge, digits):
    call = f"CA-alike-{digits.encode().hex()}"
    at_pin_step(bridge, call)
    status, answer = post(bridge, "/pin?meeting=123456", callId=call, digits=digits)
    assert status == 200 and not joined(answer) and "not valid" in str(answer)
    status, answer = post(bridge, "/pin?meeting=123456", callId=call, digits="4321")
    assert status == 200 and joined(answer)  # the look-alike cost one try, nothing more
