"""The live room page's access rules and stream, through Flask's test client (the browser test is test_live_page.py)."""
import re
import time

import pytest

from roomc.runtime import Settings, create_app
from roomc.runtime import ui
from roomc.runtime.ui import duration, render_text, snapshot

ORIGIN = {"Origin": "http://localhost"}


@pytest.fixture
def ui_app(rooms_table, store):
    settings = Settings(public_url="https://rooms.example.com", admin_token="s3cret-token", ui_stream_seconds=0.6)
    application = create_app(rooms_table, store=store, settings=settings)
    application.config["TESTING"] = True
    return application


def csrf_of(response) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', response.get_data(as_text=True)).group(1)


def sign_in(client, token="s3cret-token", headers=ORIGIN):
    csrf = csrf_of(client.get("/ui/login"))
    return client.post("/ui/login", data={"csrf": csrf, "token": token}, headers=headers)


def test_the_page_is_off_without_an_admin_token(rooms_table, store):
    client = create_app(rooms_table, store=store, settings=Settings()).test_client()
    for path in ("/ui", "/ui/login", "/ui/stream", "/ui/static/ui.js"):
        assert client.get(path).status_code == 404, path
    assert client.post("/ui/login", data={"token": ""}).status_code == 404


def test_sign_in_sets_a_strict_http_only_session_cookie(ui_app):
    client = ui_app.test_client()
    assert client.get("/ui").headers["Location"] == "/ui/login"
    answer = sign_in(client)
    assert answer.status_code == 303 and answer.headers["Location"] == "/ui"
    cookie = answer.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/ui" in cookie
    assert "s3cret-token" not in cookie
    page = client.get("/ui")
    assert page.status_code == 200 and "live rooms" in page.get_data(as_text=True)
    assert "script-src" not in page.headers["Content-Security-Policy"]  # default-src 'self' covers scripts
    assert "'unsafe-inline'" not in page.headers["Content-Security-Policy"]


def test_a_wrong_token_is_refused(ui_app):
    client = ui_app.test_client()
    answer = sign_in(client, token="s3cret-tokeN")
    assert answer.status_code == 401 and "not right" in answer.get_data(as_text=True)
    assert client.get("/ui").status_code == 303
    assert client.get("/ui/stream").status_code == 401


def test_a_token_in_the_url_does_nothing(ui_app):
    client = ui_app.test_client()
    assert client.get("/ui?token=s3cret-token").status_code == 303
    assert client.get("/ui/login?token=s3cret-token").status_code == 200
    assert client.get("/ui").status_code == 303


def test_sign_in_needs_the_form_token_and_this_origin(ui_app):
    client = ui_app.test_client()
    client.get("/ui/login")
    no_form_token = client.post("/ui/login", data={"token": "s3cret-token"}, headers=ORIGIN)
    assert no_form_token.status_code == 400
    assert sign_in(client, headers={"Origin": "https://evil.example"}).status_code == 400
    assert sign_in(client, headers={}).status_code == 400, "neither Origin nor Referer: refused"
    assert client.get("/ui").status_code == 303
    assert sign_in(client, headers={"Referer": "http://localhost/ui/login"}).status_code == 303


def test_sign_out_needs_the_form_token(ui_app):
    client = ui_app.test_client()
    sign_in(client)
    assert client.post("/ui/logout", headers=ORIGIN).status_code == 400
    assert client.get("/ui").status_code == 200, "still signed in"
    csrf = csrf_of(client.get("/ui"))
    assert client.post("/ui/logout", data={"csrf": csrf}, headers=ORIGIN).headers["Location"] == "/ui/login"
    assert client.get("/ui").status_code == 303


def test_the_json_admin_api_keeps_its_bearer_token(ui_app):
    client = ui_app.test_client()
    sign_in(client)
    assert client.get("/rooms").status_code == 401, "the page's cookie is not a bearer token"
    assert client.get("/rooms", headers={"Authorization": "Bearer s3cret-token"}).status_code == 200


def test_the_page_shows_participants_hold_times_events_and_recordings(ui_app):
    client = ui_app.test_client()
    client.post("/conference/join?room=town&host=1", data="CallId=host-1")
    client.post("/conference/join?room=town", data="CallId=guest-1")
    client.post("/conference/events", json={"ConferenceName": "meeting-town", "StatusCallbackEvent": "join", "CallId": "guest-1"})
    client.post("/conference/events", json={"ConferenceName": "meeting-town", "StatusCallbackEvent": "mute", "CallId": "guest-1"})
    client.post("/conference/events", json={"ConferenceName": "<b>x</b>", "StatusCallbackEvent": "join", "CallId": "<i>"})
    sign_in(client)
    html = client.get("/ui").get_data(as_text=True)
    assert 'data-room="meeting-town"' in html and 'data-call="guest-1"' in html and 'data-call="host-1"' in html
    guest = html[html.index('data-call="guest-1"'):]
    guest = guest[:guest.index("</tr>")]
    assert "muted" in guest and "participant" in guest and "data-hold-since" in guest
    assert "<b>x</b>" not in html and "&lt;b&gt;x&lt;/b&gt;" in html, "names from callers are escaped"
    client.post("/conference/events", json={"ConferenceName": "meeting-town", "StatusCallbackEvent": "end",
                                            "RecordingUrl": "https://rec.example/town.mp3"})
    client.post("/conference/events", json={"ConferenceName": "old", "StatusCallbackEvent": "end",
                                            "RecordingUrl": "https://rec.example/old.mp3"})
    time.sleep(ui.MIN_RENDER_SECONDS + 0.05)  # the page shows the shared render, redrawn at most this often
    html = client.get("/ui").get_data(as_text=True)
    assert 'href="https://rec.example/town.mp3"' in html, "meeting-town ended but host-1's seat is still held: live, with its recording"
    assert "Recently ended" in html and 'href="https://rec.example/old.mp3"' in html


