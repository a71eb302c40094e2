"""The local platform's own rules, against small real webhook servers on loopback."""
import json
from urllib.parse import parse_qs

from roomc.runtime.signatures import verify
from roomc.sautikit.engine import Platform, VirtualClock


def test_a_response_sautikit_would_refuse_drops_the_call(webhook):
    base, replies, _ = webhook
    replies.append({"actions": [{"say": {}}]})  # `say` without `text`
    platform = Platform(VirtualClock())
    leg = platform.place_call(local="+254700000001", remote="+254733000001", url=base + "/join")
    platform.run_until_idle()
    assert leg.status == "failed"
    assert "no actions Sautikit accepts" in platform.timeline[-1].what


def test_a_caller_past_the_platform_cap_stalls_in_silence(webhook):
    base, replies, _ = webhook
    conference = {"conference": {"name": "tiny", "maxParticipants": 1}}
    replies.extend([{"actions": [conference]}, {"actions": [conference]}])
    platform = Platform(VirtualClock())
    first = platform.place_call(local="+254700000001", remote="+254733000001", url=base + "/j", hangup_after=60)
    second = platform.place_call(local="+254700000001", remote="+254733000002", url=base + "/j", when=10)
    platform.run_until_idle()
    assert first.meeting == "tiny" and second.stalled
    assert any("stalls in silence" in e.what for e in platform.timeline if e.who == "+254733000002")
    assert second.status == "answered"  # nobody hangs it up: it would stall until the caller gives up


def test_digits_come_back_signed_to_the_same_url(webhook):
    base, replies, received = webhook
    replies.extend([{"actions": [{"getDigits": {"numDigits": 4}}]}, {"actions": [{"hangup": {}}]}])
    platform = Platform(VirtualClock(), secret=b"s3cret")
    platform.place_call(local="+254700000001", remote="+254733000001", url=base + "/pin?m=1", digits=["1234"])
    platform.run_until_idle()
    (path1, body1, sig1), (path2, body2, sig2) = received
    assert path1 == path2 == "/pin"
    assert parse_qs(body2.decode())["Digits"] == ["1234"] and "Digits" not in parse_qs(body1.decode())
    assert verify(b"s3cret", sig2, body2) is None


def test_only_subscribed_events_are_sent_and_failures_are_retried(webhook):
    base, replies, received = webhook
    replies.append({"actions": [{"conference": {"name": "r", "statusEventsCallbackUrl": base + "/events",
                                                "statusEvents": "join start"}}]})
    replies.append(("503 Service Unavailable", b"{}"))  # the sink fails the first delivery of `join`
    platform = Platform(VirtualClock())
    platform.place_call(local="+254700000001", remote="+254733000001", url=base + "/j", hangup_after=30)
    platform.run_until_idle()
    kinds = [json.loads(body)["StatusCallbackEvent"] for path, body, _ in received if path == "/events"]
    assert kinds == ["join", "join", "start"]  # join delivered again; leave and end were not subscribed


def test_stream_and_ai_agent_are_played_timed_and_billed(webhook):
    base, replies, received = webhook
    replies.append({"actions": [
        {"stream": {"url": "wss://ai.example.com/fork"}},  # fire-and-forget: about a second
        {"stream": {"url": "wss://ai.example.com/live", "connect": True}},  # holds the call while it lasts
        {"say": {"text": "Connecting you."}},
        {"aiAgent": {"agentId": "agent-1", "handover": {"callbackUrl": base + "/back"}}}]})
    replies.append({"actions": [{"hangup": {}}]})
    platform = Platform(VirtualClock())
    leg = platform.place_call(local="+254700000001", remote="+254733000001", url=base + "/start")
    platform.run_until_idle()
    said = [e.what for e in platform.timeline]
    assert any("forks audio to wss://ai.example.com/fork" in w for w in said)
    assert any("is streamed to wss://ai.example.com/live for 30 s" in w for w in said)
    assert any("talks to AI agent agent-1" in w for w in said)
    assert [path for path, _, _ in received] == ["/start", "/back"]
    assert leg.status == "completed" and leg.duration == 1 + 30 + 1 + 60  # fork, stream, say, agent
    assert leg.cost_minor() == leg.duration * 5


def test_an_ai_agent_that_is_not_last_drops_the_call(webhook):
    base, replies, _ = webhook
    replies.append({"actions": [{"aiAgent": {"agentId": "a"}}, {"say": {"text": "never"}}]})
    platform = Platform(VirtualClock())
    leg = platform.place_call(local="+254700000001", remote="+254733000001", url=base + "/start")
    platform.run_until_idle()
    assert leg.status == "failed" and leg.failure_code == "invalid_voice_response"


def test_the_label_rides_the_callback_url_unless_it_is_too_long(webhook):
    from roomc.sautikit.engine import with_label

    assert with_label("https://x.example/j?room=1", "order-1") == "https://x.example/j?room=1&clientRequestId=order-1"
    assert with_label("https://x.example/j", "a" * 2049) == "https://x.example/j"
    base, replies, received = webhook
    replies.append({"actions": [{"hangup": {}}]})
    platform = Platform(VirtualClock())
    platform.place_call(local="+254700000001", remote="+254733000001", url=base + "/j?room=1", client_request_id="o-1")
    platform.run_until_idle()
    assert parse_qs(received[0][1].decode())["clientRequestId"] == ["o-1"]
    assert received.headers[0]["QUERY_STRING"] == "room=1&clientRequestId=o-1"
