"""Open hours and speech defaults in the compiler: hostile input first, then what the table holds."""
from __future__ import annotations

import datetime as dt
import time

import pytest
from hypothesis import given, settings, strategies as st

from roomc.compiler import hours, pipeline
from roomc.compiler.emit import emit

from ..conftest import compile_text, findings, table_for

HEAD = """
roomc: 1
server: {publicUrl: "https://x.example.com", signatureSecretEnv: S}
"""
ROOM = """
rooms:
  support:
    name: "support-{{ query.ticket }}"
    hours: office
    roles:
      caller: {say: "Hello."}
routes:
  /j: {join: support}
  /e: events
"""


def schedule(body: str) -> str:
    return HEAD + "hours:\n  office:\n" + "\n".join("    " + line for line in body.strip("\n").splitlines()) + ROOM


def codes(tmp_path, text: str) -> list[str]:
    return [code for code, _, _ in findings(tmp_path, text)]


# -- hostile input ---------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["../../etc/passwd", "/etc/localtime", "Africa/../../../etc/passwd", "Nairobi",
                                  "africa/nairobi", "Africa/Nairobi\n", "A" * 64, ".", "Etc/GMT+99"])
def test_a_zone_that_is_no_iana_name_is_unknown_and_never_opened(tmp_path, name, monkeypatch):
    opened: list[str] = []
    real_open = open

    def spy(file, *args, **kwargs):
        opened.append(str(file))
        return real_open(file, *args, **kwargs)

    hours.zone_names()  # the list itself is read once, before the spy
    monkeypatch.setattr("builtins.open", spy)
    assert not hours.known_zone(name)
    with pytest.raises(ValueError):
        hours.zone(name)
    assert not [f for f in opened if "passwd" in f or "localtime" in f]


def test_zones_come_from_the_tzdata_package_only_never_the_machine(tmp_path):
    # `localtime` is a link the OS puts in /usr/share/zoneinfo to the machine's own zone: a policy naming it
    # would mean a different clock on every server. And a zone's rules are the shipped tzdata's, not the
    # OS's (older or newer) copy, so lint, explain and every server answer alike.
    import importlib.resources
    import zoneinfo

    shipped = set(importlib.resources.files("tzdata").joinpath("zones").read_text().split())
    assert hours.zone_names() == frozenset(shipped)
    assert not hours.known_zone("localtime") and "RC601" in codes(tmp_path, schedule(
        'zone: localtime\nweekly: {mon-fri: "08:00-17:00"}'))
    # A machine whose zone files disagree with tzdata (here: "Nairobi" holding Tokyo's rules) changes nothing.
    system = tmp_path / "zoneinfo"
    (system / "Africa").mkdir(parents=True)
    tokyo = importlib.resources.files("tzdata.zoneinfo").joinpath("Asia", "Tokyo").read_bytes()
    (system / "Africa" / "Nairobi").write_bytes(tokyo)
    zoneinfo.reset_tzpath([str(system)])
    try:
        trap = zoneinfo.ZoneInfo.no_cache("Africa/Nairobi")
        assert dt.datetime(2026, 1, 1, tzinfo=trap).utcoffset() == dt.timedelta(hours=9)  # the trap is set
        hours.zone.cache_clear()
        nairobi = hours.zone("Africa/Nairobi")
        assert str(nairobi) == "Africa/Nairobi"
        assert dt.datetime(2026, 12, 24, 14, tzinfo=dt.timezone.utc).astimezone(nairobi).hour == 17
    finally:
        zoneinfo.reset_tzpath()
        hours.zone.cache_clear()


def test_unknown_zone_is_rc601_with_a_suggestion(tmp_path):
    compilation = compile_text(tmp_path, schedule('zone: Africa/Nairob\nweekly: {mon-fri: "08:00-17:00"}'))
    found = [d for d in compilation.diagnostics if d.code == "RC601"]
    assert found and "did you mean 'Africa/Nairobi'" in found[0].message
    assert compilation.table is None


