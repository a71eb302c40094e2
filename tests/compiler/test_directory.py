"""The meeting directory file, hostile first: huge files, a million rows, formula injection, a
byte-order mark, repeated headers, FIFOs, YAML numbers and alias bombs. No finding quotes a PIN."""
import os
import time

import pytest

from roomc.compiler import directory
from roomc.compiler.diagnostics import Severity


def read(tmp_path, name: str, content: str | bytes):
    path = tmp_path / name
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return directory.read(str(path))


def codes(found) -> list[tuple[str, int]]:
    return [(d.code, d.span.line) for d in found.findings]


def test_a_million_rows_are_refused_before_they_are_read(tmp_path):
    rows = "".join(f"{i},{i % 9000 + 1000},{i % 9000 + 1001}\n" for i in range(1_000_000))
    started = time.perf_counter()
    found = read(tmp_path, "m.csv", "meeting,hostPin,participantPin\n" + rows)
    assert time.perf_counter() - started < 5 and not found.entries
    assert codes(found) == [("RC230", 1)] and "over the limit" in found.findings[0].message


def test_rows_past_the_limit_stop_the_read_with_a_finding(tmp_path, monkeypatch):
    monkeypatch.setattr(directory, "MAX_MEETINGS", 1000)
    rows = "".join(f"{i},{1000 + i},{5000 + i}\n" for i in range(1500))
    found = read(tmp_path, "m.csv", "meeting,hostPin,participantPin\n" + rows)
    assert len(found.entries) == 1000 and codes(found) == [("RC230", 1002)]


def test_the_largest_allowed_directory_loads_in_bounded_time(tmp_path):
    rows = "".join(f"{100000 + i},{1000 + i % 8000},{9000 + i % 999}\n" for i in range(directory.MAX_MEETINGS))
    started = time.perf_counter()
    found = read(tmp_path, "m.csv", "meeting,hostPin,participantPin\n" + rows)
    assert found.ok and len(found.entries) == directory.MAX_MEETINGS
    assert time.perf_counter() - started < 30  # generous: a shared, loaded machine; about 1 s quiet

    from roomc.runtime.directory import MeetingDirectory
    started = time.perf_counter()
    loaded = MeetingDirectory(found.entries)
    assert len(loaded) == directory.MAX_MEETINGS and time.perf_counter() - started < 30


def test_formula_injection_and_keypad_characters_are_row_findings_that_quote_nothing(tmp_path):
    found = read(tmp_path, "m.csv", "meeting,hostPin,participantPin,name\n"
                 "111111,=cmd|' /C calc'!A0,2222,ok\n"
                 "222222,3333,4444,=HYPERLINK(\"http://x\")\n"
                 "333333,12*4,56#7,ok\n"
                 "444444,１２３４,5678,ok\n"
                 "555555,9876,5432,@SUM(1)\n")
    assert codes(found) == [("RC231", 2), ("RC231", 3), ("RC231", 4), ("RC231", 4), ("RC231", 5), ("RC231", 6)]
    text = " ".join(d.message for d in found.findings)
    for secret in ("cmd", "calc", "HYPERLINK", "12*4", "56#7", "１２３４", "9876", "5432", "3333", "4444"):
        assert secret not in text
    assert not found.entries


def test_a_byte_order_mark_and_blank_lines_are_not_data(tmp_path):
    found = read(tmp_path, "m.csv", "\ufeffMeeting, HostPin ,participantpin\n\n123456,4321,1111\n\n")
    assert found.ok and [(e.meeting, e.line) for e in found.entries] == [("123456", 3)]


@pytest.mark.parametrize("header", ["meeting,hostPin,hostPin,participantPin", "meeting,hostPin,HOSTPIN,participantPin",
                                    "meeting,hostPin,participantPin,pin", "meeting,hostPin"])
def test_repeated_unknown_or_missing_columns_refuse_the_file(tmp_path, header):
    found = read(tmp_path, "m.csv", header + "\n123456,1,2,3\n")
    assert [c for c, _ in codes(found)] == ["RC231"] and not found.entries


def test_duplicates_and_equal_pins(tmp_path):
    found = read(tmp_path, "m.csv", "meeting,hostPin,participantPin\n1,11,12\n1,21,22\n2,33,33\n")
    assert codes(found) == [("RC232", 3), ("RC233", 4)]
    assert "33" not in found.findings[1].message.replace("meeting 2", "")


def test_unreadable_files(tmp_path):
    assert codes(directory.read(str(tmp_path / "missing.csv"))) == [("RC230", 1)]
    assert codes(read(tmp_path, "m.csv", b"meeting,hostPin,participantPin\n1,\xff\xfe,2\n")) == [("RC230", 1)]
    assert codes(read(tmp_path, "m.xlsx", "meeting,hostPin,participantPin\n")) == [("RC230", 1)]
    assert codes(read(tmp_path, "empty.csv", "")) == [("RC230", 1)]
    assert codes(read(tmp_path, "quote.csv", 'meeting,hostPin,participantPin\n1,"2\n')) == [("RC230", 2)]
    fifo = tmp_path / "fifo.csv"
    os.mkfifo(fifo)
    started = time.perf_counter()
    assert codes(directory.read(str(fifo))) == [("RC230", 1)] and time.perf_counter() - started < 5


