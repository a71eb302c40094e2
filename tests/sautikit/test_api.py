"""The local Sautikit's calls API as the official SDK (sautikit-node v0.5.0) expects it; every response is also
checked against the SDK's types by the `sdk_contract` fixture (tests/conftest.py)."""
from urllib.parse import parse_qs

import pytest

from roomc.sautikit.engine import Platform, VirtualClock
from roomc.sautikit.local_server import RECORDING_TTL, create_local_app

from .contract import contract_problems

KEY = "tsk_live_local"
AUTH = {"Authorization": f"Bearer {KEY}"}
NUMBER = "+254700000001"


@pytest.fixture
def api():
    platform = Platform(VirtualClock(), epoch=1.8e9)
    client = create_local_app(platform, api_key=KEY).test_client()

    def call(method, path, body=None, headers=None, **kwargs):
        response = client.open(path, method=method, json=body, headers={**AUTH, **(headers or {})}, **kwargs)
        return response.status_code, response.get_json(silent=True), response
    return platform, call


def error(result, status, code):
    got, body, response = result
    assert (got, body["error"]["code"]) == (status, code), body
    assert body["error"]["request_id"] and body["error"]["message"]
    assert response.mimetype == "application/json"


def test_the_contract_checker_catches_what_the_issue_found():
    call = {"id": "c", "session_id": "HD_1", "status": "ringing", "client_request_id": None}
    problems = contract_problems([
        {"method": "GET", "path": "/v1/calls/c", "status": 200, "body": {"call": call}, "location": None},
        {"method": "GET", "path": "/v1/calls/c/recording", "status": 404, "body": None, "location": None},
        {"method": "GET", "path": "/v1/nothing", "status": 200, "body": {}, "location": None},
    ])
    text = "\n".join(problems)
    assert "'workspace_id' is a required property" in text and "'events' is a required property" in text
    assert "client_request_id" in text  # the real API has no such field on a Call
    assert "recording -> 404: body: None is not of type 'object'" in text  # an HTML error page
    assert "no such response in the SDK's contract" in text


def test_a_plain_create_without_a_callback_url(api):
    platform, call = api
    status, created, _ = call("POST", "/v1/calls", {"from": NUMBER, "to": "+254711000001"})
    assert status == 201 and set(created) == {"call_id", "session_id", "status"}  # no client_request_id: none sent
    platform.run_until_idle()
    _, got, _ = call("GET", f"/v1/calls/{created['call_id']}")
    record = got["call"]
    assert record["status"] == "completed" and record["failure_code"] == "no_voice_url"
    assert [e["kind"] for e in record["events"]] == ["call.initiated", "call.answered", "call.completed"]
    assert record["workspace_id"] and record["country"] == "KE" and record["updated_at"] >= record["created_at"]


def test_an_mcp_call_plays_its_opening_then_its_fallback(api):
    platform, call = api
    status, created, _ = call("POST", "/v1/calls", {
        "from": NUMBER, "to": ["+254711000001"], "control": "mcp", "hold_audio_url": "https://cdn.example.com/h.mp3",
        "control_timeout_ms": 2000, "opening_actions": [{"say": {"text": "Hello"}}],
        "fallback_actions": [{"say": {"text": "Goodbye"}}, {"hangup": {}}]})
    assert status == 201
    platform.run_until_idle()
    heard = [e.what for e in platform.timeline]
    assert heard.index('hears "Hello"') < heard.index('hears "Goodbye"')
    assert platform.legs[created["call_id"]].status == "completed"


@pytest.mark.parametrize("body, words", [
    ({"from": 254700000001, "to": ["+254711000001"]}, "from must be an E.164 number as a string"),
    ({"from": NUMBER, "to": [254711000001]}, "to[0] must be an E.164 number"),
    ({"from": NUMBER, "to": ["0711000001"]}, "to[0] must be an E.164 number"),
    ({"from": NUMBER, "to": []}, "to must be an E.164 number or a non-empty list"),
    ({"from": NUMBER, "to": "+254711000001", "voice_callback_url": "example.com/v"}, "voice_callback_url must be"),
    ({"from": NUMBER, "to": "+254711000001", "client_request_id": "mcp:steal"}, "must not begin with mcp:"),
    ({"from": NUMBER, "to": "+254711000001", "client_request_id": "broadcast:x"}, "must not begin with mcp:"),
    ({"from": NUMBER, "to": "+254711000001", "client_request_id": "a\nb"}, "control characters"),
    ({"from": NUMBER, "to": "+254711000001", "control": "mcp", "voice_callback_url": "https://x.example/v"},
     "mutually exclusive"),
    ({"from": NUMBER, "to": "+254711000001", "caller_id": "12345"}, "caller_id must be an E.164"),
    ({"from": NUMBER, "to": "+254711000001", "opening_actions": [{"say": {}}]}, "opening_actions must be"),
    ([1, 2], "the body must be a JSON object"),
])
def test_create_refuses_what_the_platform_refuses(api, body, words):
    _, call = api
    result = call("POST", "/v1/calls", body)
    error(result, 400, "calls.invalid_request")
    assert words in result[1]["error"]["message"]


