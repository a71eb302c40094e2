"""Metrics and request logs, in one process (the multi-worker sums are in test_server.py)."""
import json
import logging

from prometheus_client.parser import text_string_to_metric_families

from roomc.runtime import Settings, create_app
from roomc.runtime.observe import JsonFormatter

SECRET = "whsec"


def scrape(client, token="admin-token") -> dict:
    answer = client.get("/metrics", headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 200, answer.get_data(as_text=True)
    assert answer.content_type.startswith("text/plain; version=")
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(answer.get_data(as_text=True)) for s in family.samples}


def value(samples: dict, name: str, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_metrics_need_a_token(rooms_table, store):
    off = create_app(rooms_table, store=store, settings=Settings()).test_client()
    assert off.get("/metrics").status_code == 404
    only_metrics = create_app(rooms_table, store=store, settings=Settings(metrics_token="m-tok")).test_client()
    assert only_metrics.get("/metrics").status_code == 401
    assert only_metrics.get("/metrics", headers={"Authorization": "Bearer admin-token"}).status_code == 401
    assert only_metrics.get("/metrics", headers={"Authorization": "Bearer m-tok"}).status_code == 200
    both = create_app(rooms_table, store=store, settings=Settings(admin_token="a", metrics_token="m")).test_client()
    assert both.get("/metrics", headers={"Authorization": "Bearer a"}).status_code == 200
    assert both.get("/metrics", headers={"Authorization": "Bearer m"}).status_code == 200


def test_every_outcome_is_counted(rooms_table, store, settings):
    # The registry is per process, so each count is read as a difference.
    client = create_app(rooms_table, store=store, settings=settings).test_client()
    before = scrape(client)
    for i in range(10):  # the meeting holds 10, one of them for the host: the tenth participant hears whenFull
        client.post("/conference/join?room=metrics-full", data=f"CallId=m{i}")
    client.post("/conference/join?room=bad%20name!", data="CallId=x")
    client.post("/support/join", data="CallId=s1")
    client.post("/conference/events", json={"ConferenceName": "meeting-metrics-full", "StatusCallbackEvent": "join",
                                            "CallId": "m1"})
    client.post("/conference/events", json={"ConferenceName": "meeting-metrics-full", "StatusCallbackEvent": "join",
                                            "CallId": "m1"})
    client.post("/conference/events", data=b"\xff\x00 not an event", content_type="application/octet-stream")
    client.post("/conference/events", data=b"x" * (settings.max_body_bytes + 1))
    after = scrape(client)

    def delta(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("roomc_webhook_requests_total", route="/conference/join", outcome="admitted") == 9
    assert delta("roomc_webhook_requests_total", route="/conference/join", outcome="full") == 1
    assert delta("roomc_admissions_total", room="meeting") == 9
    assert delta("roomc_when_full_answers_total", room="meeting") == 1
    assert delta("roomc_refusals_total", room="meeting", reason="bad_name") == 1
    assert delta("roomc_events_total", outcome="stored") == 1
    assert delta("roomc_events_total", outcome="duplicate") == 1
    assert delta("roomc_events_total", outcome="unreadable") == 1
    assert delta("roomc_events_total", outcome="too_large") == 1
    assert delta("roomc_store_seconds_count", operation="reserve") >= 10
    assert delta("roomc_store_seconds_count", operation="record") == 3


def test_signature_failures_and_fallbacks_are_counted(rooms_table, store, monkeypatch):
    settings = Settings(admin_token="admin-token", signing_secret=SECRET.encode())
    client = create_app(rooms_table, store=store, settings=settings).test_client()
    before = scrape(client)
    assert client.post("/conference/join?room=r", data="CallId=a").status_code == 403
    assert client.post("/conference/events", json={"ConferenceName": "r"}).status_code == 403
    after = scrape(client)
    for route in ("/conference/join", "/conference/events"):
        assert (value(after, "roomc_signature_failures_total", route=route)
                - value(before, "roomc_signature_failures_total", route=route)) == 1
    assert (value(after, "roomc_events_total", outcome="refused") - value(before, "roomc_events_total", outcome="refused")) == 1

    unsigned = create_app(rooms_table, store=store, settings=Settings(admin_token="admin-token")).test_client()
    monkeypatch.setattr(store, "reserve", lambda *a, **k: 1 / 0)  # the store failing mid-answer
    before = scrape(unsigned)
    assert "actions" in unsigned.post("/conference/join?room=r", data="CallId=b").get_json()
    after = scrape(unsigned)
    assert (value(after, "roomc_fallback_answers_total", route="/conference/join", reason="error")
            - value(before, "roomc_fallback_answers_total", route="/conference/join", reason="error")) == 1


def test_each_request_is_logged_once_with_its_fields(client, caplog):
    with caplog.at_level(logging.INFO, logger="roomc.requests"):
        client.post("/conference/join?room=logged", data="CallId=call-7")
    [record] = [r for r in caplog.records if r.name == "roomc.requests"]
    line = json.loads(JsonFormatter().format(record))
    assert line["route"] == "/conference/join" and line["call_id"] == "call-7" and line["room"] == "meeting-logged"
    assert line["outcome"] == "admitted" and line["latency_ms"] >= 0 and line["request_id"]
    assert line["level"] == "INFO" and line["time"].endswith("Z")


def test_request_lines_are_batched_whole_lines(tmp_path):
    import os

    from roomc.runtime.observe import RequestLines

    path = tmp_path / "stderr"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    lines = RequestLines("json", enabled=True, fd=fd, flush_every=60)
    for i in range(200):
        lines.add(f"r-{i}", "/conference/join", f"call-{i}", "room-1", "admitted", 0.25)
    assert path.read_text() == "", "nothing is written on the request path"
    lines.flush()
    os.close(fd)
    written = path.read_text().splitlines()
    records = [json.loads(line) for line in written]
    assert [r["request_id"] for r in records] == [f"r-{i}" for i in range(200)]
    assert records[0]["latency_ms"] == 0.25 and records[0]["time"].endswith("Z") and records[0]["room"] == "room-1"
    text = RequestLines("text", enabled=True, fd=fd)
    text.add("r-1", "/x", None, None, "answered", 1.0)
    assert text._lines[0].decode().endswith(" INFO roomc.requests r-1 /x call=- room=- outcome=answered 1.000 ms\n")