def test_yaml_directories(tmp_path):
    good = read(tmp_path, "m.yaml", 'meetings:\n  - {meeting: "123456", hostPin: "0042", participantPin: "1111"}\n')
    assert good.ok and good.entries[0].host_pin == "0042"
    numbers = read(tmp_path, "n.yaml", "meetings:\n  - {meeting: \"1\", hostPin: 42, participantPin: \"7\"}\n")
    assert codes(numbers) == [("RC231", 2)] and "quote it" in numbers.findings[0].message
    shape = read(tmp_path, "s.yml", "- {meeting: '1', hostPin: '2', participantPin: '3'}\n")
    assert [c for c, _ in codes(shape)] == ["RC231"]
    bomb = "a: &a [" + ",".join(["x"] * 50) + "]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [" + ",".join([f"*{chr(97 + i)}"] * 50) + "]\n" for i in range(6))
    refused = read(tmp_path, "bomb.yaml", bomb + "meetings: []\n")
    assert [c for c, _ in codes(refused)] == ["RC230"]


def test_every_finding_is_an_error_but_none_is_fatal_to_the_reader(tmp_path):
    found = read(tmp_path, "m.csv", "meeting,hostPin,participantPin\n\x00,\x00,\x00\n" + "9," * 10_000 + "\n")
    assert found.findings and all(d.severity is Severity.ERROR for d in found.findings)


from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

CELL = st.one_of(st.text(max_size=12), st.from_regex(r"[0-9]{1,8}", fullmatch=True), st.sampled_from(["=cmd", "", "#"]))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.one_of(st.binary(max_size=600), st.lists(st.lists(CELL, min_size=1, max_size=5), max_size=12).map(
    lambda rows: "meeting,hostPin,participantPin\n" + "\n".join(",".join(r) for r in rows))))
def test_any_file_is_read_without_raising_and_every_entry_is_usable(tmp_path, content):
    found = read(tmp_path, "p.csv", content)
    meetings = [e.meeting for e in found.entries]
    assert len(meetings) == len(set(meetings))
    for entry in found.entries:
        for value in (entry.meeting, entry.host_pin, entry.participant_pin):
            assert directory.DIGITS.fullmatch(value)
        assert entry.host_pin != entry.participant_pin
    # Findings are bounded and name a line of the file, whatever the file holds.
    assert all(len(d.message) < 300 and d.span.line >= 1 for d in found.findings)


def test_a_yaml_directory_in_the_policy_folder_is_one_finding_that_shows_none_of_its_lines(invoke, tmp_path):
    from ..conftest import ROOMS
    for name in ("dial-in-bridge.yaml", "dial-in-meetings.csv"):
        (tmp_path / name).write_text((ROOMS / name).read_text())
    # Unquoted 0042 alone would be RC011 with the line (and its PIN) shown under it.
    (tmp_path / "meetings.yaml").write_text('meetings:\n  - {meeting: "1", hostPin: 0042, participantPin: "98765"}\n')
    for fmt in ("text", "json", "sarif", "github"):
        result = invoke("lint", str(tmp_path), "--format", fmt)
        assert result.exit_code == 1 and "RC230" in result.output, fmt
        assert "0042" not in result.output and "98765" not in result.output, fmt


@pytest.mark.parametrize("content", ["4321,1111,123456\n8765,2222,222222\n", "hostPin 4321,meeting,participantPin\n",
                                     "root:x:0:0:root:/root:/bin/bash\n"])
def test_a_first_row_that_is_not_a_header_is_not_quoted(tmp_path, content):
    """A file saved without its header (PINs first), or a path that points at another file: the first
    row is data, and an "unknown column" finding that quoted it would print a PIN (or that file)."""
    found = read(tmp_path, "m.csv", content)
    assert codes(found) == [("RC231", 1)] and "header" in found.findings[0].message
    for secret in ("4321", "1111", "root:x"):
        assert secret not in found.problems() and secret not in found.findings[0].message


def test_unknown_yaml_keys_that_hold_digits_are_not_quoted(tmp_path):
    found = read(tmp_path, "m.yaml", 'meetings:\n  - {meeting: "123456", hostPin: "4321", participantPin: "1111",'
                 ' "9876": x}\n')
    assert codes(found) == [("RC231", 2)] and "9876" not in found.findings[0].message
    named = read(tmp_path, "n.yaml", 'meetings:\n  - {meeting: "123456", hostPin: "4321", participantPin: "1111",'
                 ' room: x}\n')
    assert "'room'" in named.findings[0].message  # a name without digits still helps the reader


def test_a_file_swapped_for_a_fifo_after_it_was_checked_does_not_hang_the_reader(tmp_path, monkeypatch):
    """The check and the read are one open file: a path that names a regular file when looked at and
    a FIFO when opened (a swap in between) is refused, not waited on for ever."""
    import threading

    fifo = tmp_path / "meetings.csv"
    os.mkfifo(fifo)
    regular = tmp_path / "regular.csv"
    regular.write_text("meeting,hostPin,participantPin\n")
    real_stat = os.stat
    monkeypatch.setattr(directory.os, "stat", lambda path, *a, **k: real_stat(regular if str(path) == str(fifo)
                                                                              else path, *a, **k))
    found: list = []
    reader = threading.Thread(target=lambda: found.append(directory.read(str(fifo))), daemon=True)
    reader.start()
    reader.join(timeout=5)
    if reader.is_alive():  # blocked opening the FIFO: open its other end so the thread can finish
        with open(fifo, "wb"):
            pass
        reader.join(timeout=5)
        pytest.fail("the reader waited on a FIFO")
    assert codes(found[0]) == [("RC230", 1)] and "regular file" in found[0].findings[0].message