def test_caller_id_and_every_destination(api, webhook):
    base, _, received = webhook
    platform, call = api
    status, created, _ = call("POST", "/v1/calls", {
        "from": NUMBER, "to": ["+254711000001", "+254711000002"], "callerId": "+254700000009",
        "voice_callback_url": base + "/v", "client_request_id": "order-8842"})
    assert status == 201 and created["client_request_id"] == "order-8842"
    platform.run_until_idle()
    _, page, _ = call("GET", "/v1/calls")
    assert sorted(c["remote_e164"] for c in page["data"]) == ["+254711000001", "+254711000002"]
    assert all(c["metadata"]["caller_id"] == "+254700000009" for c in page["data"])
    assert all("client_request_id" not in c for c in page["data"])  # only the create response and callbacks
    assert [parse_qs(body.decode())["clientRequestId"] for path, body, _ in received] == [["order-8842"]] * 2


def test_a_label_the_pbx_refuses_is_echoed_but_never_rides_the_call(api, webhook):
    base, _, received = webhook
    platform, call = api
    _, created, _ = call("POST", "/v1/calls", {"from": NUMBER, "to": "+254711000001", "voice_callback_url": base,
                                               "client_request_id": '{"order": 1}'})
    assert created["client_request_id"] == '{"order": 1}'
    platform.run_until_idle()
    assert "clientRequestId" not in parse_qs(received[0][1].decode())


