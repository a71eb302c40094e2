"""PIN tries and the meeting directory at run time (issue 13), hostile cases first: a caller who posts
the digits to another flow's URL to reset the count, concurrent posts for one call, the platform
delivering an entry twice, digits with * # letters or too many, and a PIN that must never reach the
table, the store or the log. Both stores."""
import logging
import threading
import time

import pytest

from roomc.runtime import Settings, calls, create_app
from roomc.runtime.directory import DirectoryError, MeetingDirectory, load
from roomc.runtime.storage import open_store
from roomc.compiler.directory import Entry

from ..conftest import table_for

BRIDGE = """
roomc: 1
server: {{publicUrl: "https://r.example.com", signatureSecretEnv: SAUTIKIT_VOICE_SECRET}}
directory: {{file: {file}}}
rooms:
  bridge:
    name: "bridge-{{{{ query.meeting }}}}"
    maxParticipants: 5
    roles:
      host: {{when: "false", say: "Welcome, host.", startOnEnter: true}}
      participant: {{say: "Wait for the host.", startOnEnter: false}}
flows:
  lobby:
    actions:
      - getDigits: {{numDigits: 6, timeout: 10, nested: [{{say: "Meeting number?"}}]}}
    tries: 3
    onDigits:
      - directory: meeting
        actions: [{{redirect: {{route: /pin, query: {{meeting: "{{{{ call.digits }}}}"}}}}}}]
    otherwise: [{{say: "Not a meeting."}}, {{redirect: /lobby}}]
  pin:
    actions:
      - getDigits: {{timeout: 10, nested: [{{say: "PIN?"}}]}}
    tries: 3
    onDigits:
      - {{directory: hostPin, actions: [{{join: {{room: bridge, role: host}}}}]}}
      - {{directory: participantPin, actions: [{{join: {{room: bridge, role: participant}}}}]}}
    otherwise: [{{say: "Wrong PIN."}}, {{redirect: {{route: /pin, query: {{meeting: "{{{{ query.meeting }}}}"}}}}}}]
    afterLastTry: [{{say: "Goodbye."}}, {{hangup: {{}}}}]
routes:
  /lobby: {{flow: lobby}}
  /pin: {{flow: pin}}
  /events: events
"""
MEETINGS = "meeting,hostPin,participantPin\n123456,4321,1111\n222333,9876,2222\n"


@pytest.fixture(params=["sqlite", "postgresql"])
def any_store(request, tmp_path):
    location = str(tmp_path / "roomc.db") if request.param == "sqlite" else request.getfixturevalue("pg_url")
    with open_store(location) as opened:
        yield opened


@pytest.fixture
def bridge_table(tmp_path):
    (tmp_path / "meetings.csv").write_text(MEETINGS)
    return table_for(tmp_path, BRIDGE.format(file="meetings.csv"))


@pytest.fixture
def bridge(bridge_table, any_store):
    return create_app(bridge_table, store=any_store, settings=Settings(public_url="https://r.example.com")).test_client()


def said(response) -> list[str]:
    """Everything spoken, prompts nested in getDigits included."""
    out = []
    for action in response.get_json()["actions"]:
        for item in [action] + action.get("getDigits", {}).get("nested", []):
            if "say" in item:
                out.append(item["say"]["text"])
    return out


def verbs(response) -> list[str]:
    return [next(iter(a)) for a in response.get_json()["actions"]]


def at_pin(client, call: str) -> None:
    client.post("/lobby", data={"CallId": call})
    assert said(client.post("/lobby", data={"CallId": call, "Digits": "123456"})) == ["PIN?"]