@pytest.mark.parametrize("text, problem", [
    ("25:61-26:00", "not a time of day"),
    ("24:00-10:00", "24:00 is only an end"),
    ("09:00-09:00", "empty"),
    ("22:00-06:00", "ends before it starts"),
    ("8-17", "not a time"),
    ("08:00", "not a range"),
    ("08:00-17:00-18:00", "not a time"),
    ("０８:００-17:00", "not a time"),  # full-width digits are not HH:MM
    ("23:60-23:59", "not a time of day"),
])
def test_bad_ranges_are_refused_with_the_fix(text, problem):
    parsed, found = hours.parse_range(text)
    assert parsed is None and found is not None and problem in found


def test_24_00_is_the_end_of_the_day():
    assert hours.parse_range("00:00-24:00") == ((0, 1440), None)
    assert hours.parse_range("22:00-24:00") == ((1320, 1440), None)


@pytest.mark.parametrize("key, near", [("mon-thur", "thu"), ("tuseday", "tuesday"), ("wendesday", "wednesday"),
                                       ("satruday", "saturday"), ("weekdya", "weekday")])
def test_weekday_typos_suggest_the_day(key, near):
    days, problem = hours.parse_days(key)
    assert days == () and problem is not None and f"did you mean '{near}" in problem


@pytest.mark.parametrize("key, problem", [("weekdays-sun", "one day on each side"), ("mon-", "'' is not a day"),
                                          ("sat,,sun", "'' is not a day"), ("x" * 10_000, "'" + "x" * 40 + "' is not")])
def test_day_keys_that_name_no_days(key, problem):
    days, found = hours.parse_days(key)
    assert days == () and found is not None and problem in found and len(found) < 200


def test_day_ranges_lists_and_words():
    assert hours.parse_days("mon-fri") == ((0, 1, 2, 3, 4), None)
    assert hours.parse_days("fri-mon") == ((0, 4, 5, 6), None)  # wraps over the weekend
    assert hours.parse_days("sat,sun") == ((5, 6), None)
    assert hours.parse_days("Weekdays") == ((0, 1, 2, 3, 4), None)
    assert hours.parse_days("daily") == (tuple(range(7)), None)


@pytest.mark.parametrize("entry, problem", [
    ("2026-02-30", "not a date in the calendar"),
    ("christmas", "not a date"),
    ("2026-12-25T09:00", "not a date"),
    ("20261225", "not a date"),
    ({"from": "2026-12-26", "to": "2026-12-24"}, "before it starts"),
    ({"from": "0001-01-01", "to": "9999-12-31"}, "at most 366"),
    ({"from": "2026-01-01"}, "not a date"),
])
def test_bad_closures_are_refused(entry, problem):
    parsed, found = hours.parse_closure(entry)
    assert parsed is None and found is not None and problem in found


@pytest.mark.parametrize("aliased", [False, True])
def test_a_closure_list_of_100k_entries_is_refused_quickly(tmp_path, aliased):
    if aliased:  # 100k entries in a file small enough to be read: one date and 99,999 aliases of it
        entries = "    closures: [&d 2026-12-25" + ", *d" * 99_999 + "]\n"
    else:
        entries = "    closures:\n" + "\n".join(f"      - 2026-{1 + i % 12:02d}-{1 + i % 28:02d}"
                                                 for i in range(100_000)) + "\n"
    text = HEAD + "hours:\n  office:\n    zone: UTC\n" + entries + ROOM
    started = time.monotonic()
    compilation = compile_text(tmp_path, text)
    elapsed = time.monotonic() - started
    assert compilation.table is None
    messages = [d.message for d in compilation.diagnostics]
    if aliased:
        assert any(d.code == "RC104" and d.message == "'hours.office.closures' has more than 1,000 items (at most 1,000)"
                   for d in compilation.diagnostics), [m[:200] for m in messages[:3]]
        assert all(len(m) < 500 for m in messages)  # never the list itself
    else:
        assert any("larger than 1 MiB" in m for m in messages), messages[:3]
    assert elapsed < 60  # generous for a loaded machine; it takes about a second (the list is cut before checking)


