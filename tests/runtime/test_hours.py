"""Open hours and `now` at request time, through Flask's test client with a real SQLite store."""
from __future__ import annotations

import copy
import datetime as dt

import pytest

from roomc.runtime import Settings, create_app
from roomc.runtime.render import Responder

from ..conftest import ROOMS, table_for

POLICY = """
roomc: 1
server: {publicUrl: "https://x.example.com"}
defaults: {zone: Africa/Nairobi, voice: alice}
hours:
  office:
    weekly: {mon-fri: "08:00-17:00"}
    closures: [{date: 2026-12-25, name: Christmas}]
    closed:
      - say: "Closed now; it is {{ now.weekday }} {{ now.time }}."
      - hangup: {}
  always: {zone: UTC}
rooms:
  support:
    name: "support-{{ query.ticket }}"
    hours: office
    maxParticipants: 1
    roles:
      morning: {when: "now.hour < 12", say: "Good morning."}
      caller: {say: "Good afternoon."}
flows:
  menu:
    hours: office
    actions:
      - getDigits: {numDigits: 1, nested: [{say: "Press 1 for support."}]}
    onDigits:
      - {digits: "1", actions: [{join: support}]}
routes:
  /support: {join: support}
  /menu: {flow: menu}
  /lobby: {flow: lobby, hours: always}
  /events: events
flows_extra: null
"""


def _policy() -> str:
    return POLICY.replace("flows_extra: null\n", "").replace(
        "routes:", "  lobby:\n    actions: [{redirect: {route: /support, query: {ticket: \"{{ query.ticket }}\"}}}]\nroutes:")


def _at(text: str) -> float:
    return dt.datetime.fromisoformat(text).timestamp()


class Clock:
    """A settable clock for the runtime (roomc simulate passes the scenario's the same way)."""

    def __init__(self, at: str):
        self.now = _at(at)

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def table(tmp_path) -> dict:
    return table_for(tmp_path, _policy())


@pytest.fixture
def clock() -> Clock:
    return Clock("2026-12-24T09:00+03:00")


@pytest.fixture
def hours_client(table, store, clock):
    app = create_app(table, store=store, settings=Settings(public_url="https://x.example.com", clock=clock))
    app.config["TESTING"] = True
    return app.test_client()


def actions(client, path: str, **form) -> list:
    response = client.post(path, query_string={"ticket": "7"}, data={"CallId": "c1", **form})
    assert response.status_code == 200 and response.mimetype == "application/json"
    return response.get_json()["actions"]


def test_open_in_the_morning_with_now_in_the_condition(hours_client):
    answer = actions(hours_client, "/support")
    assert answer[0] == {"say": {"text": "Good morning.", "voice": "alice"}}
    assert answer[-1]["conference"]["name"] == "support-7"


def test_closed_after_hours_takes_no_seat(hours_client, clock, store):
    clock.now = _at("2026-12-24T17:00+03:00")
    answer = actions(hours_client, "/support")
    assert answer == [{"say": {"text": "Closed now; it is thu 17:00.", "voice": "alice"}}, {"hangup": {}}]
    assert store.room("support-7") is None  # no seat was reserved for a closed line
    clock.now = _at("2026-12-24T16:59:59+03:00")
    assert "conference" in actions(hours_client, "/support")[-1]
    # The room holds one: a second caller before closing hears whenFull, after closing the closed answer.
    assert "conference" not in actions(hours_client, "/support", CallId="c2")[-1]
    clock.now = _at("2026-12-25T10:00+03:00")
    assert actions(hours_client, "/support", CallId="c3")[0]["say"]["text"].startswith("Closed now; it is fri")


def test_a_flow_is_closed_for_its_first_answer_and_for_late_digits(hours_client, clock):
    assert "getDigits" in actions(hours_client, "/menu")[0]
    clock.now = _at("2026-12-24T17:00:01+03:00")
    assert actions(hours_client, "/menu")[-1] == {"hangup": {}}
    assert actions(hours_client, "/menu", Digits="1")[-1] == {"hangup": {}}


def test_a_redirect_answered_inline_meets_the_target_rooms_hours(hours_client, clock):
    assert "conference" in actions(hours_client, "/lobby")[-1]
    clock.now = _at("2026-12-26T10:00+03:00")  # Saturday
    assert actions(hours_client, "/lobby")[-1] == {"hangup": {}}