# -- hostile first -------------------------------------------------------------------------
def test_three_wrong_pins_end_the_call_and_the_right_pin_after_them_is_not_tried(bridge):
    at_pin(bridge, "a")
    assert said(bridge.post("/pin?meeting=123456", data={"CallId": "a", "Digits": "0000"})) == ["Wrong PIN.", "PIN?"]
    assert said(bridge.post("/pin?meeting=123456", data={"CallId": "a", "Digits": "0001"})) == ["Wrong PIN.", "PIN?"]
    last = bridge.post("/pin?meeting=123456", data={"CallId": "a", "Digits": "0002"})
    assert said(last) == ["Goodbye."] and verbs(last)[-1] == "hangup"
    # The caller (or a script posting straight to roomc) keeps going: nothing is compared any more.
    after = bridge.post("/pin?meeting=123456", data={"CallId": "a", "Digits": "4321"})
    assert said(after) == ["Goodbye."] and "conference" not in verbs(after)


def test_posting_the_digits_to_another_flow_or_another_meeting_does_not_reset_the_count(bridge):
    at_pin(bridge, "a")
    bridge.post("/pin?meeting=123456", data={"CallId": "a", "Digits": "0000"})
    bridge.post("/lobby", data={"CallId": "a", "Digits": "0001"})  # the lobby's URL: still the PIN step
    last = bridge.post("/pin?meeting=222333", data={"CallId": "a", "Digits": "0002"})  # another meeting's URL
    assert said(last) == ["Goodbye."]
    # The step is gone after the goodbye; a PIN posted to the lobby's URL is read by the lobby, whose
    # own count is separate, and the PIN flow's count stands.
    assert said(bridge.post("/pin?meeting=222333", data={"CallId": "a", "Digits": "9876"})) == ["Goodbye."]


def test_an_entry_delivered_twice_counts_once(bridge):
    at_pin(bridge, "a")
    for _ in range(3):  # the platform retries the same POST (at least once delivery)
        assert said(bridge.post("/pin?meeting=123456", data={"CallId": "a", "Digits": "0000"})) == ["Wrong PIN.", "PIN?"]
    assert said(bridge.post("/pin?meeting=123456", data={"CallId": "a", "Digits": "0001"})) == ["Wrong PIN.", "PIN?"]
    assert said(bridge.post("/pin?meeting=123456", data={"CallId": "a", "Digits": "0002"})) == ["Goodbye."]


@pytest.mark.parametrize("digits", ["43*1", "4321#", "#", "*", "abcd", "４３２１", "4321" * 20, "4" * 10_000,
                                    "4321\x00", " 4321", "١٢٣٤"])
def test_hostile_digits_are_a_wrong_pin_never_an_error(bridge, digits):
    at_pin(bridge, "a")
    answer = bridge.post("/pin?meeting=123456", data={"CallId": "a", "Digits": digits})
    assert answer.status_code == 200 and said(answer) == ["Wrong PIN.", "PIN?"]


def test_a_different_call_gets_its_own_tries_and_the_right_pins_seat_their_roles(bridge):
    at_pin(bridge, "a")
    for digits in ("0000", "0001", "0002"):
        bridge.post("/pin?meeting=123456", data={"CallId": "a", "Digits": digits})
    at_pin(bridge, "b")
    host = bridge.post("/pin?meeting=123456", data={"CallId": "b", "Digits": "4321"}).get_json()["actions"]
    assert host[-1]["conference"]["name"] == "bridge-123456" and host[-1]["conference"]["startOnEnter"] is True
    at_pin(bridge, "c")
    guest = bridge.post("/pin?meeting=123456", data={"CallId": "c", "Digits": "1111"}).get_json()["actions"]
    assert guest[-1]["conference"]["startOnEnter"] is False
    # Another meeting's PIN opens nothing here.
    at_pin(bridge, "d")
    assert said(bridge.post("/pin?meeting=123456", data={"CallId": "d", "Digits": "9876"})) == ["Wrong PIN.", "PIN?"]


def test_a_wrong_meeting_number_three_times_ends_the_call(bridge):
    bridge.post("/lobby", data={"CallId": "a"})
    assert said(bridge.post("/lobby", data={"CallId": "a", "Digits": "999999"})) == ["Not a meeting.", "Meeting number?"]
    bridge.post("/lobby", data={"CallId": "a", "Digits": "999998"})
    last = bridge.post("/lobby", data={"CallId": "a", "Digits": "999997"})
    assert verbs(last)[-1] == "hangup"  # the default afterLastTry
    assert said(last) == ["Sorry, that was the last try. Goodbye."]


