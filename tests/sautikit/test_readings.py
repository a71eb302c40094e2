"""Each platform reading the local Sautikit can play, against a real webhook server on loopback."""
import json
import time
from urllib.parse import parse_qs

import pytest

from roomc.runtime.signatures import verify
from roomc.sautikit.engine import Platform, VirtualClock
from roomc.sautikit.readings import Readings
from roomc.sautikit.simulate import ScenarioError, run

from ..conftest import ROOMS

SECRET = b"s3cret"
NUMBER, CALLER = "+254700000001", "+254733000001"


def platform(**readings) -> Platform:
    return Platform(VirtualClock(), secret=SECRET, readings=Readings(**readings))


def conference(base, **extra):
    return {"actions": [{"conference": {"name": "r", "statusEventsCallbackUrl": base + "/events",
                                        "statusEvents": "start end join leave", **extra}}]}


def events(received):
    return [(json.loads(body), signature) for path, body, signature in received if path == "/events"]


@pytest.mark.parametrize("digits_to, second_path", [("answering-url", "/pin"), ("voice-callback-url", "/lobby")])
def test_digits_go_where_the_reading_says(webhook, digits_to, second_path):
    base, replies, received = webhook
    replies.extend([{"actions": [{"redirect": {"url": base + "/pin?meeting=1"}}]},
                    {"actions": [{"getDigits": {"numDigits": 4}}]}, {"actions": [{"hangup": {}}]}])
    engine = platform(digits_to=digits_to)
    engine.place_call(local=NUMBER, remote=CALLER, url=base + "/lobby", direction="inbound", digits=["4321"])
    engine.run_until_idle()
    paths = [path for path, _, _ in received]
    assert paths == ["/lobby", "/pin", second_path]
    assert parse_qs(received[2][1].decode())["Digits"] == ["4321"]


@pytest.mark.parametrize("signed", [True, False])
def test_status_events_signed_or_not_while_voice_callbacks_stay_signed(webhook, signed):
    base, replies, received = webhook
    replies.append(conference(base))
    engine = platform(events_signed=signed)
    engine.place_call(local=NUMBER, remote=CALLER, url=base + "/join", hangup_after=10)
    engine.run_until_idle()
    assert verify(SECRET, received[0][2], received[0][1]) is None  # the voice callback
    delivered = events(received)
    assert [body.get("StatusCallbackEvent") for body, _ in delivered] == ["join", "start", "leave", "end"]
    for _path, body, signature in received[1:]:
        assert (signature is not None) is signed
        if signed:
            assert verify(SECRET, signature, body) is None


def test_event_shapes(webhook):
    base, replies, received = webhook
    shapes = {}
    for shape in ("twilio", "thirdparty", "sautikit-envelope"):
        received.clear()
        replies.append(conference(base, record=True))
        engine = platform(event_shape=shape)
        leg = engine.place_call(local=NUMBER, remote=CALLER, url=base + "/join", hangup_after=10)
        engine.run_until_idle()
        shapes[shape] = (leg, [body for body, _ in events(received)])
    leg, twilio = shapes["twilio"]
    assert twilio[0]["ConferenceName"] == "r" and twilio[0]["StatusCallbackEvent"] == "join"
    assert twilio[0]["CallId"] == leg.id and "EventId" in twilio[0] and twilio[-1]["RecordingUrl"]
    leg, third = shapes["thirdparty"]
    assert third[0] == {"conferenceName": "r", "event": "join", "participants": 1, "participant_id": "1",
                        "caller": CALLER}  # no call id, no event id, no time: what integrator code parses
    assert third[-1]["event"] == "end" and third[-1]["recording_url"].endswith("/r-1.mp3")
    leg, envelope = shapes["sautikit-envelope"]
    assert envelope[0]["kind"] == "conference.join" and envelope[0]["event_id"] and envelope[0]["occurred_at"]
    assert envelope[0]["data"]["call_id"] == leg.id and envelope[0]["data"]["event"] == "join"


@pytest.mark.parametrize("default, starts", [(True, True), (False, False)])
def test_start_on_enter_unset(webhook, default, starts):
    base, replies, _ = webhook
    replies.append({"actions": [{"conference": {"name": "r"}}]})
    engine = platform(start_on_enter_default=default)
    engine.place_call(local=NUMBER, remote=CALLER, url=base + "/join", hangup_after=10)
    engine.run_until_idle()
    assert any(e.what == "starts r" for e in engine.timeline) is starts
    assert any(e.what.startswith("waits on hold") for e in engine.timeline) is not starts


@pytest.mark.parametrize("resign", [True, False])
def test_retries_on_the_documented_schedule_resigned_or_stale(webhook, resign):
    base, replies, received = webhook
    replies.append({"actions": [{"conference": {"name": "r", "statusEventsCallbackUrl": base + "/events",
                                                "statusEvents": "join"}}]})
    replies.extend([("503 Service Unavailable", b"{}")] * 3)  # join fails three times: attempts at 0, 30, 150 s
    engine = platform(retry_resign=resign, retry_schedule="documented")
    engine.place_call(local=NUMBER, remote=CALLER, url=base + "/join", hangup_after=3600)
    engine.run_until_idle()
    attempts = events(received)
    assert len(attempts) == 4 and len({body["EventId"] for body, _ in attempts}) == 1
    stamps = [int(signature.split(",")[0][2:]) for _, signature in attempts]
    now = time.time()
    if resign:
        assert all(abs(now - t) < 60 for t in stamps)  # each retry signed afresh
        assert verify(SECRET, received[-1][2], received[-1][1]) is None
    else:
        # The fourth attempt, 750 s after the first, still carries the first attempt's time.
        assert 700 < now - stamps[-1] < 900
        assert verify(SECRET, received[-1][2], received[-1][1]) == "timestamp outside the replay window"


