"""One run reports every error: schema errors and the semantic errors of the parts that are valid
(kgen.spec.parts), without follow-on errors from the parts that are not."""

from __future__ import annotations

from pathlib import Path

import pytest

from kgen.spec.errors import SpecError, SpecInvalid
from kgen.spec.load import load_spec

SHOP = """\
app = "shop"

[topics.orders]
value = "json"

[topics.big-orders]
value = "json"

[[streams]]
name = "big"
from = "orders"
steps = [
  { filter = "value['total'] > 100" },
  { to = "big-orders" },
]
"""


def problems(tmp_path: Path, text: str) -> list[SpecError]:
    path = tmp_path / "spec.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(SpecInvalid) as info:
        load_spec(path, "spec.toml")
    return [e for e in info.value.errors if not e.warning]


def summary(found: list[SpecError]) -> list[tuple[int, str, str]]:
    return [(e.line, e.path, e.message) for e in found]


def test_a_schema_error_and_a_semantic_error_in_other_parts(tmp_path: Path) -> None:
    text = SHOP.replace('value = "json"\n\n[[streams]]', 'value = "jsn"\n\n[[streams]]')
    text = text.replace("> 100", "> limit")
    assert summary(problems(tmp_path, text)) == [
        (
            7,
            "topics.big-orders.value",
            "unsupported format 'jsn' (formats: 'string', "
            "'json', 'bytes', 'int', 'long', 'double')",
        ),
        (13, "streams[0].steps[0].filter", "unknown name 'limit' in \"value['total'] > limit\""),
    ]


def test_a_topic_that_does_not_validate_is_not_also_unknown(tmp_path: Path) -> None:
    text = SHOP.replace(
        '[topics.orders]\nvalue = "json"', '[topics.orders]\nvalue = "json"\nkey = 1'
    )
    text = text.replace(
        'app = "shop"', 'app = "shop"\non_error = "dead_letter"\ndead_letter_topic = "orders"'
    )
    text += (
        '\n[[streams]]\nname = "route"\nfrom = "big-orders"\n'
        'steps = [{ branch = [{ name = "a", to = "orders" }] },]\n'
        '\n[[tests]]\nname = "t"\ninput = [{ topic = "orders", value = { total = 200 } }]\n'
        'expect = [{ topic = "orders", value = { total = 200 } }]\n'
    )
    assert [e.path for e in problems(tmp_path, text)] == ["topics.orders.key"]


def test_the_whole_topics_table_wrong(tmp_path: Path) -> None:
    text = SHOP.replace("[topics.orders]\nvalue", "topics = 5\n[x]\nvalue").replace(
        '[topics.big-orders]\nvalue = "json"\n', ""
    )
    found = problems(tmp_path, text)
    assert [e.path for e in found] == ["topics", "x"]


def test_a_stream_that_does_not_validate_is_not_unknown_to_its_readers(tmp_path: Path) -> None:
    text = SHOP.replace('  { to = "big-orders" },\n', "  { too = 1 },\n") + (
        '\n[[streams]]\nname = "merged"\nfrom_stream = "big"\n'
        'steps = [{ merge = ["big"] }, { to = "big-orders" }]\n'
    )
    found = problems(tmp_path, text)
    assert [(e.path, e.message) for e in found] == [("streams[0].steps[1]", "unknown step 'too'")]


def test_what_a_left_out_stream_reads_and_writes_is_not_unread_or_unwritten(
    tmp_path: Path,
) -> None:
    """The left-out stream reads 'first' (which would go nowhere), reads a topic no other stream
    reads, writes the topic a test expects, and names a store configured under [stores]."""
    text = SHOP + (
        '\n[topics.other]\n[topics.counts]\nvalue = "long"\n'
        '\n[[streams]]\nname = "first"\nfrom = "orders"\nsteps = [{ filter = "True" }]\n'
        '\n[[streams]]\nname = "broken"\nfrom_stream = "first"\nfrom = "other"\n'
        "steps = [{ group_by_key = true }, { count = true, store = 'n' }, { to_stream = true },"
        ' { to = "counts" }]\n'
        "\n[stores.n]\ntype = 'memory'\n"
        '\n[[tests]]\nname = "t"\ninput = [{ topic = "other", value = "x" }]\n'
        'expect = [{ topic = "counts", value = 1 }]\nstores = { n = [{ key = "k", value = 1 }] }\n'
    )
    found = problems(tmp_path, text)
    assert [(e.path, e.message) for e in found] == [
        (
            "streams[2].from_stream",
            "a stream reads topics ('from') or another stream ('from_stream'), not both",
        )
    ]


