"""The fused code of every step kind, driven through the generated TopologyTestDriver: Kafka
Streams' semantics (first matching branch wins, unmatched records dropped without a default,
output timestamp = input timestamp for every child of a flat_map, headers propagate)."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kgen.plan.planner import plan as make_plan
from kgen.spec.load import load_spec

ROOT = Path(__file__).resolve().parent.parent

# How a produced record gets its input record's timestamp and headers in fused code: after the
# key, by position, the partition (-1: the partitioner), two callbacks (None), then those two.
META = "-1, None, None, msg.timestamp()[1], msg.headers()"

UDFS = '''
"""User functions of the test spec: plain Python, imported by the generated topology."""

SEEN = []


def remember(key, value):
    SEEN.append((key, value))


def is_interesting(key, value):
    return value.get("interesting", False)


def explode(key, value):
    return [(key, value["n"]), (key.upper(), -value["n"])]


def pick(key, value):
    return [value, "second"]
'''
# kgen_fuse.udfs:pick and kgen_fuse_udfs:pick would both be imported as _kgen_fuse_udfs_pick.
UDFS_PACKAGE = """
def pick(key, value):
    return {"first": value["n"]}
"""

SPEC = """\
app = "fusesteps"
on_error = "fail"

[topics.events]
value = "json"
[topics.side]
value = "json"
[topics.to-route]
value = "long"

[topics.filtered]
value = "json"
[topics.rejected]
value = "json"
[topics.mapped]
value = "json"
[topics.mapped-values]
value = "json"
[topics.flat]
value = "json"
[topics.flat-values]
value = "json"
[topics.rekeyed]
key = "long"
value = "json"
[topics.peeked]
value = "json"
[topics.big]
value = "json"
[topics.positive]
value = "json"
[topics.other]
value = "json"
[topics.even]
value = "json"
[topics.huge]
value = "json"
[topics.merged]
value = "json"
[topics.fn-out]
value = "json"
[topics.picked]
value = "json"
[topics.routed-json]
value = "json"
[topics.routed-string]
value = "string"
[topics.routed-long]
value = "long"

[[streams]]
name = "filter"
from = "events"
steps = [{ filter = "value['n'] > 0" }, { to = "filtered" }]

[[streams]]
name = "filter-not"
from = "events"
steps = [{ filter_not = "value['n'] > 0" }, { to = "rejected" }]

[[streams]]
name = "map"
from = "events"
steps = [
  { map = "(value['name'], {'n': value['n'], 'old_key': key, 'at': timestamp})" },
  { to = "mapped" },
]

[[streams]]
name = "map-values"
from = "events"
steps = [{ map_values = "{'double': value['n'] * 2, 'key': key}" }, { to = "mapped-values" }]

[[streams]]
name = "flat-map"
from = "events"
steps = [{ flat_map = "[(f'{key}-{i}', {'i': i}) for i in range(value['n'])]" }, { to = "flat" }]

[[streams]]
name = "flat-map-values"
from = "events"
steps = [{ flat_map_values = "value.get('tags', [])" }, { to = "flat-values" }]

[[streams]]
name = "select-key"
from = "events"
steps = [{ select_key = "value['n']" }, { to = "rekeyed" }]

[[streams]]
name = "peek"
from = "events"
steps = [{ peek = { function = "kgen_fuse_udfs:remember" } }, { to = "peeked" }]

[[streams]]
name = "sizes"
from = "events"
steps = [{ branch = [
  { name = "big", when = "value['n'] >= 10", to = "big" },
  { name = "positive", when = "value['n'] > 0", to = "positive" },
  { name = "other", to = "other" },
] }]

[[streams]]
name = "parity"
from = "events"
steps = [{ branch = [
  { name = "even", when = "value['n'] % 2 == 0" },
  { name = "huge", when = "value['n'] > 100", to = "huge" },
] }]

[[streams]]
name = "evens"
from_stream = "parity.even"
steps = [{ map_values = "{**value, 'even': True}" }, { to = "even" }]

[[streams]]
name = "side"
from = "side"
steps = [{ map_values = "{**value, 'via': 'side'}" }]

[[streams]]
name = "merge"
from = "events"
steps = [
  { filter = "value['n'] == 7" },
  { merge = "side" },
  { map_values = "{**value, 'merged': True}" },
  { to = "merged" },
]

