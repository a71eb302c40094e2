"""The live room page in a real browser: Debian's headless Chromium, driven by selenium, against
a real `roomc serve` with two worker processes. The Makefile installs chromium and chromium-driver."""
import os
import shutil
import time
from pathlib import Path

import pytest

from roomc.compiler import pipeline
from roomc.compiler.emit import emit

from ..conftest import REGENERATE, ROOMS, ROOT
from .server import Server

pytestmark = pytest.mark.server
CHROMEDRIVER = "/usr/bin/chromedriver"
TOKEN = "browser-t0ken"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("live")
    table = folder / "routes.json"
    table.write_text(emit(pipeline.run([str(ROOMS)]).table))
    running = Server(table, folder / "roomc.db", workers=2, env={"ROOMC_ADMIN_TOKEN": TOKEN}).start()
    yield running
    running.stop()


@pytest.fixture
def browser():
    if not Path(CHROMEDRIVER).exists():
        pytest.fail(f"{CHROMEDRIVER} is missing: `make test` installs chromium and chromium-driver")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,860",
                     "--disable-gpu"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


def wait_for(condition, seconds: float = 10.0, what: str = "condition"):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            value = condition()
            if value:
                return value
        except Exception:  # an element replaced by the stream between lookup and read
            pass
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def sign_in(browser, server, token):
    from selenium.webdriver.common.by import By

    browser.get(server.base + "/ui")
    assert browser.current_url.endswith("/ui/login"), "signed out, the page sends you to the login"
    field = browser.find_element(By.ID, "token")
    field.send_keys(token)
    field.submit()


def row(browser, call: str):
    from selenium.webdriver.common.by import By

    found = browser.find_elements(By.CSS_SELECTOR, f'tr[data-call="{call}"]')
    return found[0] if found else None


def event(server, room: str, kind: str, call: str | None = None, **extra):
    body = {"ConferenceName": room, "StatusCallbackEvent": kind, **extra}
    if call:
        body["CallId"] = call
    status, answer = server.post_json("/conference/events", body)
    assert status == 200 and answer["outcome"] == "stored"


def test_a_wrong_token_is_refused(browser, server):
    from selenium.webdriver.common.by import By

    sign_in(browser, server, "not-the-token")
    assert "not right" in browser.find_element(By.CSS_SELECTOR, ".error").text
    browser.get(server.base + "/ui")
    assert browser.current_url.endswith("/ui/login"), "still signed out"


def test_participants_appear_change_and_leave_without_a_reload(browser, server):
    from selenium.webdriver.common.by import By

    sign_in(browser, server, TOKEN)
    assert browser.current_url.endswith("/ui")
    cookie = next(c for c in browser.get_cookies() if c["name"] == "roomc_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert TOKEN not in browser.current_url
    wait_for(lambda: "live" in browser.find_element(By.ID, "status").get_attribute("class"), what="the stream")
    browser.execute_script("window.notReloaded = true;")

    # Seats are taken and events stored by either worker; the page's stream runs in one of them.
    started = time.monotonic()
    assert server.post_form("/conference/join?room=town-1&host=1", "CallId=host-a")[0] == 200
    wait_for(lambda: row(browser, "host-a"), what="the host's row")
    appeared = time.monotonic() - started
    print(f"a new caller showed on the page {appeared:.3f} s after the request")
    assert appeared < 3.0, f"a new caller showed after {appeared:.2f} s"  # typically 0.1-0.4 s (polls at 0.25 s)
    assert "reserved" in row(browser, "host-a").get_attribute("class")

    server.post_form("/conference/join?room=town-1", "CallId=guest-b")
    event(server, "meeting-town-1", "join", "guest-b")
    wait_for(lambda: "joined" in row(browser, "guest-b").get_attribute("class"), what="guest-b joined")
    hold = row(browser, "guest-b").find_element(By.CSS_SELECTOR, "td.hold")
    assert hold.get_attribute("data-hold-since"), "waiting for the host: on hold"

    event(server, "meeting-town-1", "mute", "guest-b")
    wait_for(lambda: row(browser, "guest-b").find_element(By.CSS_SELECTOR, "td.muted").text == "muted",
             what="guest-b muted")
    event(server, "meeting-town-1", "join", "host-a")
    event(server, "meeting-town-1", "start")
    wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, '[data-room="meeting-town-1"] .badge.started'),
             what="the room started")
    wait_for(lambda: not row(browser, "guest-b").find_element(By.CSS_SELECTOR, "td.hold").get_attribute(
        "data-hold-since"), what="the hold to stop counting")
    event(server, "meeting-town-1", "unmute", "guest-b")
    wait_for(lambda: row(browser, "guest-b").find_element(By.CSS_SELECTOR, "td.muted").text == "",
             what="guest-b unmuted")
    event(server, "meeting-town-1", "leave", "guest-b")
    wait_for(lambda: "left" in row(browser, "guest-b").get_attribute("class"), what="guest-b left")
    assert row(browser, "guest-b").find_element(By.CSS_SELECTOR, "td.left").text.endswith("Z")
    events = browser.find_element(By.CSS_SELECTOR, '[data-room="meeting-town-1"] .events').text
    assert "leave guest-b" in events and "mute guest-b" in events

    if REGENERATE:
        _stage_screenshot(browser, server)
    event(server, "meeting-town-1", "end", RecordingUrl="https://recordings.example.com/town-1.mp3")
    wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, 'a[href="https://recordings.example.com/town-1.mp3"]'),
             what="the recording link")
    assert browser.execute_script("return window.notReloaded === true;"), "the page was never reloaded"

    severe = [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
    assert severe == [], severe

    browser.find_element(By.CSS_SELECTOR, ".logout button").click()
    wait_for(lambda: browser.current_url.endswith("/ui/login"), what="signed out")
    browser.get(server.base + "/ui")
    assert browser.current_url.endswith("/ui/login")


def _stage_screenshot(browser, server):
    """docs/live-page.png, rewritten only with ROOMC_REGENERATE=1 (like the golden files)."""
    from selenium.webdriver.common.by import By

    for call in ("CA7f01", "CA7f02"):
        server.post_form("/conference/join?room=town-1", f"CallId={call}")
        event(server, "meeting-town-1", "join", call)
    event(server, "meeting-town-1", "mute", "CA7f02")
    server.post_form("/conference/join?room=standup-7", "CallId=CA9b11")
    event(server, "meeting-standup-7", "join", "CA9b11")
    server.post_form("/conference/join?room=standup-7", "CallId=CA9b12")
    wait_for(lambda: row(browser, "CA9b12"), what="the second room")
    time.sleep(2.5)  # let the hold clocks count
    browser.find_element(By.TAG_NAME, "body")
    target = ROOT / "docs" / "live-page.png"
    browser.save_screenshot(str(target.with_suffix(".tmp.png")))
    shutil.move(str(target.with_suffix(".tmp.png")), str(target))
    assert os.path.getsize(target) > 10_000