def test_a_huge_but_valid_policy_of_1000_closures_compiles(tmp_path):
    start = dt.date(2026, 1, 1)
    entries = "\n".join(f"      - {(start + dt.timedelta(days=i)).isoformat()}" for i in range(1000))
    table = table_for(tmp_path, HEAD + "hours:\n  office:\n    zone: UTC\n    closures:\n" + entries + "\n" + ROOM)
    assert len(table["hours"]["office"]["closures"]) == 1000
    compiled = hours.Schedule("office", table["hours"]["office"])
    assert len(compiled.closures) == 1  # 1000 consecutive days merge into one interval for the bisect


def test_compile_never_reads_the_clock(tmp_path, monkeypatch):
    """`now` and hours are evaluated per request: the table is the same bytes whenever it is compiled."""
    text = schedule('zone: Africa/Nairobi\nweekly: {mon-fri: "08:00-17:00"}\nclosures: [2026-12-25]').replace(
        'caller: {say: "Hello."}', 'caller: {when: "now.hour < 12 and now.weekday == \'mon\'", '
        'say: "It is {{ now.iso }} in {{ now.zone }}, {{ now.date }}."}')
    text = text.replace("rooms:", "defaults: {zone: Africa/Nairobi}\nrooms:")
    outputs = []
    for fake in (0.0, 1.0e9, 4.0e9, 2.5e11):
        monkeypatch.setattr(time, "time", lambda fake=fake: fake)
        monkeypatch.setattr(dt, "datetime", _FrozenDatetime.at(fake))
        compilation = pipeline.run([str(tmp_path / "policy.yaml")]) if outputs else compile_text(tmp_path, text)
        assert compilation.table is not None, [d.message for d in compilation.diagnostics]
        outputs.append(emit(compilation.table))
    assert len(set(outputs)) == 1


class _FrozenDatetime(dt.datetime):
    frozen = 0.0

    @classmethod
    def at(cls, seconds: float) -> type:
        return type("Frozen", (cls,), {"frozen": seconds})

    @classmethod
    def now(cls, tz=None):  # type: ignore[override]
        return dt.datetime.fromtimestamp(cls.frozen, tz or dt.timezone.utc)


# -- what the table holds --------------------------------------------------------------------------

def test_schedule_compiles_sorted_and_readable(tmp_path):
    table = table_for(tmp_path, schedule("""
zone: Africa/Nairobi
weekly:
  sat: "09:00-13:00"
  mon-fri: ["13:30-17:00", "08:00-12:30"]
  sun: closed
closures:
  - {from: 2026-12-31, to: 2027-01-01, name: New Year}
  - 2026-12-25
closed:
  - say: "Closed."
  - hangup: {}
"""))
    office = table["hours"]["office"]
    assert office["zone"] == "Africa/Nairobi"
    assert office["weekly"]["mon"] == ["08:00-12:30", "13:30-17:00"] and office["weekly"]["sun"] == []
    assert office["closures"] == [["2026-12-25", "2026-12-25", ""], ["2026-12-31", "2027-01-01", "New Year"]]
    assert office["closed"] == [{"say": {"text": "Closed."}}, {"hangup": {}}]
    assert table["rooms"]["support"]["hours"] == "office"


def test_no_weekly_means_open_every_day_but_closures(tmp_path):
    table = table_for(tmp_path, schedule("zone: UTC\nclosures: [2026-12-25]"))
    office = hours.Schedule("office", table["hours"]["office"])
    assert table["hours"]["office"]["weekly"] is None
    assert office.is_open(dt.datetime(2026, 12, 24, 3, tzinfo=dt.timezone.utc).timestamp())
    assert not office.is_open(dt.datetime(2026, 12, 25, 12, tzinfo=dt.timezone.utc).timestamp())
    assert table["hours"]["office"]["closed"][0]["say"]["text"] == hours.DEFAULT_CLOSED_TEXT