def test_the_valid_steps_of_a_left_out_stream_are_still_checked(tmp_path: Path) -> None:
    text = SHOP.replace('from = "orders"', 'from = "order"\nfrom_stream = "x"').replace(
        '{ to = "big-orders" }', '{ to = "big-order" }, { peek = 5 }'
    )
    text = text.replace("> 100", "> limit")
    # The stream's own rule (one input) runs only once its fields validate.
    assert [e.path for e in problems(tmp_path, text)] == [
        "streams[0].from",
        "streams[0].steps[0].filter",
        "streams[0].steps[1].to",
        "streams[0].steps[2].peek",
    ]


def test_streams_after_a_left_out_one_are_located_in_the_file(tmp_path: Path) -> None:
    text = SHOP.replace('name = "big"', "name = 5") + (
        '\n[[streams]]\nname = "small"\nfrom = "orders"\nsteps = [{ to = "big-orders" }]\n'
        '\n[[streams]]\nname = "small"\nfrom = "orders"\nsteps = [{ to = "nowhere" }]\n'
    )
    found = problems(tmp_path, text)
    assert [(e.line, e.path) for e in found] == [
        (10, "streams[0].name"),
        (23, "streams[2].name"),
        (25, "streams[2].steps[0].to"),
    ]
    assert found[1].message == "duplicate stream name 'small'"
    assert found[1].hint.startswith("the stream at line 18 has it already")


def test_settings_that_do_not_validate_skip_the_checks_that_need_them(tmp_path: Path) -> None:
    text = SHOP.replace(
        'app = "shop"',
        'app = "Shop"\non_error = "deadletter"\ndead_letter_topic = "dlq"\n'
        'imports = ["math", "no such"]\nruntime_only_modules = [1]',
    ).replace("> 100", "> math.floor(1) + nosuchpkg.x")
    text = text.replace("[[streams]]", "[topics.dlq]\n\n[[streams]]") + (
        '\n[[tests]]\nname = "t"\ninput = [{ topic = "orders", value = { total = 200 } }]\n'
        'expect = [{ topic = "dlq", value = "x" }]\n'
    )
    found = problems(tmp_path, text)
    assert [e.path for e in found] == [
        "app",
        "on_error",
        "imports",
        "runtime_only_modules[0]",
        "streams[0].steps[0].filter",
    ]
    assert found[-1].message.startswith("unknown name 'nosuchpkg'")


def test_the_only_stream_left_out_is_not_also_missing(tmp_path: Path) -> None:
    text = SHOP.replace('name = "big"', 'name = "big"\nform = "x"')
    assert [e.message for e in problems(tmp_path, text)] == ["unknown field 'form'"]


def test_a_spec_without_streams_is_told_so_with_its_other_errors(tmp_path: Path) -> None:
    text = 'app = "shop"\nguarantee = "once"\n[topics.orders]\n'
    assert [e.message.split(" (")[0] for e in problems(tmp_path, text)] == [
        "a spec needs at least one [[streams]] or [[tables]] entry",
        "'once' is not allowed here",
    ]


def test_a_spec_without_schema_errors_is_checked_as_before(tmp_path: Path) -> None:
    path = tmp_path / "spec.toml"
    path.write_text(SHOP, encoding="utf-8")
    assert load_spec(path, "spec.toml").spec.streams[0].name == "big"