def test_explain_style_trace_names_the_reason(table):
    responder = Responder(table)
    answer = responder.answer("/support", {"ticket": "7"}, {"id": "c", "digits": ""}, digits_sent=False,
                              seats=lambda room, role, limit: (True, "admitted"), explain=True,
                              at=_at("2026-12-25T09:00+03:00"))
    assert answer.closed == "office" and answer.room is None
    assert any("closed at fri 2026-12-25 09:00 Africa/Nairobi: a closure (Christmas)" in line for line in answer.trace)


def test_a_hand_edited_table_with_a_bad_zone_answers_the_fallback_not_a_500(table, store, clock):
    broken = copy.deepcopy(table)
    broken["hours"]["office"]["zone"] = "../../etc/passwd"
    app = create_app(broken, store=store, settings=Settings(public_url="https://x.example.com", clock=clock))
    client = app.test_client()
    answer = actions(client, "/support")
    assert answer[-1] == {"hangup": {}} and "could not connect" in answer[0]["say"]["text"]
    clock.now = _at("2026-12-26T10:00+03:00")
    assert actions(client, "/lobby")[-1] == {"hangup": {}}  # `always` still works; only `office` is broken


@pytest.mark.parametrize("instant", [0.0, 253_402_214_400.0 - 86_400 * 2, -1.0e9])
def test_far_instants_do_not_crash(table, instant):
    answer = Responder(table).answer("/support", {"ticket": "7"}, {"id": "c", "digits": ""}, digits_sent=False,
                                     seats=lambda room, role, limit: (True, "admitted"), at=instant)
    assert answer.actions and not answer.failed


def test_tables_without_hours_or_now_build_no_clock_view():
    from roomc.compiler import pipeline

    table = pipeline.run([str(ROOMS / "meeting.yaml")]).table
    assert table is not None and not Responder(table).uses_now


def test_a_template_cannot_change_the_shared_now(table):
    hostile = copy.deepcopy(table)
    hostile["rooms"]["support"]["roles"][0]["actions"][0]["say"]["text"] = {"$t": "{{ now.pop('hour') }}{{ now }}"}
    responder = Responder(hostile)
    at = _at("2026-12-24T09:00+03:00")
    first = responder.answer("/support", {"ticket": "7"}, {"id": "c", "digits": ""}, digits_sent=False,
                             seats=lambda room, role, limit: (True, "admitted"), at=at)
    assert first.failed  # the sandbox refuses to modify a dict: the caller hears the fallback
    assert responder.now_view(at)["hour"] == 9


def test_closed_callers_are_counted_as_refusals_in_metrics(table, store, clock):
    from .test_observe import scrape, value

    app = create_app(table, store=store, settings=Settings(public_url="https://x.example.com", clock=clock,
                                                            admin_token="admin-token"))
    client = app.test_client()
    before = value(scrape(client), "roomc_refusals_total", room="support", reason="closed")
    clock.now = _at("2026-12-24T17:30+03:00")
    actions(client, "/support")
    actions(client, "/support", CallId="c2")
    assert value(scrape(client), "roomc_refusals_total", room="support", reason="closed") == before + 2


def test_built_in_messages_take_the_rooms_voice(tmp_path, store, clock):
    table = table_for(tmp_path, _policy().replace("maxParticipants: 1", "maxParticipants: 1\n    voice: woman\n"
                                                   "    language: en-KE"))
    assert table["rooms"]["support"]["speech"] == {"voice": "woman", "language": "en-KE"}
    assert table["speech"] == {"voice": "alice"}
    responder = Responder(table)
    answer = responder.answer("/support", {"ticket": "a b"}, {"id": "c", "digits": ""}, digits_sent=False,
                              seats=lambda room, role, limit: (True, "admitted"), at=clock.now)
    assert answer.actions[0] == {"say": {"text": "Sorry, that meeting number is not valid.", "voice": "woman",
                                         "language": "en-KE"}}


@pytest.mark.parametrize("instant", [253_402_300_800.0 + 86_400 * 3, 1e300, -1e300, float("inf")])
def test_an_instant_no_calendar_holds_answers_the_fallback_not_an_exception(table, instant):
    # Only a scenario's clock can get here (`at: 9998-12-31...` plus a long timeline): the caller hears the
    # fallback, and the reason is the answer's error, not a traceback in the log.
    answer = Responder(table).answer("/support", {"ticket": "7"}, {"id": "c", "digits": ""}, digits_sent=False,
                                     seats=lambda room, role, limit: (True, "admitted"), at=instant)
    assert answer.failed and "could not connect" in answer.actions[0]["say"]["text"]
    assert answer.error and "time" in answer.error
