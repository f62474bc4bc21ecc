"""Tests for kgen.load: valid specs load, warnings do not fail, and error details (the exact
position, the path, the hint) are what a user needs. Whole messages of realistic mistakes are
pinned in tests/invalid/ (see test_invalid_specs.py); these tests pin the mechanics."""

from __future__ import annotations

from pathlib import Path

import pytest

from kgen.spec.errors import SpecError, SpecInvalid, format_path
from kgen.spec.load import load_spec

ROOT = Path(__file__).resolve().parent.parent

PAYMENTS = """\
app = "payments"

[topics.payment]
[topics.unknown-payment]

[[streams]]
name = "unknown-payments"
from = "payment"
steps = [
  { filter = "key == 'unknown'" },
  { to = "unknown-payment" },
]
"""


def write(tmp_path: Path, text: str, name: str = "spec.toml") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode())
    return path


def problems(tmp_path: Path, text: str) -> list[SpecError]:
    with pytest.raises(SpecInvalid) as info:
        load_spec(write(tmp_path, text), "spec.toml")
    return info.value.errors


def only(tmp_path: Path, text: str) -> SpecError:
    found = problems(tmp_path, text)
    assert len(found) == 1, [e.format() for e in found]
    return found[0]


# --- valid specs -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["payments", "orders"])
def test_examples_load_without_warnings(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    loaded = load_spec(Path(f"specs/{name}.toml"))
    assert loaded.spec.app == name
    assert loaded.display_path == f"specs/{name}.toml"
    assert loaded.warnings == ()
    assert len(loaded.sha256) == 64


def test_warnings_do_not_fail(tmp_path: Path) -> None:
    text = PAYMENTS.replace("[topics.payment]", '[topics."payment!"]').replace(
        'from = "payment"', 'from = "payment!"'
    )
    text = text.replace('app = "payments"', 'app = "payments"\ndead_letter_topic = "payment!"')
    loaded = load_spec(write(tmp_path, text), "spec.toml")
    assert [(w.line, w.col, w.path) for w in loaded.warnings] == [
        (2, 1, "dead_letter_topic"),
        (4, 1, 'topics."payment!"'),
    ]
    assert all(w.warning for w in loaded.warnings)
    assert "not a legal Kafka topic name" in loaded.warnings[1].message
    assert loaded.warnings[1].format().startswith("spec.toml:4:1: warning: ")


def test_warnings_are_shown_with_errors_but_not_counted(tmp_path: Path) -> None:
    text = PAYMENTS.replace("[topics.payment]", '[topics."payment!"]').replace(
        'from = "payment"', 'from = "payment!"'
    )
    text = text.replace('to = "unknown-payment"', 'to = "unknown-payments"')
    with pytest.raises(SpecInvalid) as info:
        load_spec(write(tmp_path, text), "spec.toml")
    lines = info.value.format().splitlines()
    assert "warning: " in lines[0]
    assert lines[-1] == "1 error in spec.toml"


# --- positions -------------------------------------------------------------------------------


def test_expression_errors_point_into_the_expression(tmp_path: Path) -> None:
    error = only(tmp_path, PAYMENTS.replace("key == 'unknown'", "key == limit"))
    # `  { filter = "key == limit" }`: the string's text starts at column 15.
    assert (error.line, error.col) == (10, 22)
    assert error.path == "streams[0].steps[0].filter"
    assert error.message == "unknown name 'limit' in 'key == limit'"


def test_expression_columns_count_characters(tmp_path: Path) -> None:
    error = only(tmp_path, PAYMENTS.replace("key == 'unknown'", "key == 'ü' and limit"))
    assert (error.line, error.col) == (10, 30)


def test_expression_with_escapes_is_reported_at_its_key(tmp_path: Path) -> None:
    text = PAYMENTS.replace("\"key == 'unknown'\"", '"key == \\"x\\" and limit"')
    error = only(tmp_path, text)
    assert (error.line, error.col) == (10, 5)
    assert error.message.endswith("(at column 16 of the expression)")


def test_expression_that_ends_too_early(tmp_path: Path) -> None:
    error = only(tmp_path, PAYMENTS.replace("key == 'unknown'", "key =="))
    assert (error.line, error.col) == (10, 21)
    assert error.hint == "the expression ends too early"


def test_unknown_step_points_at_the_key(tmp_path: Path) -> None:
    error = only(tmp_path, PAYMENTS.replace("{ filter =", "{ name = 'f', mapValues ="))
    assert (error.line, error.col) == (10, 17)
    assert error.path == "streams[0].steps[0]"
    assert error.hint.startswith("did you mean 'map_values'?")


def test_crlf_line_endings(tmp_path: Path) -> None:
    text = PAYMENTS.replace("key == 'unknown'", "key = 1").replace("\n", "\r\n")
    error = only(tmp_path, text)
    assert (error.line, error.col) == (10, 19)
    assert error.hint == "to compare, use '=='"


def test_toml_errors_have_no_field_path(tmp_path: Path) -> None:
    text = PAYMENTS.replace("'unknown'\" },", "'unknown'\" }")
    error = only(tmp_path, text)
    assert error.path == ""
    assert error.format().startswith("spec.toml:11:3: invalid TOML: expected ',' or ']'")
    assert "(the array opened at line 9, column 9)" in error.hint


def test_not_utf8_points_at_the_byte(tmp_path: Path) -> None:
    path = tmp_path / "spec.toml"
    path.write_bytes(b'app = "x"\ndescription = "caf\xe9"\n')
    with pytest.raises(SpecInvalid) as info:
        load_spec(path, "spec.toml")
    (error,) = info.value.errors
    assert (error.line, error.col, error.path) == (2, 19, "")
    assert "0xe9" in error.message


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(SpecInvalid) as info:
        load_spec(tmp_path / "nope.toml", "nope.toml")
    assert info.value.format() == (
        "nope.toml:1:1: cannot read the file: No such file or directory\n1 error in nope.toml"
    )


# --- one message per mistake -----------------------------------------------------------------


def test_a_misspelled_field_is_not_also_missing(tmp_path: Path) -> None:
    error = only(tmp_path, PAYMENTS.replace("[[streams]]", "[[stream]]"))
    assert error.message == "unknown field 'stream'"
    assert error.hint.startswith("did you mean 'streams'?")


def test_a_bad_function_reference_is_one_error(tmp_path: Path) -> None:
    text = PAYMENTS.replace("\"key == 'unknown'\"", '{ function = "rules.is_unknown" }')
    error = only(tmp_path, text)
    assert error.path == "streams[0].steps[0].filter.function"


def test_a_value_no_union_member_accepts_is_one_error(tmp_path: Path) -> None:
    error = only(tmp_path, PAYMENTS.replace('from = "payment"', "from = 5"))
    assert error.path == "streams[0].from"
    assert error.message == "expected a string or an array of strings, got an integer (5)"


def test_a_bad_array_element_is_located_at_the_element(tmp_path: Path) -> None:
    error = only(tmp_path, PAYMENTS.replace('from = "payment"', 'from = ["payment", 5]'))
    assert (error.line, error.col, error.path) == (8, 20, "streams[0].from[1]")


def test_unknown_fields_list_the_fields_of_the_right_table(tmp_path: Path) -> None:
    text = PAYMENTS.replace(
        '{ to = "unknown-payment" }',
        "{ to = { topic = \"'unknown-payment'\", topics = ['unknown-payment'], default = 'x' } }",
    )
    error = only(tmp_path, text)
    assert error.path == "streams[0].steps[1].to.default"
    assert error.hint == "known fields: topic, topics"


def test_a_topic_named_like_a_type_is_a_topic(tmp_path: Path) -> None:
    # pydantic labels union members 'str' in error locations; a topic of that name stays.
    text = PAYMENTS.replace("[topics.payment]", "[topics.str]\npartitions = 0")
    text = text.replace('from = "payment"', 'from = "str"')
    error = only(tmp_path, text)
    assert error.path == "topics.str.partitions"
    assert error.message == "must be at least 1, got 0"


def test_types_are_strict(tmp_path: Path) -> None:
    text = PAYMENTS.replace("[topics.payment]", '[topics.payment]\npartitions = "3"')
    error = only(tmp_path, text)
    assert error.message == "expected an integer, got a string ('3')"
    assert error.hint == "write it without quotes: 3"


def test_an_unread_stream_from_a_typo_is_not_reported_twice(tmp_path: Path) -> None:
    text = PAYMENTS.replace('{ to = "unknown-payment" },', "") + (
        '\n[[streams]]\nname = "out"\nfrom_stream = "unknown-payment"\n'
        'steps = [{ to = "unknown-payment" }]\n'
    )
    error = only(tmp_path, text)
    assert error.message.startswith("unknown stream 'unknown-payment'")
    assert error.hint == "did you mean 'unknown-payments'?"


def test_errors_are_sorted_and_counted(tmp_path: Path) -> None:
    text = PAYMENTS.replace('to = "unknown-payment"', 'to = "nowhere"').replace(
        'from = "payment"', 'from = "elsewhere"'
    )
    found = problems(tmp_path, text)
    assert [(e.line, e.path) for e in found] == [
        (8, "streams[0].from"),
        (11, "streams[0].steps[1].to"),
    ]
    with pytest.raises(SpecInvalid) as info:
        load_spec(write(tmp_path, text), "spec.toml")
    assert info.value.format().splitlines()[-1] == "2 errors in spec.toml"


def test_format_path_writes_toml_keys() -> None:
    assert format_path(("topics", "unknown-payment", "partitions")) == (
        "topics.unknown-payment.partitions"
    )
    assert format_path(("topics", "t", "config", "retention.ms")) == (
        'topics.t.config."retention.ms"'
    )
    assert format_path(("streams", 0, "steps", 2)) == "streams[0].steps[2]"
    assert format_path(()) == ""