def test_list_filters_paging_and_bad_queries(api):
    platform, call = api
    ids = [call("POST", "/v1/calls", {"from": NUMBER, "to": f"+25471100000{i}"})[1] for i in range(5)]
    platform.place_call(local=NUMBER, remote="+254722000001", url=None, direction="inbound", when=100)
    platform.run_until_idle()
    _, page, _ = call("GET", "/v1/calls?limit=2")
    assert len(page["data"]) == 2 and page["next_cursor"] == "2"
    seen = []
    cursor = None
    for _ in range(10):
        _, page, _ = call("GET", "/v1/calls?limit=2" + (f"&cursor={cursor}" if cursor else ""))
        seen += [c["id"] for c in page["data"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert len(seen) == len(set(seen)) == 6
    assert [c["direction"] for c in call("GET", "/v1/calls?direction=inbound")[1]["data"]] == ["inbound"]
    assert len(call("GET", "/v1/calls?status=completed,failed")[1]["data"]) == 6
    assert call("GET", "/v1/calls?status=ringing")[1]["data"] == []
    assert [c["remote_e164"] for c in call("GET", "/v1/calls?q=711000003")[1]["data"]] == ["+254711000003"]
    session = ids[1]["session_id"]
    assert [c["session_id"] for c in call("GET", f"/v1/calls?session_id={session}")[1]["data"]] == [session]
    assert len(call("GET", "/v1/calls?from=1800000050")[1]["data"]) == 1  # only the inbound call, at 100 s
    assert len(call("GET", "/v1/calls?to=2027-01-15T08:00:10Z")[1]["data"]) == 5
    for query, code in [("limit=abc", "calls.invalid_request"), ("limit=0", "calls.invalid_request"),
                        ("limit=101", "calls.invalid_request"), ("cursor=-1", "calls.invalid_cursor"),
                        ("cursor=abc", "calls.invalid_cursor"), ("direction=sideways", "calls.invalid_request"),
                        ("status=lost", "calls.invalid_request"), ("from=yesterday", "calls.invalid_request")]:
        error(call("GET", f"/v1/calls?{query}"), 400, code)


def test_get_and_hangup_by_id_or_session_id(api, webhook):
    base, replies, _ = webhook
    replies.append({"actions": [{"conference": {"name": "r"}}]})
    platform, call = api
    _, created, _ = call("POST", "/v1/calls", {"from": NUMBER, "to": "+254711000001", "voice_callback_url": base})
    platform.run_until_idle()
    assert call("GET", f"/v1/calls/{created['session_id']}")[1]["call"]["id"] == created["call_id"]
    status, hung, _ = call("POST", f"/v1/calls/{created['session_id']}/hangup")
    assert (status, hung) == (200, {"call_id": created["call_id"], "status": "hung_up"})
    platform.run_until_idle()
    assert call("POST", f"/v1/calls/{created['call_id']}/hangup")[1]["status"] == "hung_up"  # idempotent
    assert call("GET", f"/v1/calls/{created['call_id']}")[1]["call"]["status"] == "completed"
    error(call("POST", "/v1/calls/HD_nothing/hangup"), 404, "calls.not_found")
    error(call("GET", "/v1/calls/nothing"), 404, "calls.not_found")


def test_stats(api, webhook):
    base, replies, _ = webhook
    replies.extend([{"actions": [{"say": {"text": "x" * 150}}]}, ("500 Internal Server Error", b"oops")])
    platform, call = api
    for number in ("+254711000001", "+254711000002"):
        call("POST", "/v1/calls", {"from": NUMBER, "to": number, "voice_callback_url": base})
    platform.run_until_idle()
    status, stats, _ = call("GET", "/v1/calls/stats?since=7d&bucket=hour")
    assert status == 200 and (stats["total"], stats["failed"], stats["currency"]) == (2, 1, "KES")
    assert stats["spend_minor"] == 50 and stats["minutes_total"] == round(10 / 60, 2)  # 10 s answered, outbound
    assert sum(b["total"] for b in stats["series"]) == 2
    assert all(b["completed"] + b["missed"] + b["failed"] == b["total"] for b in stats["series"])
    assert "series" not in call("GET", "/v1/calls/stats")[1]
    error(call("GET", "/v1/calls/stats?bucket=week"), 400, "calls.invalid_request")
    error(call("GET", "/v1/calls/stats?since=soon"), 400, "calls.invalid_request")


def test_recording_pending_ready_expired(api, webhook):
    base, replies, _ = webhook
    replies.extend([{"actions": [{"record": {"maxLength": 60}}, {"hangup": {}}]}, {"actions": [{"hangup": {}}]}])
    platform, call = api
    _, recorded, _ = call("POST", "/v1/calls", {"from": NUMBER, "to": "+254711000001", "voice_callback_url": base})
    _, plain, _ = call("POST", "/v1/calls", {"from": NUMBER, "to": "+254711000002", "voice_callback_url": base})
    platform.clock.t = 10
    with platform.lock:
        while platform.queue and platform.queue[0][0] <= 10:
            platform.queue.pop(0)[2]()  # answer both calls; the recording is under way
    status, pending, _ = call("GET", f"/v1/calls/{recorded['call_id']}/recording")
    assert status == 202 and pending == {"status": "pending", "retry_after_seconds": 10}
    platform.run_until_idle()
    status, _, response = call("GET", f"/v1/calls/{recorded['session_id']}/recording")
    assert status == 302 and response.headers["Location"].endswith(f"/{recorded['call_id']}.mp3")
    error(call("GET", f"/v1/calls/{plain['call_id']}/recording"), 404, "calls.recording_not_found")
    error(call("GET", "/v1/calls/nothing/recording"), 404, "calls.not_found")
    platform.clock.t += RECORDING_TTL + 1
    error(call("GET", f"/v1/calls/{recorded['call_id']}/recording"), 410, "calls.recording_expired")


def test_supervision(api, webhook):
    base, replies, _ = webhook
    replies.append({"actions": [{"conference": {"name": "r"}}]})
    platform, call = api
    _, created, _ = call("POST", "/v1/calls", {"from": NUMBER, "to": "+254711000001", "voice_callback_url": base})
    platform.clock.t = 5
    with platform.lock:
        while platform.queue and platform.queue[0][0] <= 5:
            platform.queue.pop(0)[2]()
    path = f"/v1/calls/{created['call_id']}/supervision"
    assert call("GET", path)[1] == {"supervision": None}
    body = {"mode": "listen", "supervisor": {"type": "client", "identity": "mary"}, "label": "Mary"}
    status, first, _ = call("POST", path, body, headers={"Idempotency-Key": "s1"})
    assert status == 201 and first["state"] == "connecting" and first["supervisor"]["label"] == "Mary"
    assert call("POST", path, body, headers={"Idempotency-Key": "s1"})[1] == first  # a replay, not a second one
    result = call("POST", path, {"mode": "listen", "supervisor": {"type": "client", "identity": "john"}})
    error(result, 409, "calls.supervision_in_progress")
    assert "Mary" in result[1]["error"]["message"]
    error(call("PATCH", path, {"mode": "whisper"}), 409, "calls.supervision_not_connected")
    platform.clock.t = 9
    with platform.lock:
        platform.queue.pop(0)[2]()  # the supervisor answers
    status, switched, _ = call("PATCH", f"/v1/calls/{created['session_id']}/supervision", {"mode": "whisper"})
    assert status == 200 and (switched["mode"], switched["state"]) == ("whisper", "connected")
    error(call("PATCH", path, {"mode": "shout"}), 400, "calls.invalid_request")
    error(call("POST", path, {"mode": "listen", "supervisor": {"type": "phone", "number": "07"}}), 400,
          "calls.invalid_request")
    platform.clock.t = 129  # two minutes of whispering
    assert call("DELETE", path)[0] == 204 and call("DELETE", path)[0] == 204  # idempotent
    assert call("GET", path)[1] == {"supervision": None}
    error(call("PATCH", path, {"mode": "barge"}), 404, "calls.supervision_not_found")
    call("POST", f"/v1/calls/{created['call_id']}/hangup")
    platform.run_until_idle()
    error(call("POST", path, body), 409, "calls.not_active")
    error(call("GET", "/v1/calls/nothing/supervision"), 404, "calls.not_found")
    _, bill, _ = call("GET", "/v1/local/report")
    supervisor, = [leg for leg in bill["legs"] if leg["direction"] == "supervisor"]
    assert (supervisor["durationSeconds"], supervisor["costMinor"]) == (120, 100)  # KES 0.50 a minute, a browser
    assert bill["totalMinor"] == sum(leg["costMinor"] for leg in bill["legs"])


def test_every_error_is_the_platform_envelope(api, monkeypatch):
    platform, call = api
    error(call("GET", "/v1/nothing"), 404, "route.not_found")
    error(call("PUT", "/v1/calls"), 405, "route.method_not_allowed")
    error(call("POST", "/v1/calls", headers={"Content-Type": "application/json"}, data=b"{not json"), 400,
          "calls.invalid_request")
    error(call("GET", "/v1/calls", headers={"Authorization": "Bearer wrong"}), 401, "api_key.invalid")

    def broken(call_id):
        raise RuntimeError("disk on fire")
    monkeypatch.setattr(platform, "find", broken)  # an internal failure, injected
    error(call("GET", "/v1/calls/x"), 500, "internal_error")


def test_idempotency_key_replays_and_refuses_another_body(api):
    _, call = api
    body = {"from": NUMBER, "to": "+254711000001"}
    first = call("POST", "/v1/calls", body, headers={"Idempotency-Key": "k"})[1]
    assert call("POST", "/v1/calls", body, headers={"Idempotency-Key": "k"})[1] == first
    error(call("POST", "/v1/calls", {**body, "to": "+254711000002"}, headers={"Idempotency-Key": "k"}), 409,
          "idempotency.conflict")


# -- hostile values the local server once answered with a 500 or took as they came ---------------
@pytest.mark.parametrize("path", [
    "/v1/calls/stats?since=1e400", "/v1/calls/stats?since=-99999999999999", "/v1/calls/stats?since=nan&bucket=hour",
    "/v1/calls/stats?since=inf", "/v1/calls?from=nan", "/v1/calls?from=inf", "/v1/calls?to=1e400",
    "/v1/calls?to=-inf", "/v1/calls?from=99999999999999999999",
])
def test_impossible_times_are_refused_with_a_400(api, path):
    _, call = api
    result = call("GET", path)
    error(result, 400, "calls.invalid_request")
    assert "unix seconds" in result[1]["error"]["message"]


@pytest.mark.parametrize("path, body, words", [
    ("/v1/calls", {"from": NUMBER, "to": "+254711000001", "local_hangup_after": 1e999}, "local_hangup_after"),
    ("/v1/calls", {"from": NUMBER, "to": "+254711000001", "local_hangup_after": 10 ** 12}, "local_hangup_after"),
    ("/v1/local/inbound", {"from": "+254711000001", "to": NUMBER, "url": "http://127.0.0.1:9/", "hangup_after": 1e999},
     "hangup_after"),
    ("/v1/local/inbound", {"from": "+254711000001", "to": NUMBER, "url": "http://127.0.0.1:9/", "hangup_after": "y"},
     "hangup_after"),
    ("/v1/local/inbound", {"from": "+254711000001", "to": NUMBER, "url": "http://127.0.0.1:9/", "digits": "12"},
     "digits"),
    ("/v1/calls", {"from": NUMBER, "to": ["+2547110%05d" % i for i in range(3000)]}, "at most 100"),
])
def test_local_extensions_and_destinations_are_bounded(api, path, body, words):
    platform, call = api
    result = call("POST", path, body)
    error(result, 400, "calls.invalid_request")
    assert words in result[1]["error"]["message"]
    assert not platform.legs  # nothing was placed


def test_a_hundred_destinations_are_dialled(api):
    platform, call = api
    status, body, _ = call("POST", "/v1/calls", {"from": NUMBER, "to": ["+2547110%05d" % i for i in range(100)]})
    assert status == 201, body
    assert len(platform.legs) == 100
