"""A signed join on PostgreSQL is one store round trip (issue 12): the signature's binding and the
seat in one statement, and a replay refused there takes no seat."""
import time

from roomc.runtime import Settings, create_app
from roomc.runtime.postgres import PostgresStore
from roomc.runtime.signatures import sign
from roomc.runtime.storage import open_store

SECRET = b"whsec_test"


def test_a_signed_join_is_one_round_trip_and_a_replay_takes_no_seat(rooms_table, pg_url, monkeypatch):
    store = open_store(pg_url)
    trips = []
    real_run = PostgresStore._run

    def counted(self, deadline, work):
        trips.append(time.monotonic())
        return real_run(self, deadline, work)

    monkeypatch.setattr(PostgresStore, "_run", counted)
    client = create_app(rooms_table, store=store, settings=Settings(
        signing_secret=SECRET, public_url="https://r.example.com", secrets={"HOST_PIN": "4321"})).test_client()
    body = b"CallId=c1&From=%2B254700000001&To=%2B254700000002&Direction=inbound"
    headers = {"X-Sautikit-Signature": sign(SECRET, body)}
    try:
        first = client.post("/conference/join?room=7", data=body, headers=headers,
                            content_type="application/x-www-form-urlencoded")
        assert first.status_code == 200 and "conference" in first.get_data(as_text=True)
        assert len(trips) == 1, len(trips)  # binding and seat together
        retry = client.post("/conference/join?room=7", data=body, headers=headers,
                            content_type="application/x-www-form-urlencoded")
        assert retry.status_code == 200 and len(trips) == 2
        replay = client.post("/conference/join?room=8", data=body, headers=headers,
                             content_type="application/x-www-form-urlencoded")
        assert replay.status_code == 403 and replay.is_json
        assert [p["callId"] for p in store.room(store.live_rooms()[0]["name"])["participants"]] == ["c1"]
        assert len(store.live_rooms()) == 1  # the replay's room got no seat
    finally:
        store.close()
