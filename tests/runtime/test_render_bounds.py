"""The runtime's own guards: URL values encoded, missing values in roomc's words, renders bounded,
and a join that never lands in another room's conference."""
from roomc.runtime.render import Responder

from ..conftest import table_for


def explain(table: dict, path: str, query: dict) -> tuple[list, str | None, list]:
    answer = Responder(table).answer(path, query, {"digits": "", "from": "+254700000001"}, digits_sent=False,
                                     seats=lambda room, role, limit: (True, "admitted"), explain=True)
    return answer.actions, answer.error, answer.trace or []


POLICY = """
    roomc: 1
    server: {publicUrl: https://rooms.example.com, signatureSecretEnv: S}
    rooms:
      meeting:
        name: "meeting-{{ query.room }}"
        waitUrl: "https://cdn.example.com/hold/{{ query.music }}.mp3?room={{ query.room }}"
        roles:
          host: {startOnEnter: true, say: "Welcome to {{ query.topic }}"}
    routes:
      /join: {join: meeting}
"""


def test_request_values_in_url_templates_are_percent_encoded(tmp_path):
    table = table_for(tmp_path, POLICY)
    actions, error, _ = explain(table, "/join", {"room": "1", "music": "../../admin?x=1 \r\nX: y", "topic": "t"})
    assert error is None
    assert actions[-1]["conference"]["waitUrl"] == (
        "https://cdn.example.com/hold/..%2F..%2Fadmin%3Fx%3D1%20%0D%0AX%3A%20y.mp3?room=1")
    assert actions[0]["say"]["text"] == "Welcome to t"  # text fields are not encoded


def test_missing_query_value_is_logged_in_roomcs_words(tmp_path):
    table = table_for(tmp_path, POLICY)
    actions, error, _ = explain(table, "/join", {"room": "1", "music": "m"})
    assert error == "text: query value 'topic' is missing from the request"
    assert "dict object" not in error
    assert actions[0]["say"]["text"].startswith("Sorry, we could not connect your call")


def test_a_render_past_its_bounds_answers_the_fallback(tmp_path):
    table = table_for(tmp_path, POLICY)
    table["rooms"]["meeting"]["roles"][0]["actions"][0] = {"say": {"text": {"$t": "{{ query.room * 100000 }}"}}}
    actions, error, _ = explain(table, "/join", {"room": "ab", "music": "m", "topic": "t"})
    assert error is not None and "refused" in error
    assert actions[0]["say"]["text"].startswith("Sorry, we could not connect your call")


def test_a_join_never_lands_in_another_rooms_conference(tmp_path):
    table = table_for(tmp_path, """
        roomc: 1
        server: {publicUrl: https://rooms.example.com, signatureSecretEnv: S}
        rooms:
          open:
            name: "{{ query.room }}"  # roomc: ignore[RC213]
            roles: {guest: {startOnEnter: true}}
          bridge:
            name: "bridge-{{ query.meeting }}"
            roles: {host: {startOnEnter: true}}
        routes:
          /open: {join: open}
          /bridge: {join: bridge}
    """)
    actions, _, trace = explain(table, "/open", {"room": "bridge-123456"})
    assert actions[0]["say"]["text"] == "Sorry, that meeting number is not valid."
    assert any("room 'bridge'" in line for line in trace)
    actions, _, _ = explain(table, "/open", {"room": "lobby-1"})
    assert actions[-1]["conference"]["name"] == "lobby-1"
    actions, _, _ = explain(table, "/bridge", {"meeting": "123456"})
    assert actions[-1]["conference"]["name"] == "bridge-123456"


def test_the_join_guard_reads_room_names_case_insensitively(tmp_path):
    # The platform does not document whether `Bridge-1` and `bridge-1` are one conference (docs/runtime.md):
    # a name that fits another room's frame in any case is refused, as lint's RC213 compares case-folded.
    table = table_for(tmp_path, """
        roomc: 1
        server: {publicUrl: https://rooms.example.com, signatureSecretEnv: S}
        rooms:
          open:
            name: "{{ query.room }}"  # roomc: ignore[RC213]
            roles: {guest: {startOnEnter: true}}
          bridge:
            name: "Bridge-{{ query.meeting }}-Room"
            roles: {host: {startOnEnter: true}}
          lobby:
            name: "LOBBY"
            roles: {guest: {startOnEnter: true}}
        routes:
          /open: {join: open}
          /bridge: {join: bridge}
    """)
    for name, owner in (("bridge-123456-room", "bridge"), ("BRIDGE-9-ROOM", "bridge"), ("bRiDgE-1-rOoM", "bridge"),
                        ("lobby", "lobby"), ("Lobby", "lobby")):
        actions, _, trace = explain(table, "/open", {"room": name})
        assert actions[0]["say"]["text"] == "Sorry, that meeting number is not valid.", name
        assert any(f"room '{owner}'" in line for line in trace), (name, trace)
    for name in ("bridge-123456", "lobby-1", "bridge-1-rooms"):  # outside every other frame in any case: admitted
        actions, _, _ = explain(table, "/open", {"room": name})
        assert actions[-1]["conference"]["name"] == name
    actions, _, _ = explain(table, "/bridge", {"meeting": "7"})
    assert actions[-1]["conference"]["name"] == "Bridge-7-Room"  # the owner's own name is served as written
