"""The loader turns YAML traps into findings at the right place, and never loads a bomb."""
import time

from roomc.compiler.load import load_text


def codes(text, path="p.yaml"):
    source = load_text(text, path)
    return [(d.code, d.span.line, d.span.column) for d in source.diagnostics], source


def test_duplicate_key_reports_second_place_and_names_first():
    found, source = codes("roomc: 1\nrooms:\n  a: 1\n  a: 2\n")
    assert found == [("RC002", 4, 3)]
    assert "first at line 3, column 3" in source.diagnostics[0].message
    assert source.data["rooms"]["a"] == 2


def test_yaml11_booleans_are_flagged_at_the_value():
    found, source = codes("beep: yes\nmuted: off\nrecord: true\n")
    assert found == [("RC003", 1, 7), ("RC003", 2, 8)]
    assert "write true" in source.diagnostics[0].message


def test_multi_document_file_reports_the_second_document():
    found, _ = codes("roomc: 1\n---\nroomc: 1\n")
    assert found == [("RC004", 2, 1)]


def test_merge_key_is_refused():
    found, _ = codes("base: &b {beep: true}\nroom:\n  <<: *b\n")
    assert found == [("RC005", 3, 3)]


def test_tab_indentation_is_reported_once():
    found, _ = codes("rooms:\n\tmeeting: 1\n")
    assert found == [("RC006", 2, 1)]


def test_non_utf8_file_points_at_the_byte():
    found, source = codes(b"roomc: 1\nsay: caf\xe9\n")
    assert found == [("RC007", 2, 9)]
    assert "0xe9" in source.diagnostics[0].message


def test_empty_and_comment_only_files():
    assert codes("")[0] == [("RC008", 1, 1)]
    assert codes("# nothing here\n")[0] == [("RC008", 1, 1)]


def test_syntax_error_has_a_position():
    found, source = codes("rooms: [unclosed\n")
    assert found[0][0] == "RC001"
    assert found[0][1] == 2


def test_billion_laughs_is_refused_fast():
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, 10):
        refs = ",".join([f"*a{i-1}"] * 9)
        lines.append(f"a{i}: &a{i} [{refs}]")
    started = time.perf_counter()
    found, source = codes("\n".join(lines) + "\n")
    elapsed = time.perf_counter() - started
    assert [c for c, _, _ in found] == ["RC009"]
    assert source.data is None
    assert elapsed < 1.0, elapsed


def test_self_referencing_alias_is_refused():
    found, _ = codes("a: &x\n  - *x\n")
    assert [c for c, _, _ in found] == ["RC009"]


def test_spans_record_keys_and_values():
    _, source = codes("roomc: 1\nrooms:\n  meeting:\n    name: x\n")
    assert (source.key_spans[("rooms", "meeting", "name")].line,
            source.key_spans[("rooms", "meeting", "name")].column) == (4, 5)
    assert source.value_spans[("rooms", "meeting", "name")].column == 11


def test_suppression_comments_are_collected():
    _, source = codes("name: x  # roomc: ignore[RC204, rc207]\n")
    assert source.suppressions[1][1] == frozenset({"RC204", "RC207"})


def test_a_second_document_marker_on_the_last_line_is_a_finding_not_a_crash(tmp_path):
    """Found by test_properties: `---` as the file's last line put the document's mark past the end."""
    from roomc.compiler import pipeline

    path = tmp_path / "policy.yaml"
    path.write_text("roomc: 1\n---\n")
    assert "RC004" in [d.code for d in pipeline.run([str(path)]).diagnostics]


def test_yaml11_number_traps_are_located():
    found, source = codes("a: 010\nb: 1:20\nc: 1_0\nd: 0123\ne: 0b11\nf: '010'\ng: 10\nh: 0x1F\n")
    assert found == [("RC011", 1, 4), ("RC011", 2, 4), ("RC011", 3, 4), ("RC011", 4, 4), ("RC011", 5, 4)]
    assert "octal in YAML 1.1 (83) and 123 in YAML 1.2" in source.diagnostics[3].message
    assert source.data["f"] == "010" and source.data["g"] == 10


def test_huge_and_out_of_range_numbers_are_located_not_internal_errors():
    found, source = codes("a: " + "9" * 5000 + "\nb: 1.0e+38\nc: .inf\nd: 2147483647\n")
    assert found == [("RC012", 1, 4), ("RC012", 2, 4), ("RC012", 3, 4)]
    assert source.refused == {("a",), ("b",), ("c",)} and source.data["d"] == 2147483647


def test_unterminated_quote_is_reported_where_it_opened():
    found, _ = codes("roomc: 1\nrooms:\n  m:\n    name: \"meet-{{ query.room }}\n    roles: {}\n\n")
    assert found == [("RC001", 4, 11)]


def test_control_character_is_reported_where_it_is():
    found, source = codes("roomc: 1\nsay: ab\x07c\n")
    assert found == [("RC001", 2, 8)]
    assert "U+0007" in source.diagnostics[0].message


def test_a_route_table_is_one_finding():
    found, _ = codes('{"roomc": "0.1.0", "format": 1, "digest": "sha256:x", "routes": {}, "rooms": {}, "flows": {}}')
    assert found == [("RC013", 1, 1)]