[[streams]]
name = "functions"
from = "events"
steps = [
  { filter = { function = "kgen_fuse_udfs:is_interesting" } },
  { flat_map = { function = "kgen_fuse_udfs:explode" } },
  { to = "fn-out" },
]

[[streams]]
name = "aliases"
from = "events"
steps = [
  { map_values = { function = "kgen_fuse.udfs:pick" } },
  { map_values = { function = "kgen_fuse_udfs:pick" } },
  { to = "picked" },
]

[[streams]]
name = "route"
from = "to-route"
steps = [{ to = { topic = "key", topics = ["routed-json", "routed-string", "routed-long"] } }]

[[tests]]
name = "user functions filter and explode"
input = [
  { topic = "events", key = "a", value = { n = 3, name = "x", interesting = true }, timestamp = 9 },
  { topic = "events", key = "b", value = { n = 4, name = "y" } },
]
expect = [
  { topic = "filtered", key = "a", value = { n = 3, name = "x", interesting = true } },
  { topic = "filtered", key = "b", value = { n = 4, name = "y" } },
  { topic = "mapped", key = "x", value = { n = 3, old_key = "a", at = 9 } },
  { topic = "mapped", key = "y", value = { n = 4, old_key = "b", at = 0 } },
  { topic = "mapped-values", key = "a", value = { double = 6, key = "a" } },
  { topic = "mapped-values", key = "b", value = { double = 8, key = "b" } },
  { topic = "flat", key = "a-0", value = { i = 0 }, timestamp = 9 },
  { topic = "flat", key = "a-1", value = { i = 1 }, timestamp = 9 },
  { topic = "flat", key = "a-2", value = { i = 2 }, timestamp = 9 },
  { topic = "flat", key = "b-0", value = { i = 0 } },
  { topic = "flat", key = "b-1", value = { i = 1 } },
  { topic = "flat", key = "b-2", value = { i = 2 } },
  { topic = "flat", key = "b-3", value = { i = 3 } },
  { topic = "rekeyed", key = 3, value = { n = 3, name = "x", interesting = true } },
  { topic = "rekeyed", key = 4, value = { n = 4, name = "y" } },
  { topic = "peeked", key = "a", value = { n = 3, name = "x", interesting = true } },
  { topic = "peeked", key = "b", value = { n = 4, name = "y" } },
  { topic = "positive", key = "a", value = { n = 3, name = "x", interesting = true } },
  { topic = "positive", key = "b", value = { n = 4, name = "y" } },
  { topic = "even", key = "b", value = { n = 4, name = "y", even = true } },
  { topic = "fn-out", key = "a", value = 3, timestamp = 9 },
  { topic = "fn-out", key = "A", value = -3, timestamp = 9 },
  { topic = "picked", key = "a", value = [{ first = 3 }, "second"] },
  { topic = "picked", key = "b", value = [{ first = 4 }, "second"] },
]

