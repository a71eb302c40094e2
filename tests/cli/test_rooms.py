"""`roomc rooms` reads the same store, in the same JSON shape, as GET /rooms and GET /rooms/<name>."""
import json

from roomc.runtime.normalise import event
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
