"""`roomc rooms` reads the same store, in the same JSON shape, as GET /rooms and GET /rooms/<name>."""
import json

from roomc.runtime.normalise import Event, event
from roomc.runtime.store import SQLiteStore


def test_rooms_json_matches_the_http_shape(invoke, tmp_path):
    db = tmp_path / "roomc.db"
    store = SQLiteStore(str(db))
    store.reserve("m-1", "c1", "host", counted=True, limit=10, ttl=60, muted=False)
    store.record(event({"ConferenceName": "m-1", "StatusCallbackEvent": "join", "CallId": "c1", "Timestamp": 1.7e9}, now=1.7e9 + 5))
    one = json.loads(invoke("rooms", "m-1", "--db", str(db), "--format", "json").output)
    reserved = one["participants"][0].pop("reservedAt")
    assert reserved is not None and reserved.endswith("Z")
    assert one["participants"] == [{"callId": "c1", "role": "host", "muted": False,
                                    "joinedAt": "2023-11-14T22:13:20.000Z", "leftAt": None}]
    listing = json.loads(invoke("rooms", "--db", str(db), "--format", "json").output)
    assert listing["rooms"][0]["name"] == "m-1" and listing["rooms"][0]["participants"] == 1
    text = invoke("rooms", "m-1", "--db", str(db)).output
    assert "c1" in text and "host" in text


def test_rooms_without_a_store_or_room(invoke, tmp_path):
    assert invoke("rooms", "--db", str(tmp_path / "none.db")).exit_code == 2
    SQLiteStore(str(tmp_path / "empty.db"))
    result = invoke("rooms", "nope", "--db", str(tmp_path / "empty.db"))
    assert result.exit_code == 1 and "no room named 'nope'" in result.output


def test_rooms_watch_redraws_when_the_store_changes(invoke, tmp_path):
    import threading
    import time

    db = tmp_path / "roomc.db"
    store = SQLiteStore(str(db))
    store.reserve("w-1", "first", "host", counted=True, limit=10, ttl=60, muted=False)

    def later():
        time.sleep(0.5)
        store.reserve("w-1", "second", "participant", counted=True, limit=10, ttl=60, muted=False)
        time.sleep(0.5)
        store.record(event({"ConferenceName": "w-1", "StatusCallbackEvent": "mute", "CallId": "first"}))
        for i in range(8):  # more changes than frames asked for, in case two writes land in one frame
            time.sleep(0.3)
            store.reserve("w-1", f"extra-{i}", "participant", counted=True, limit=20, ttl=60, muted=False)

    writer = threading.Thread(target=later)
    writer.start()
    started = time.monotonic()
    # A long interval: only changes in the store can bring six frames this soon (else 50 s).
    result = invoke("rooms", "--watch", "--db", str(db), "--interval", "10", "--max-refreshes", "6")
    elapsed = time.monotonic() - started
    writer.join()
    assert result.exit_code == 0 and elapsed < 8
    frames = [f for f in result.output.split("---\n") if f.strip()]
    assert len(frames) == 6
    assert "first" in frames[0] and "second" not in frames[0]
    assert "second" in frames[-1] and "muted" in frames[-1].split("first")[1].splitlines()[0]
    assert "on hold" in frames[-1]
    one = invoke("rooms", "w-1", "--watch", "--db", str(db), "--max-refreshes", "1").output
    assert "w-1:" in one and "second" in one


def test_rooms_json_lists_raised_hands_and_operator_requests(invoke, tmp_path):
    db = tmp_path / "roomc.db"
    with SQLiteStore(str(db)) as store:
        store.reserve("t-1", "c1", "participant", counted=True, limit=10, ttl=600, muted=False)
        store.reserve("t-1", "c2", "participant", counted=True, limit=10, ttl=600, muted=False)
        store.record(Event("raiseHand", "t-1", "c1", None, 1.7e9, None, "e1", {"Digits": "1"}))
        store.record(Event("callOperator", "t-1", "c2", None, 1.7e9 + 1, None, "e2", {"Digits": "0"}))
    one = json.loads(invoke("rooms", "t-1", "--db", str(db), "--format", "json").output)
    assert one["handsRaised"] == [{"callId": "c1", "role": "participant", "at": "2023-11-14T22:13:20.000Z"}]
    assert [o["callId"] for o in one["operatorRequested"]] == ["c2"]
    watched = invoke("rooms", "t-1", "--db", str(db), "--watch", "--max-refreshes", "1").output
    assert "HAND since" in watched and "! operator requested by c2" in watched
    plain = invoke("rooms", "t-1", "--db", str(db)).output
    assert "hand raised: c1 (participant, since 2023-11-14T22:13:20.000Z)" in plain
    assert "operator requested: c2 (participant, since 2023-11-14T22:13:21.000Z)" in plain