def test_hours_on_routes_flows_and_unknown_names(tmp_path):
    text = HEAD + """
hours:
  office: {zone: UTC, weekly: {daily: "08:00-17:00"}}
flows:
  menu:
    hours: office
    actions: [{say: "Hi."}]
rooms:
  support:
    name: "support-{{ query.ticket }}"
    hours: ofice
    roles: {caller: {}}
routes:
  /m: {flow: menu, hours: office}
  /j: {join: support, hours: nope}
  /e: events
"""
    found = [d.message for d in compile_text(tmp_path, text).diagnostics if d.code == "RC201"]
    assert any("room 'support' names undefined hours 'ofice'; did you mean 'office'" in m for m in found)
    assert any("route '/j' names undefined hours 'nope'" in m for m in found)


def test_speech_defaults_reach_every_say_that_names_none(tmp_path):
    table = table_for(tmp_path, HEAD + """
defaults: {voice: alice, language: sw-KE}
hours:
  office: {zone: UTC}
rooms:
  support:
    name: "support-{{ query.ticket }}"
    voice: woman
    roles:
      caller:
        say: "Karibu."
        actions: [{say: {text: "Own voice.", voice: man, language: en-KE}}]
flows:
  menu:
    language: en-KE
    hours: office
    actions:
      - getDigits: {nested: [{say: "Press 1."}]}
routes:
  /j: {join: support}
  /m: {flow: menu}
  /e: events
""")
    role = table["rooms"]["support"]["roles"][0]["actions"]
    assert role[0] == {"say": {"text": "Own voice.", "voice": "man", "language": "en-KE"}}
    assert role[1] == {"say": {"text": "Karibu.", "voice": "woman", "language": "sw-KE"}}
    assert table["rooms"]["support"]["whenFull"][0]["say"]["voice"] == "woman"
    nested = table["flows"]["menu"]["actions"][0]["getDigits"]["nested"][0]
    assert nested == {"say": {"text": "Press 1.", "voice": "alice", "language": "en-KE"}}
    assert table["server"]["fallback"][0]["say"] == {
        "text": "Sorry, we could not connect your call. Please try again later.", "voice": "alice",
        "language": "sw-KE"}
    assert table["hours"]["office"]["closed"][0]["say"]["language"] == "sw-KE"


@pytest.mark.parametrize("key, value", [("voice", "alice bob"), ("voice", "{{ query.v }}"), ("voice", "-x"),
                                        ("language", "english"), ("language", "sw_KE"), ("language", "s"),
                                        ("language", "en-KE-x-../../")])
def test_speech_defaults_must_look_like_a_voice_and_a_language(tmp_path, key, value):
    text = HEAD + f'defaults: {{{key}: "{value}"}}\n' + ROOM.replace("    hours: office\n", "")
    assert "RC104" in codes(tmp_path, text)


def test_schema_bounds_hostile_sizes(tmp_path):
    many = ", ".join(f'"{h:02d}:00-{h:02d}:30"' for h in range(24)) + ", " + \
        ", ".join(f'"{h:02d}:31-{h:02d}:40"' for h in range(24)) + ', "23:50-23:55"'
    assert "RC104" in codes(tmp_path, schedule(f"zone: UTC\nweekly: {{mon: [{many}]}}"))
    found = compile_text(tmp_path, schedule("zone: " + "A/" * 5000 + "B")).diagnostics
    assert any(d.code == "RC104" and "has more than 64 characters" in d.message and len(d.message) < 200
               for d in found), [d.message[:200] for d in found]


# -- evaluation (the runtime's Schedule) ------------------------------------------------------------

def _at(text: str) -> float:
    return dt.datetime.fromisoformat(text).timestamp()


def test_open_and_closed_on_the_zones_wall_clock():
    office = hours.Schedule("office", hours.compiled("Africa/Nairobi", {"mon-fri": "08:00-17:00"},
                                                     [{"date": "2026-12-25", "name": "Christmas"}]))
    assert office.is_open(_at("2026-12-24T08:00+03:00"))
    assert office.is_open(_at("2026-12-24T05:00Z"))  # 08:00 in Nairobi
    assert not office.is_open(_at("2026-12-24T07:59:59+03:00"))
    assert not office.is_open(_at("2026-12-24T17:00+03:00"))  # the end is not included
    assert not office.is_open(_at("2026-12-25T09:00+03:00"))
    assert office.explain(_at("2026-12-25T09:00+03:00"))[1].endswith("a closure (Christmas)")
    assert not office.is_open(_at("2026-12-26T09:00+03:00"))  # Saturday


