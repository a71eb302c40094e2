"""What a request must be to take a seat, and what every answer looks like (issue 9 items 7 and 10).

Only callers take seats: HEAD takes none, every body encoding the platform may send is read
(form, JSON, multipart, charset parameters), and a request without a readable call id gets
the fallback and takes no seat. Whatever roomc answers, it answers JSON.
"""
import json
import logging
import sqlite3

import pytest

from roomc.runtime import normalise

FALLBACK = [{"say": {"text": "Sorry, we could not connect your call. Please try again later."}}, {"hangup": {}}]


def seats(store) -> int:
    """Seats taken in every room of this test's fresh store (the policy decides the room's full name)."""
    return sum(r["seatsTaken"] for r in store.live_rooms())


def multipart(fields: dict[str, str], boundary: str = "roomcBoundary7MA4YWxk") -> tuple[bytes, str]:
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n' for k, v in fields.items()]
    return ("".join(parts) + f"--{boundary}--\r\n").encode(), f"multipart/form-data; boundary={boundary}"


def test_twelve_multipart_retries_of_one_call_take_one_seat(client, store):
    # curl -F CallSid=CA1: each retry used to be a new anonymous caller (12 retries took 10 seats).
    body, content_type = multipart({"CallSid": "CA1", "From": "+254700000001"})
    for _ in range(12):
        response = client.post("/conference/join?room=mp", data=body, content_type=content_type)
        assert response.status_code == 200 and "conference" in response.get_json()["actions"][-1]
    assert seats(store) == 1


def test_multipart_from_the_test_client_reads_like_a_form(client, store):
    response = client.post("/conference/join?room=mp2&host=1", data={"CallId": "CA2"},
                           content_type="multipart/form-data")
    assert response.get_json()["actions"][0]["say"]["text"].endswith("mp2 as the host.")
    assert seats(store) == 1


def test_head_takes_no_seat_and_answers_json_without_a_body(client, store):
    for i in range(20):
        response = client.head("/conference/join", query_string={"room": "heads", "CallId": f"h{i}"})
        assert response.status_code == 200 and response.mimetype == "application/json"
        assert response.data == b""
    assert seats(store) == 0
    assert client.head("/conference/events").status_code == 200
    assert store.count_events() == 0


def test_a_request_without_a_call_id_takes_no_seat_and_gets_the_fallback(client, store, caplog):
    # It used to become `anonymous-<request id>`: every such request took another seat.
    with caplog.at_level(logging.WARNING, logger="roomc"):
        for _ in range(12):
            response = client.post("/conference/join?room=anon", data={"From": "+254700000001"})
            assert response.status_code == 200 and response.get_json()["actions"] == FALLBACK
        assert client.post("/conference/join?room=anon", data=b"\x00\xff garbage",
                           content_type="application/octet-stream").get_json()["actions"] == FALLBACK
    assert seats(store) == 0
    assert "no call id" in caplog.text


def test_a_flow_without_a_call_id_still_answers_its_menu(client):
    # A menu takes no seat, so it needs no call id; only a seat does.
    response = client.post("/lobby", data={"From": "+254700000001"})
    assert response.status_code == 200 and response.get_json()["actions"] != FALLBACK


@pytest.mark.parametrize("charset, text", [("iso-8859-1", "Zoë"), ("utf-8", "Zoë"), ("windows-1252", "Zoë")])
def test_form_bodies_in_their_declared_charset(charset, text):
    raw = f"CallId=c1&From={text}".encode(charset)
    assert normalise.parse_body(raw, f"application/x-www-form-urlencoded; charset={charset}") == {
        "CallId": "c1", "From": text}
    escaped = b"CallId=c1&From=Zo" + "".join(f"%{b:02X}" for b in "ë".encode(charset)).encode()
    assert normalise.parse_body(escaped, f"application/x-www-form-urlencoded; charset={charset}")["From"] == "Zoë"


def test_json_in_another_declared_charset_and_with_a_bom():
    data = {"CallId": "c1", "From": "Zoë"}
    assert normalise.parse_body(json.dumps(data).encode("utf-16"), "application/json; charset=utf-16") == data
    assert normalise.parse_body(b"\xef\xbb\xbf" + json.dumps(data).encode(), "application/json") == data
    assert normalise.parse_body(json.dumps(data).encode(), "application/vnd.sautikit+json") == data


def test_unknown_charsets_and_broken_multipart_read_as_nothing_not_an_error():
    assert normalise.parse_body(b"CallId=c1", "application/x-www-form-urlencoded; charset=klingon") == {"CallId": "c1"}
    assert normalise.parse_body(b"--x\r\nnot a part", "multipart/form-data; boundary=x") == {}
    assert normalise.parse_body(b"CallId=c1", "multipart/form-data") == {}  # no boundary
    body, content_type = multipart({"CallId": "c9"})
    assert normalise.parse_body(body[: len(body) // 2], content_type) == {}  # cut off mid-part


def test_a_multipart_file_part_is_not_a_field():
    body = (b'--b\r\nContent-Disposition: form-data; name="CallId"\r\n\r\nc1\r\n'
            b'--b\r\nContent-Disposition: form-data; name="Digits"; filename="d.txt"\r\n'
            b"Content-Type: text/plain\r\n\r\n1234\r\n--b--\r\n")
    assert normalise.parse_body(body, "multipart/form-data; boundary=b") == {"CallId": "c1"}


def test_multipart_events_are_stored(client, store):
    body, content_type = multipart({"ConferenceName": "mpe", "StatusCallbackEvent": "join", "CallSid": "CA7"})
    response = client.post("/conference/events", data=body, content_type=content_type)
    assert response.get_json()["outcome"] == "stored"
    assert client.post("/conference/events", data=body, content_type=content_type).get_json()["outcome"] == "duplicate"


def test_options_answers_json_with_allow_everywhere(client):
    for path in ("/conference/join", "/conference/events", "/lobby", "/healthz", "/rooms"):
        response = client.options(path)
        assert response.status_code == 200 and response.mimetype == "application/json", path
        allow = {m.strip() for m in response.headers["Allow"].split(",")}
        assert set(response.get_json()["allow"]) == allow and "OPTIONS" in allow, path
    assert client.options("/conference/join").get_json()["allow"] == ["GET", "HEAD", "OPTIONS", "POST"]


@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH", "TRACE", "PROPFIND"])
def test_other_methods_get_json_405(client, method):
    for path in ("/conference/join", "/conference/events", "/healthz", "/rooms/x", "/nope"):
        response = client.open(path, method=method)
        assert response.status_code in (404, 405) and response.mimetype == "application/json", (method, path)
        assert response.get_json()["error"]["code"].startswith("route."), (method, path)


def test_errors_in_flask_views_are_json(app, client, store):
    with sqlite3.connect(store.path) as db:  # a store broken from outside: the admin view fails
        db.execute("DROP TABLE rooms")
    response = client.get("/rooms/x", headers={"Authorization": "Bearer admin-token"})
    assert response.status_code == 500 and response.get_json()["error"]["code"] == "server.error"
    assert b"rooms" not in response.data  # the failure is logged, not shown
    big = client.post("/rooms", data=b"x" * 300_000, headers={"Authorization": "Bearer admin-token"})
    assert big.status_code in (405, 413) and big.mimetype == "application/json"