def test_the_stream_sends_the_rooms_and_ends_by_itself(ui_app):
    client = ui_app.test_client()
    sign_in(client)
    client.post("/conference/join?room=s1", data="CallId=c-9")
    response = client.get("/ui/stream")
    assert response.mimetype == "text/event-stream"
    body = response.get_data(as_text=True)  # returns because the stream's lifetime is bounded (0.6 s here)
    assert body.startswith("retry: ")
    assert "event: rooms\n" in body and 'data: <tr class="person reserved" data-call="c-9">' in body.replace("      ", "")


def test_streams_are_capped_per_worker(rooms_table, store):
    settings = Settings(admin_token="t", ui_streams=1, ui_stream_seconds=5)
    app = create_app(rooms_table, store=store, settings=settings)
    client = app.test_client()
    csrf = csrf_of(client.get("/ui/login"))
    client.post("/ui/login", data={"csrf": csrf, "token": "t"}, headers=ORIGIN)
    first = client.get("/ui/stream", buffered=False)
    next(first.response)  # the first stream is open and holds the one place
    assert client.get("/ui/stream").status_code == 503
    first.close()
    second = client.get("/ui/stream", buffered=False)
    assert second.status_code == 200, "closing a stream gives its place back"
    second.close()


def test_hold_time_counts_until_the_room_starts(store):
    import time

    from roomc.runtime.normalise import event
    base = float(int(time.time()))  # event times far from the arrival time are not believed
    store.reserve("h", "early", "member", counted=True, limit=5, ttl=600, muted=False, now=base)
    store.reserve("h", "late", "member", counted=True, limit=5, ttl=600, muted=False, now=base)
    store.record(event({"ConferenceName": "h", "StatusCallbackEvent": "join", "CallId": "early", "Timestamp": base}))
    view = snapshot(store, now=base + 30)
    people = {p["callId"]: p for p in view["rooms"][0]["people"]}
    assert people["early"]["holdSeconds"] == 30 and people["early"]["holding"]
    store.record(event({"ConferenceName": "h", "StatusCallbackEvent": "start", "Timestamp": base + 45}))
    people = {p["callId"]: p for p in snapshot(store, now=base + 100)["rooms"][0]["people"]}
    assert people["early"]["holdSeconds"] == 45 and not people["early"]["holding"]
    assert people["late"]["holdSeconds"] == 45, "a reservation waits from the moment it was taken"
    text = render_text(snapshot(store, now=base + 100))
    assert "early" in text and "on hold 0:45" in text
    assert duration(3725) == "1:02:05" and duration(65) == "1:05" and duration(None) == ""


def test_a_line_with_many_rooms_shows_fifty_in_full_and_lists_the_rest(ui_app, store):
    from roomc.runtime import ui

    for i in range(ui.FULL_ROOMS + 12):
        store.reserve(f"busy-{i:03d}", f"c{i}", "participant", counted=True, limit=10, ttl=600, muted=False)
    view = snapshot(store)
    assert len(view["rooms"]) == ui.FULL_ROOMS and len(view["more"]) == 12 and view["unlisted"] == 0
    client = ui_app.test_client()
    sign_in(client)
    html = client.get("/ui").get_data(as_text=True)
    assert "12 more live rooms" in html and 'data-room="busy-061"' in html
    assert "12 more live rooms" in render_text(view)


def test_the_fragment_is_rendered_at_most_twice_a_second_under_a_stream_of_writes(ui_app, store):
    import time

    from roomc.runtime.ui import LiveView

    view = LiveView(ui_app, store)
    first = view.current()
    store.reserve("w", "a", "participant", counted=True, limit=10, ttl=600, muted=False)
    assert view.current() == first, "a change within 0.5 s of the last render waits for the next"
    time.sleep(0.55)
    assert 'data-call="a"' in view.current(), "and shows after it"


def _cookie(client) -> str:
    return client.get_cookie("roomc_session", path="/ui").value