def test_dst_gap_and_fold_follow_the_wall_clock():
    night = hours.Schedule("night", hours.compiled("Europe/London", {"sun": "01:30-03:00"}, None))
    # 2026-03-29: clocks jump 01:00 -> 02:00 GMT->BST; 01:30 never shows, the range opens at 02:00 local.
    assert not night.is_open(_at("2026-03-29T00:59:00+00:00"))
    assert night.is_open(_at("2026-03-29T01:00:00+00:00"))  # 02:00 BST
    assert night.is_open(_at("2026-03-29T01:59:00+00:00"))  # 02:59 BST
    assert not night.is_open(_at("2026-03-29T02:00:00+00:00"))  # 03:00 BST
    # 2026-10-25: clocks go back 02:00 -> 01:00; 01:30-02:00 shows twice and both count.
    assert night.is_open(_at("2026-10-25T00:30:00+00:00"))  # 01:30 BST, first time
    assert night.is_open(_at("2026-10-25T01:30:00+00:00"))  # 01:30 GMT, second time
    assert night.is_open(_at("2026-10-25T02:59:00+00:00"))
    assert not night.is_open(_at("2026-10-25T03:00:00+00:00"))


def test_dst_troubles_are_found_and_fixed_in_years():
    london = hours.dst_troubles("Europe/London")
    assert ("gap", 60, 120, "2026-03-29") in london and ("fold", 60, 120, "2026-10-25") in london
    assert hours.dst_troubles("Africa/Nairobi") == ()
    assert {date[:4] for _, _, _, date in london} == {str(y) for y in range(2020, 2041)}


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 6), st.integers(0, 1439), st.integers(1, 1440)), max_size=8),
       st.integers(0, 4_000_000_000), st.sampled_from(["UTC", "Africa/Nairobi", "America/New_York", "Asia/Kolkata"]))
def test_is_open_agrees_with_reading_the_wall_clock(ranges, instant, zone_name):
    weekly = {hours.DAYS[d]: [] for d in range(7)}
    for day, start, end in ranges:
        if end > start:
            weekly[hours.DAYS[day]].append(f"{hours.minutes_text(start)}-{hours.minutes_text(end)}")
    spec = {"zone": zone_name, "weekly": weekly, "closures": []}
    compiled = hours.Schedule("s", spec)
    local = dt.datetime.fromtimestamp(instant, hours.zone(zone_name))
    minute = local.hour * 60 + local.minute
    expected = any(d == local.weekday() and s <= minute < e for d, s, e in ranges if e > s)
    assert compiled.is_open(instant) is expected
    assert compiled.explain(instant)[0] is expected


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(1_790_000_000, 1_800_000_000), min_size=2, max_size=40))
def test_one_schedule_asked_again_and_again_answers_each_instant_afresh(instants):
    """The last-minute cache never answers for another minute, in any order of asking."""
    office = hours.Schedule("office", hours.compiled("Europe/London", {"mon-fri": ["08:00-12:30", "13:30-17:00"]},
                                                     ["2026-12-25", {"from": "2026-08-01", "to": "2026-08-14"}]))
    fresh = [hours.Schedule("office", hours.compiled("Europe/London", {"mon-fri": ["08:00-12:30", "13:30-17:00"]},
                                                     ["2026-12-25", {"from": "2026-08-01", "to": "2026-08-14"}]))
             .explain(i)[0] for i in instants]
    assert [office.is_open(i) for i in instants + [i + 59 for i in instants]] == fresh + [
        office.explain(i + 59)[0] for i in instants]