[[tests]]
name = "dynamic routing by key"
input = [
  { topic = "to-route", key = "routed-long", value = 5 },
  { topic = "to-route", key = "routed-string", value = 6 },
]
expect = [
  { topic = "routed-long", key = "routed-long", value = 5 },
  { topic = "routed-string", key = "routed-string", value = "6" },
]
"""


@pytest.fixture(scope="module")
def udfs_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    folder = tmp_path_factory.mktemp("udfs")
    (folder / "kgen_fuse_udfs.py").write_text(UDFS)
    (folder / "kgen_fuse").mkdir()
    (folder / "kgen_fuse" / "__init__.py").write_text("")
    (folder / "kgen_fuse" / "udfs.py").write_text(UDFS_PACKAGE)
    sys.path.insert(0, str(folder))
    yield folder
    sys.path.remove(str(folder))
    for module in ("kgen_fuse_udfs", "kgen_fuse.udfs", "kgen_fuse"):
        sys.modules.pop(module, None)


@pytest.fixture(scope="module")
def app(build_app: Any, udfs_dir: Path) -> Any:
    return build_app(SPEC, "fusesteps")


@pytest.fixture
def driver(app: Any) -> Any:
    return app.module("driver").TopologyTestDriver()


def event(n: int, name: str = "x", **extra: Any) -> dict[str, Any]:
    return {"n": n, "name": name, **extra}


def kv(driver: Any, topic: str) -> list[tuple[Any, Any]]:
    return [(r.key, r.value) for r in driver.read_records(topic)]


# -- the generated suite ---------------------------------------------------------------------


def test_generated_tests_pass_with_user_functions_on_pythonpath(app: Any, udfs_dir: Path) -> None:
    result = app.pytest("-rA", pythonpath=[udfs_dir])
    assert result.returncode == 0, app.why(result)
    for case in ("test_user_functions_filter_and_explode", "test_dynamic_routing_by_key"):
        assert f"PASSED tests/test_fusesteps_topology.py::{case}\n" in result.stdout, result.stdout


def test_generated_app_fails_loudly_without_user_functions(app: Any) -> None:
    result = app.python("import fusesteps.topology")
    assert result.returncode != 0
    assert "ModuleNotFoundError: No module named 'kgen_fuse" in result.stderr


# -- raw pass-through ------------------------------------------------------------------------


def test_payments_never_decodes_the_value() -> None:
    plan = make_plan(load_spec(ROOT / "specs/payments.toml", display_path="specs/payments.toml"))
    [block] = plan.blocks
    assert block.topics == ("payment",)
    # `at` names the node running, for an error's report (the key is the source's to decode).
    assert block.lines == (
        "at = 'unknown-payments-source'",
        "k1 = deserialize_string(msg.key())",
        "at = 'unknown-payments-filter'",
        "if k1 == 'unknown':",
        "    at = 'unknown-payments-to'",
        "    produce('unknown-payment', msg.value(), msg.key(), " + META + ")",
    )
    assert plan.serde_imports == ("deserialize_string",)


def test_payments_passes_undecodable_value_bytes_through(build_app: Any) -> None:
    app = build_app(
        (ROOT / "specs/payments.toml").read_text().replace('"payments"', '"paythru"'), "paythru"
    )
    driver = app.module("driver").TopologyTestDriver()
    raw = b"\xff\xfe not UTF-8 \x00"
    driver.pipe_raw("payment", b"unknown", raw, timestamp=7, headers={"trace": "t-1"})
    driver.pipe_raw("payment", b"other", raw, timestamp=8)
    [record] = driver.read_raw("unknown-payment")
    assert (record.key, record.value, record.timestamp) == (b"unknown", raw, 7)
    assert record.headers == [("trace", b"t-1")]


def test_unchanged_fields_pass_through_as_bytes(app: Any) -> None:
    code = app.files["fusesteps/topology.py"]
    # filter reads the value but does not change it: both go out as the bytes that came in.
    assert re.search(r'produce\(\s*"filtered",\s*msg\.value\(\),\s*msg\.key\(\),', code)
    # select_key changes only the key.
    assert re.search(r'produce\(\s*"rekeyed",\s*msg\.value\(\),\s*serialize_long\(k\d+\),', code)
    # map_values changes only the value.
    assert re.search(
        r'produce\(\s*"mapped-values",\s*serialize_json\(v\d+\),\s*msg\.key\(\),', code
    )
    # The dynamic route passes the long value through to the long topic and converts it for
    # the others.
    assert re.search(r"produce\(\s*t\d+,\s*msg\.value\(\),", code)
    assert "serialize_string(deserialize_long(msg.value()))" in code


# -- step kinds ------------------------------------------------------------------------------


def test_filter_and_filter_not(driver: Any) -> None:
    driver.pipe_input("events", "a", event(1))
    driver.pipe_input("events", "b", event(0))
    driver.pipe_input("events", "c", event(-5))
    assert kv(driver, "filtered") == [("a", event(1))]
    assert kv(driver, "rejected") == [("b", event(0)), ("c", event(-5))]


def test_map_changes_key_and_value_and_sees_the_timestamp(driver: Any) -> None:
    driver.pipe_input("events", "k", event(2, "new-key"), timestamp=1234)
    [record] = driver.read_records("mapped")
    assert (record.key, record.value, record.timestamp) == (
        "new-key",
        {"n": 2, "old_key": "k", "at": 1234},
        1234,
    )


def test_map_values_keeps_the_key(driver: Any) -> None:
    driver.pipe_input("events", "k", event(21))
    assert kv(driver, "mapped-values") == [("k", {"double": 42, "key": "k"})]


def test_flat_map_children_inherit_timestamp_and_headers(driver: Any) -> None:
    driver.pipe_input("events", "k", event(3), timestamp=50, headers={"h": "v"})
    records = driver.read_records("flat")
    assert [(r.key, r.value) for r in records] == [
        ("k-0", {"i": 0}),
        ("k-1", {"i": 1}),
        ("k-2", {"i": 2}),
    ]
    assert {r.timestamp for r in records} == {50}
    assert all(r.headers == {"h": b"v"} for r in records)
    driver.pipe_input("events", "none", event(0))
    assert driver.is_empty("flat")


def test_flat_map_values_keeps_key_and_timestamp(driver: Any) -> None:
    driver.pipe_input("events", "k", event(1, tags=["a", "b", "a"]), timestamp=3)
    records = driver.read_records("flat-values")
    assert [(r.key, r.value, r.timestamp) for r in records] == [
        ("k", "a", 3),
        ("k", "b", 3),
        ("k", "a", 3),
    ]


def test_select_key_writes_the_new_key_in_its_format(driver: Any) -> None:
    driver.pipe_input("events", "k", event(-2))
    [raw] = driver.read_raw("rekeyed")
    assert raw.key == (-2).to_bytes(8, "big", signed=True)
    assert json.loads(raw.value) == event(-2)


def test_peek_calls_the_function_and_forwards_unchanged(driver: Any) -> None:
    udfs = sys.modules["kgen_fuse_udfs"]
    udfs.SEEN.clear()
    driver.pipe_input("events", "p", event(5), timestamp=11, headers={"a": "1", "b": "2"})
    assert udfs.SEEN == [("p", event(5))]
    [record] = driver.read_records("peeked")
    assert (record.key, record.value, record.timestamp) == ("p", event(5), 11)
    assert record.headers == {"a": b"1", "b": b"2"}


def test_first_matching_branch_wins(driver: Any) -> None:
    for key, n in (("big", 20), ("positive", 3), ("other", 0), ("limit", 10)):
        driver.pipe_input("events", key, event(n))
    # 20 and 10 match both `big` and `positive`: only the first branch gets them.
    assert [k for k, _ in kv(driver, "big")] == ["big", "limit"]
    assert [k for k, _ in kv(driver, "positive")] == ["positive"]
    assert [k for k, _ in kv(driver, "other")] == ["other"]


def test_unmatched_records_are_dropped_without_a_default(driver: Any) -> None:
    driver.pipe_input("events", "odd", event(3))
    driver.pipe_input("events", "even", event(4))
    driver.pipe_input("events", "huge-even", event(200))
    driver.pipe_input("events", "huge-odd", event(201))
    # A branch read as a stream ('parity.even') continues in another [[streams]] entry.
    assert kv(driver, "even") == [
        ("even", {**event(4), "even": True}),
        ("huge-even", {**event(200), "even": True}),
    ]
    assert kv(driver, "huge") == [("huge-odd", event(201))]


def test_merge_takes_records_of_both_inputs(driver: Any) -> None:
    driver.pipe_input("events", "e1", event(7), timestamp=1)
    driver.pipe_input("side", "s1", {"n": 1}, timestamp=2)
    driver.pipe_input("events", "e2", event(8), timestamp=3)
    records = driver.read_records("merged")
    assert [(r.key, r.value, r.timestamp) for r in records] == [
        ("e1", {**event(7), "merged": True}, 1),
        ("s1", {"n": 1, "via": "side", "merged": True}, 2),
    ]


def test_function_refs_filter_and_flat_map(driver: Any) -> None:
    driver.pipe_input("events", "q", event(4, interesting=True), timestamp=6)
    driver.pipe_input("events", "r", event(5))
    records = driver.read_records("fn-out")
    assert [(r.key, r.value, r.timestamp) for r in records] == [("q", 4, 6), ("Q", -4, 6)]


def test_functions_whose_aliases_would_clash_stay_apart(app: Any, driver: Any) -> None:
    driver.pipe_input("events", "k", event(8))
    assert kv(driver, "picked") == [("k", [{"first": 8}, "second"])]
    code = app.files["fusesteps/topology.py"]
    assert "from kgen_fuse.udfs import pick as _kgen_fuse_udfs_pick\n" in code
    assert "from kgen_fuse_udfs import pick as _kgen_fuse_udfs_pick_2\n" in code


def test_dynamic_to_writes_each_topic_in_its_own_format(driver: Any) -> None:
    driver.pipe_input("to-route", "routed-json", 5, timestamp=1, headers={"x": "y"})
    driver.pipe_input("to-route", "routed-string", 6)
    driver.pipe_input("to-route", "routed-long", 7)
    [as_json] = driver.read_raw("routed-json")
    [as_string] = driver.read_raw("routed-string")
    [as_long] = driver.read_raw("routed-long")
    assert (as_json.key, as_json.value, as_json.timestamp) == (b"routed-json", b"5", 1)
    assert as_json.headers == [("x", b"y")]
    assert as_string.value == b"6"
    assert as_long.value == (7).to_bytes(8, "big")


def test_dynamic_to_refuses_a_topic_it_does_not_list(app: Any, driver: Any) -> None:
    errors = app.module("errors")
    with pytest.raises(errors.ProcessingFailed) as info:
        driver.pipe_input("to-route", "events", 1)
    cause = info.value.__cause__
    assert isinstance(cause, errors.UnknownTopicError)
    assert "'events'" in str(cause)
    assert "routed-json" in str(cause)
    for topic in ("routed-json", "routed-string", "routed-long", "filtered"):
        assert driver.is_empty(topic)


def test_a_failing_expression_follows_the_error_policy(app: Any, driver: Any) -> None:
    errors = app.module("errors")
    with pytest.raises(errors.ProcessingFailed, match="KeyError"):
        driver.pipe_input("events", "k", {"no n": 1})


def test_one_topic_read_by_many_streams_runs_all_of_them(app: Any, driver: Any) -> None:
    # Every stream reading `events` sees each record (one code block, not dead `elif`s).
    driver.pipe_input("events", "all", event(12, tags=["t"], interesting=True))
    for topic in (
        "filtered",
        "mapped",
        "mapped-values",
        "flat",
        "flat-values",
        "rekeyed",
        "peeked",
        "big",
        "even",
        "fn-out",
    ):
        assert not driver.is_empty(topic), topic
    code = app.files["fusesteps/topology.py"]
    assert code.count('if topic == "events":') + code.count('elif topic == "events":') == 1


# -- plans of edge cases (no app needed) ------------------------------------------------------


def _plan(tmp_path: Path, text: str) -> Any:
    path = tmp_path / "spec.toml"
    path.write_text(text)
    return make_plan(load_spec(path))


def test_a_lone_default_branch_takes_everything(tmp_path: Path) -> None:
    plan = _plan(
        tmp_path,
        """