def test_redirect_to_your_own_server_refused(webhook):
    base, replies, received = webhook
    replies.append({"actions": [{"say": {"text": "hi"}}, {"redirect": {"url": base + "/next"}}]})
    engine = platform(redirect_own_server="refuse")
    leg = engine.place_call(local=NUMBER, remote=CALLER, url=base + "/start")
    engine.run_until_idle()
    assert [path for path, _, _ in received] == ["/start"]
    assert leg.status == "failed" and leg.failure_code == "redirect_refused"
    assert leg.as_call()["failure_code"] == "redirect_refused"


@pytest.mark.parametrize("emitted", [True, False])
def test_call_events_to_the_numbers_events_url(webhook, emitted):
    base, replies, received = webhook
    if emitted:
        replies.append({"ok": True})  # call.answered is posted before the voice callback
    replies.append({"actions": [{"say": {"text": "hello"}}, {"hangup": {}}]})
    engine = Platform(VirtualClock(), secret=SECRET, events_url=base + "/call-events",
                      readings=Readings(call_events="emitted" if emitted else "not-emitted"))
    leg = engine.place_call(local=NUMBER, remote=CALLER, url=base + "/v", client_request_id="order-1")
    engine.run_until_idle()
    sent = [(json.loads(body), signature) for path, body, signature in received if path == "/call-events"]
    if not emitted:
        assert sent == []
        return
    assert [body["kind"] for body, _ in sent] == ["call.answered", "call.completed"]
    completed = sent[1][0]
    assert completed["data"]["call_id"] == leg.id and completed["data"]["duration_seconds"] == 1
    assert completed["data"]["clientRequestId"] == "order-1"
    assert all(verify(SECRET, s, json.dumps(b).encode()) is None for b, s in sent)
    header = received.headers[-1]
    assert header["HTTP_X_SAUTIKIT_EVENT"] == "call.completed" and header["HTTP_X_SAUTIKIT_EVENT_ID"]


def test_voice_callbacks_as_json(webhook):
    base, replies, received = webhook
    replies.append({"actions": [{"hangup": {}}]})
    engine = platform(voice_body="json")
    leg = engine.place_call(local=NUMBER, remote=CALLER, url=base + "/v")
    engine.run_until_idle()
    assert json.loads(received[0][1])["CallId"] == leg.id
    assert received.headers[0]["CONTENT_TYPE"] == "application/json"


def test_bad_switches_are_clear_errors(tmp_path, invoke):
    with pytest.raises(ValueError, match="digits_to must be one of answering-url, voice-callback-url"):
        Readings.from_mapping({"digits_to": "somewhere"})
    with pytest.raises(ValueError, match="unknown switch 'digit_to'"):
        Readings.from_mapping({"digit_to": "answering-url"})
    assert Readings.from_mapping({"events_signed": "false"}).events_signed is False
    scenario = tmp_path / "s.yaml"
    scenario.write_text(f"policy: {ROOMS / 'meeting.yaml'}\nplatform: {{event_shape: xml}}\ncalls: []\n")
    with pytest.raises(ScenarioError, match="event_shape must be one of"):
        run(scenario)
    result = invoke("simulate", str(scenario))
    assert result.exit_code == 2 and "event_shape must be one of twilio" in result.output
    result = invoke("sautikit-local", "--digits-to", "nowhere")
    assert result.exit_code == 2 and "nowhere" in result.output


def test_a_scenario_runs_under_its_platform_section_and_overrides():
    bridge = ROOMS / "scenarios" / "dial-in-bridge.yaml"
    outcome = run(bridge, platform={"event_shape": "thirdparty", "start_on_enter_default": False})
    assert outcome.report["platform"]["event_shape"] == "thirdparty"
    assert outcome.report["platform"]["start_on_enter_default"] is False
    assert run(bridge).report["platform"] == Readings().as_dict()


def test_every_switch_is_an_option_and_documented(invoke):
    from roomc.sautikit.readings import CHOICES, QUESTIONS

    from ..conftest import ROOT

    page = (ROOT / "docs" / "simulate.md").read_text()
    help_text = invoke("sautikit-local", "--help").output
    for name in CHOICES:
        assert f"| `{name}` |" in page and f"--{name.replace('_', '-')}" in help_text and name in QUESTIONS


def test_supervision_events_reach_the_events_url_when_call_events_are_emitted(webhook):
    base, replies, received = webhook
    replies.extend([{"ok": True}, {"actions": [{"conference": {"name": "r"}}]}])
    engine = Platform(VirtualClock(), secret=SECRET, events_url=base + "/ev", readings=Readings(call_events="emitted"))
    leg = engine.place_call(local=NUMBER, remote=CALLER, url=base + "/v", hangup_after=60)
    engine.at(10, lambda: engine.supervise(leg, {"mode": "listen", "supervisor": {"type": "phone", "number": CALLER}}))
    engine.run_until_idle()
    kinds = [json.loads(body)["kind"] for path, body, _ in received if path == "/ev"]
    assert kinds == ["call.answered", "call.supervision.started", "call.supervision.connected",
                     "call.supervision.ended", "call.completed"]
    assert leg.supervisors[0].duration == 63 - 13 and leg.supervisors[0].cost_minor() == 50 * 5  # phone: outbound rate