def test_a_range_starting_in_a_fold_follows_the_clock_both_times():
    night = hours.Schedule("night", hours.compiled("Europe/London", {"sun": "01:30-06:00"}, None))
    assert night.is_open(_at("2026-10-25T00:30:00+00:00"))  # 01:30 BST: opens
    assert not night.is_open(_at("2026-10-25T01:00:00+00:00"))  # clocks back to 01:00 GMT: before 01:30 again
    assert night.is_open(_at("2026-10-25T01:30:00+00:00"))  # the second 01:30


# -- `now` in a room's name, and closed answers that come back to the closed room ------------------------

@pytest.mark.parametrize("name", ["support-{{ now.minute }}", "day-{{ now.date }}-{{ query.ticket }}",
                                  "t{{ now.timestamp }}"])
def test_a_room_name_read_from_the_clock_is_rc610(tmp_path, name):
    # Each value of `now` is a new conference with its own seats: callers a moment apart (or either side
    # of midnight) are split up, and maxParticipants counts per minute, not per line.
    text = HEAD + "defaults: {zone: Africa/Nairobi}\n" + ROOM.replace("support-{{ query.ticket }}", name) \
        .replace("    hours: office\n", "")
    assert "RC610" in codes(tmp_path, text)
    spoken = compile_text(tmp_path, HEAD + "defaults: {zone: Africa/Nairobi}\n" + ROOM.replace(
        "    hours: office\n", "").replace("caller: {say: \"Hello.\"}", "caller: {say: \"It is {{ now.time }}.\"}"))
    assert spoken.table is not None and "now.time" in str(spoken.table["rooms"])
    assert not [d for d in spoken.diagnostics if d.code == "RC610"]  # `now` spoken is fine


def test_closed_actions_that_join_a_room_under_the_same_hours_are_rc611(tmp_path):
    # While the schedule is closed, so is the room its closed answer joins: every caller would get the
    # fallback apology (joins nested too deep), never the closed message.
    looped = schedule('zone: UTC\nweekly: {mon-fri: "08:00-17:00"}\nclosed: [{say: "Closed."}, {join: support}]')
    found = [d for d in compile_text(tmp_path, looped).diagnostics if d.code == "RC611"]
    assert found and "'support'" in found[0].message and found[0].severity.value == "error"
    after_hours = looped.replace("{join: support}", "{join: voicemail}").replace(
        "rooms:\n", "rooms:\n  voicemail: {name: \"vm-{{ query.ticket }}\", roles: {caller: {}}}\n")
    compilation = compile_text(tmp_path, after_hours)
    assert compilation.table is not None and not [d for d in compilation.diagnostics if d.code == "RC611"]


def test_explain_names_the_closure_of_that_day_not_the_one_it_was_merged_with():
    # Adjacent and overlapping closures are merged for the runtime's one bisect; explain still names each day's.
    office = hours.Schedule("office", hours.compiled("Africa/Nairobi", {"daily": "08:00-17:00"}, [
        {"date": "2026-12-25", "name": "Christmas Day"}, {"date": "2026-12-26", "name": "Boxing Day"},
        {"from": "2026-12-20", "to": "2026-12-24", "name": "Stocktake"},
        {"from": "2027-01-01", "to": "2027-01-03", "name": "New Year"}, "2027-01-02"]))
    why = {day: office.explain(_at(f"{day}T09:00+03:00"))[1] for day in
           ("2026-12-20", "2026-12-25", "2026-12-26", "2027-01-01", "2027-01-02")}
    assert why["2026-12-20"].endswith("a closure (Stocktake)")
    assert why["2026-12-25"].endswith("a closure (Christmas Day)")
    assert why["2026-12-26"].endswith("a closure (Boxing Day)")
    assert why["2027-01-01"].endswith("a closure (New Year)")
    assert why["2027-01-02"].endswith("a closure (New Year)")  # the unnamed one adds no name
    assert office.is_open(_at("2026-12-27T09:00+03:00")) and office.explain(_at("2026-12-27T09:00+03:00"))[0]