def test_digits_with_no_call_id_get_the_fallback_and_count_nothing(bridge):
    answer = bridge.post("/pin?meeting=123456", data={"Digits": "4321"})
    assert answer.status_code == 200 and verbs(answer)[-1] == "hangup" and "conference" not in verbs(answer)


def test_concurrent_entries_for_one_call_each_get_their_own_number(any_store):
    # Ten posts at once, each with other digits: exactly one is the 3rd, and 7 are past the last.
    numbers: list[int] = []
    start = threading.Barrier(10)

    def enter(i: int) -> None:
        start.wait()
        numbers.append(calls.count_try(any_store, "call-1", "pin", f"{i:04d}"))
    threads = [threading.Thread(target=enter, args=(i,)) for i in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(numbers) == list(range(1, 11))


def test_the_count_is_per_call_and_flow_dedupes_within_the_window_and_expires(any_store):
    now = 1_800_000_000.0
    count = any_store.count_try
    assert count("a", "pin", "x", window=30, ttl=3600, now=now) == 1
    assert count("a", "pin", "x", window=30, ttl=3600, now=now + 29) == 1  # the same entry again
    assert count("a", "pin", "x", window=30, ttl=3600, now=now + 31) == 2  # keyed again, later: counted
    assert count("a", "pin", "y", window=30, ttl=3600, now=now + 32) == 3
    assert count("a", "lobby", "y", window=30, ttl=3600, now=now + 32) == 1
    assert count("b", "pin", "y", window=30, ttl=3600, now=now + 32) == 1
    assert count("a", "pin", "z", window=30, ttl=3600, now=now + 32 + 3601) == 1  # expired with the call's state


def test_the_store_never_holds_the_digits(bridge, any_store):
    at_pin(bridge, "a")
    bridge.post("/pin?meeting=123456", data={"CallId": "a", "Digits": "0000"})
    bridge.post("/pin?meeting=123456", data={"CallId": "a", "Digits": "4321"})
    dump = repr(_rows(any_store))
    assert "4321" not in dump and "0000" not in dump and "digit_tries" in dump


def _rows(store) -> dict:
    """Every row of every table roomc copies, whichever store."""
    from roomc.runtime.storage import COPIED_TABLES
    from roomc.runtime.store import SQLiteStore
    if isinstance(store, SQLiteStore):
        db = store._connection()
        return {table: db.execute(f"SELECT * FROM {table}").fetchall() for table in COPIED_TABLES
                if db.execute("SELECT 1 FROM sqlite_master WHERE name = ?", (table,)).fetchone()}
    with store._conn() as conn:
        return {table: conn.execute(f"SELECT * FROM {table}").fetchall() for table in COPIED_TABLES}


def test_no_pin_reaches_the_table_or_the_log(bridge_table, any_store, caplog):
    import orjson
    text = orjson.dumps(bridge_table).decode()
    assert "4321" not in text and "1111" not in text and "9876" not in text
    client = create_app(bridge_table, store=any_store, settings=Settings(public_url="https://r.example.com")).test_client()
    with caplog.at_level(logging.DEBUG, logger="roomc"):
        at_pin(client, "a")
        client.post("/pin?meeting=123456", data={"CallId": "a", "Digits": "4321"})
        client.post("/pin?meeting=123456", data={"CallId": "b", "Digits": "1111"})
    assert "4321" not in caplog.text and "1111" not in caplog.text


# -- the directory at start-up -------------------------------------------------------------
def test_a_broken_directory_refuses_to_start_without_quoting_a_pin(tmp_path, bridge_table):
    path = tmp_path / "meetings.csv"
    path.write_text("meeting,hostPin,participantPin\n123456,4321,4321\n654321,12a4,5678\n")
    with pytest.raises(DirectoryError) as refused:
        Settings.from_env(bridge_table, {"SAUTIKIT_VOICE_SECRET": "s3cret"})
    message = str(refused.value)
    assert "meetings.csv:2" in message and "RC233" in message and "meetings.csv:3" in message
    assert "4321" not in message and "12a4" not in message and "5678" not in message
    path.unlink()
    with pytest.raises(DirectoryError, match="cannot read"):
        Settings.from_env(bridge_table, {"SAUTIKIT_VOICE_SECRET": "s3cret"})


def test_the_environment_names_the_directory_file(tmp_path):
    other = tmp_path / "secret-place.csv"
    other.write_text("meeting,hostPin,participantPin\n777777,5555,6666\n")
    table = {"directory": {"file": str(tmp_path / "missing.csv"), "fileEnv": "MEETINGS_FILE"}}
    found = load(table, {"MEETINGS_FILE": str(other)})
    assert found is not None and found.has("777777") and found.pin_role("777777", "5555") == "hostPin"
    with pytest.raises(DirectoryError, match="cannot read"):
        load(table, {})
    with pytest.raises(DirectoryError, match=r"\$MEETINGS_FILE, which is unset"):
        load({"directory": {"file": None, "fileEnv": "MEETINGS_FILE"}}, {})


def test_pins_are_held_as_salted_keyed_hashes():
    entries = [Entry("1", "1234", "5678", None, 2), Entry("2", "1234", "8765", None, 3)]
    directory = MeetingDirectory(entries)
    one, two = directory._meetings["1"], directory._meetings["2"]
    assert one.salt != two.salt and one.host != two.host  # the same PIN in two meetings: two hashes
    assert b"1234" not in one.host + one.participant + one.salt
    assert directory.pin_role("1", "1234") == "hostPin" and directory.pin_role("1", "5678") == "participantPin"
    assert directory.pin_role("1", "8765") is None and directory.pin_role("3", "1234") is None
    assert MeetingDirectory(entries)._meetings["1"].host != one.host  # a key per process (per load)


def test_comparing_a_pin_costs_the_same_for_unknown_meetings_and_wrong_pins():
    # Not a tight timing test (the machine is shared): both paths hash once, so neither is 5x the other.
    directory = MeetingDirectory([Entry(str(i), f"{i:06d}", f"9{i:05d}", None, i) for i in range(1000)])

    def cost(meeting: str) -> float:
        started = time.perf_counter()
        for _ in range(3000):
            directory.pin_role(meeting, "123456")
        return time.perf_counter() - started
    known, unknown = min(cost("5") for _ in range(3)), min(cost("no-such") for _ in range(3))
    assert 0.2 < known / unknown < 5


def test_a_replayed_signature_counts_no_try_against_the_caller(bridge_table, any_store):
    from roomc.runtime.signatures import sign
    secret = b"whsec_tries"
    client = create_app(bridge_table, store=any_store, settings=Settings(
        public_url="https://r.example.com", signing_secret=secret)).test_client()

    def post(path, body):
        return client.post(path, data=body, content_type="application/x-www-form-urlencoded",
                           headers={"X-Sautikit-Signature": sign(secret, body)})
    post("/lobby", b"CallId=s1")
    post("/lobby", b"CallId=s1&Digits=123456")
    body = b"CallId=s1&Digits=0000"
    header = {"X-Sautikit-Signature": sign(secret, body)}
    first = client.post("/pin?meeting=123456", data=body, content_type="application/x-www-form-urlencoded",
                        headers=header)
    assert said(first) == ["Wrong PIN.", "PIN?"]
    for query in ("meeting=222333", "meeting=123456&x=1"):  # the same signature on another URL: a replay
        replay = client.post(f"/pin?{query}", data=body, content_type="application/x-www-form-urlencoded",
                             headers=header)
        assert replay.status_code == 403
    assert any_store.count_try("s1", "pin", "probe", window=30, ttl=60) == 2  # only the first entry counted