app = "lone"
[topics.a]
[topics.b]
[[streams]]
name = "s"
from = "a"
steps = [{ branch = [{ name = "all", to = "b" }] }]
""",
    )
    [block] = plan.blocks
    assert block.lines == ("at = 's.all-to'", "produce('b', msg.value(), msg.key(), " + META + ")")


def test_sibling_paths_do_not_share_variables(tmp_path: Path) -> None:
    plan = _plan(
        tmp_path,
        """
app = "siblings"
[topics.a]
value = "json"
[topics.b]
value = "json"
[topics.c]
value = "json"
[[streams]]
name = "s"
from = "a"
steps = [{ map_values = "value['x']" }]
[[streams]]
name = "one"
from_stream = "s"
steps = [{ map_values = "value + 1" }, { to = "b" }]
[[streams]]
name = "two"
from_stream = "s"
steps = [{ to = "c" }]
""",
    )
    [block] = plan.blocks
    # Each path of the fork fails on its own: the other still gets the record (KIP-1033).
    handler = (
        "except Exception as exc:  # the spec's error policy decides",
        "    ctx.on_error(msg, exc, at)",
    )
    assert block.lines == (
        "at = 's-source'",
        "v1 = deserialize_json(msg.value())",
        "at = 's-map-values'",
        "v2 = v1['x']",
        "try:",
        "    at = 'one-map-values'",
        "    v3 = v2 + 1",
        "    at = 'one-to'",
        "    produce('b', serialize_json(v3), msg.key(), " + META + ")",
        *handler,
        "try:",
        "    at = 'two-to'",
        "    produce('c', serialize_json(v2), msg.key(), " + META + ")",
        *handler,
    )