def test_explain_tells_the_two_passes_of_a_fold_apart():
    # 01:15 happens twice in London on 2026-10-25: explain says which one it answers for.
    night = hours.Schedule("night", hours.compiled("Europe/London", {"sun": "01:00-01:30"}, None))
    first, second = night.explain(_at("2026-10-25T00:15Z")), night.explain(_at("2026-10-25T01:15Z"))
    assert first[0] and second[0] and first[1] != second[1]
    assert "01:15 Europe/London (the first 01:15, UTC+01:00)" in first[1]
    assert "01:15 Europe/London (the second 01:15, UTC+00:00)" in second[1]
    assert "(the" not in night.explain(_at("2026-10-25T02:15Z"))[1]  # 02:15 happens once


@pytest.mark.parametrize("when, hint", [
    ("now.hour == '09'", "now.hour is a number"),
    ("now.minute in ['0', '30']", "now.minute is a number"),
    ("now.time > 17", "now.time is text"),
    ("now.weekday == 'tuesday'", "'tue'"),
    ("now.weekday in ['sat', 'Sun']", "'sun'"),
    ("17 <= now.hour and now.weekday != 'Fri'", "'fri'"),
])
def test_comparing_now_with_the_wrong_kind_of_value_is_rc304(tmp_path, when, hint):
    # Each of these is silently never true (or an error, which a condition reads as false): a dead role.
    text = HEAD + "defaults: {zone: Africa/Nairobi}\n" + ROOM.replace("    hours: office\n", "").replace(
        'caller: {say: "Hello."}', f'early: {{when: "{when}"}}\n      caller: {{say: "Hello."}}')
    found = [d for d in compile_text(tmp_path, text).diagnostics if d.code == "RC304"]
    assert found and hint in found[0].message, [d.message for d in found]


@pytest.mark.parametrize("when", ["now.hour < 12", "now.minute in [0, 30]", "now.time >= '17:00'",
                                  "now.weekday in ['sat', 'sun']", "now.date == '2026-12-24'", "now.month == 12"])
def test_comparing_now_with_its_own_kind_of_value_is_fine(tmp_path, when):
    text = HEAD + "defaults: {zone: Africa/Nairobi}\n" + ROOM.replace("    hours: office\n", "").replace(
        'caller: {say: "Hello."}', f'early: {{when: "{when}"}}\n      caller: {{say: "Hello."}}')
    compilation = compile_text(tmp_path, text)
    assert compilation.table is not None and "RC304" not in [d.code for d in compilation.diagnostics]


@pytest.mark.parametrize("name, hint", [("Etc/GMT+3", "3 hours behind UTC"), ("Etc/GMT-3", "3 hours ahead of UTC"),
                                        ("Etc/GMT+10", "10 hours behind UTC"), ("Factory", "no place")])
def test_zones_that_mean_something_else_than_they_seem_are_rc612(tmp_path, name, hint):
    # Etc/GMT+3 is UTC-3 (POSIX signs): an operator in Nairobi writing it is six hours off.
    text = HEAD + f"defaults: {{zone: '{name}'}}\n" + ROOM.replace("    hours: office\n", "").replace(
        'caller: {say: "Hello."}', 'caller: {say: "It is {{ now.time }}."}')
    found = [d for d in compile_text(tmp_path, text).diagnostics if d.code == "RC612"]
    assert found and hint in found[0].message, [d.message for d in found]
    text = schedule(f'zone: "{name}"\nweekly: {{mon-fri: "08:00-17:00"}}')
    assert "RC612" in codes(tmp_path, text)


@pytest.mark.parametrize("name", ["UTC", "Etc/UTC", "Etc/GMT", "GMT", "Etc/GMT+0", "Etc/GMT-0", "Africa/Nairobi",
                                  "America/New_York"])
def test_plain_zones_are_not_rc612(tmp_path, name):
    compilation = compile_text(tmp_path, schedule(f'zone: "{name}"\nweekly: {{mon-fri: "08:00-17:00"}}'))
    assert compilation.table is not None and "RC612" not in [d.code for d in compilation.diagnostics]