def test_sign_out_revokes_the_session_even_for_a_copied_cookie(ui_app):
    # A cookie copied before sign-out (from a shared machine, a proxy log) must not keep working:
    # sign-out is recorded in the store, which every worker and instance reads.
    client = ui_app.test_client()
    sign_in(client)
    copied = _cookie(client)
    thief = ui_app.test_client()
    thief.set_cookie("roomc_session", copied, path="/ui")
    assert thief.get("/ui").status_code == 200
    csrf = csrf_of(client.get("/ui"))
    client.post("/ui/logout", data={"csrf": csrf}, headers=ORIGIN)
    assert thief.get("/ui").status_code == 303, "a signed-out session still opened the page"
    assert thief.get("/ui/stream").status_code == 401
    stream = ui_app.extensions["roomc"]["streams"]["/ui/stream"]
    assert not stream.signed_in({"HTTP_COOKIE": f"roomc_session={copied}"})
    sign_in(client)  # signing in again gives a new, working session
    assert client.get("/ui").status_code == 200


def test_a_session_from_before_revocation_existed_must_sign_in_again(ui_app):
    # Cookies issued before sessions had ids cannot be revoked, so they no longer count.
    client = ui_app.test_client()
    with client.session_transaction() as session:
        session["admin"] = True
    assert client.get("/ui").status_code == 303


def test_wrong_tokens_are_rate_limited_per_address_and_the_right_one_waits_too(ui_app):
    client = ui_app.test_client()
    for _ in range(ui.LOGIN_FAILURES_PER_ADDRESS):
        assert sign_in(client, token="guess").status_code == 401
    limited = sign_in(client, token="guess")
    assert limited.status_code == 429 and int(limited.headers["Retry-After"]) > 0
    assert "too many" in limited.get_data(as_text=True).lower()
    assert sign_in(client).status_code == 429, "the right token must not be told apart while limited"

def test_the_login_limit_is_per_address_and_bounded_in_memory(ui_app):
    limiter = ui.LoginLimiter(per_address=3, overall=1000, window=60.0, max_addresses=100)
    for i in range(3):
        assert limiter.wait("10.0.0.1", now=100.0 + i) == 0
        limiter.failed("10.0.0.1", now=100.0 + i)
    assert limiter.wait("10.0.0.1", now=103.0) > 0
    assert limiter.wait("10.0.0.2", now=103.0) == 0, "another address is not punished"
    assert limiter.wait("10.0.0.1", now=161.0) == 0, "the window passes"
    for i in range(10_000):  # a spray of addresses keeps memory bounded
        limiter.failed(f"10.1.{i // 256}.{i % 256}", now=200.0)
    assert len(limiter.addresses) <= 100
    spray = ui.LoginLimiter(per_address=3, overall=20, window=60.0, max_addresses=100)
    for i in range(20):
        spray.failed(f"10.2.0.{i}", now=300.0)
    assert spray.wait("10.9.9.9", now=301.0) > 0, "many addresses guessing at once are limited together"


def test_sign_in_through_a_tls_proxy_with_the_public_url_origin(ui_app):
    # Behind a TLS-terminating proxy the browser's Origin is the public https URL while the
    # server sees http://: the public URL's origin is accepted, and the cookie is then Secure.
    client = ui_app.test_client()
    proxied = "http://rooms.example.com"  # what the proxy forwards: the public host, over plain HTTP
    csrf = csrf_of(client.get("/ui/login", base_url=proxied))
    answer = client.post("/ui/login", data={"csrf": csrf, "token": "s3cret-token"}, base_url=proxied,
                         headers={"Origin": "https://rooms.example.com"})
    assert answer.status_code == 303, answer.get_data(as_text=True)
    assert "Secure" in answer.headers["Set-Cookie"]
    assert sign_in(ui_app.test_client(), headers={"Origin": "https://rooms.example.com.evil.example"}).status_code == 400
    assert sign_in(ui_app.test_client(), headers={"Origin": "http://rooms.example.com"}).status_code == 400


def test_raised_hands_and_operator_requests_show_on_the_page_and_in_the_terminal(ui_app, store):
    client = ui_app.test_client()
    for call in ("asker", "caller", "quiet"):
        client.post("/townhall/join?room=k1", data=f"CallId={call}")
    assert client.post("/townhall/keys?room=townhall-k1", json={"Digits": "1", "CallId": "asker"}).get_json()[
        "effect"] == "raiseHand"
    client.post("/townhall/keys?room=townhall-k1", json={"Digits": "0", "CallId": "caller"})
    sign_in(client)
    time.sleep(ui.MIN_RENDER_SECONDS + 0.05)
    html = client.get("/ui").get_data(as_text=True)
    room = html[html.index('data-room="townhall-k1"'):]
    assert "1 hand raised" in room and "operator requested (1)" in room
    row = lambda call: room[room.index(f'data-call="{call}"'):][:room[room.index(f'data-call="{call}"'):].index("</tr>")]  # noqa: E731
    assert "hand raised" in row("asker") and "operator" not in row("asker")
    assert 'class="operator"' in row("caller") and "hand raised" not in row("quiet")
    text = render_text(snapshot(store))
    assert "asker" in text and "HAND since" in text and "! operator requested by caller" in text
