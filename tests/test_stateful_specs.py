"""Stateful specs beyond the examples: tables and grouped tables (adder and subtractor),
group_by_key with and without a repartition, reduce, memory stores, a store without cache.
Each is built and its generated suite run; some semantics are checked through the driver."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import App, BuildApp

from kgen.plan.planner import plan
from kgen.spec.load import load_spec

TABLES = """
app = "regions"
[topics.users]
key = "string"
value = "json"
partitions = 2
[topics.region-counts]
key = "string"
value = "long"
partitions = 2

[[tables]]
name = "users"
from = "users"
store = "users"
steps = [
  { group_by = "value['region']" },
  { count = true, store = "users-per-region" },
  { to_stream = true },
  { to = "region-counts" },
]

[[tests]]
name = "a user who moves leaves the old region's count"
input = [
  { topic = "users", key = "u1", value = { region = "eu" }, timestamp = 1 },
  { topic = "users", key = "u2", value = { region = "eu" }, timestamp = 2 },
  { topic = "users", key = "u1", value = { region = "us" }, timestamp = 3 },
  { topic = "users", key = "u2", timestamp = 4 },
]
expect = [
  { topic = "region-counts", key = "eu", value = 1, timestamp = 1 },
  { topic = "region-counts", key = "eu", value = 2, timestamp = 2 },
  { topic = "region-counts", key = "eu", value = 1, timestamp = 3 },
  { topic = "region-counts", key = "us", value = 1, timestamp = 3 },
  { topic = "region-counts", key = "eu", value = 0, timestamp = 4 },
]
[tests.stores]
users = [{ key = "u1", value = { region = "us" } }]
users-per-region = [{ key = "eu", value = 0 }, { key = "us", value = 1 }]
"""

SUMS = """
app = "sums"
[topics.amounts]
key = "string"
value = "long"
[topics.sums]
key = "string"
value = "long"

[stores.sums]
type = "memory"
cache_max_entries = 0

[[streams]]
name = "sum"
from = "amounts"
steps = [
  { filter = "value > 0" },
  { group_by_key = true },
  { reduce = "agg + value", store = "sums" },
  { to_stream = true },
  { to = "sums" },
]

[[tests]]
name = "sums per key"
input = [
  { topic = "amounts", key = "a", value = 5, timestamp = 3 },
  { topic = "amounts", key = "b", value = 1, timestamp = 1 },
  { topic = "amounts", key = "a", value = -3, timestamp = 9 },
  { topic = "amounts", key = "a", value = 2, timestamp = 2 },
  { topic = "amounts", value = 4 },
]
expect = [
  { topic = "sums", key = "a", value = 5, timestamp = 3 },
  { topic = "sums", key = "b", value = 1, timestamp = 1 },
  # An aggregate keeps the latest timestamp of its records.
  { topic = "sums", key = "a", value = 7, timestamp = 3 },
]
[tests.stores]
sums = [{ key = "a", value = 7 }, { key = "b", value = 1 }]
"""

REKEYED = """
app = "rekeyed"
[topics.clicks]
key = "string"
value = "json"
[topics.per-page]
key = "string"
value = "json"

[[streams]]
name = "pages"
from = "clicks"
steps = [
  { select_key = "value['page']" },
  { group_by_key = true, value = "json" },
  { aggregate = "ADDER", init = "{'n': 0, 'users': []}", store = "pages" },
  { to = "per-page" },
]

[[tests]]
name = "clicks per page"
input = [
  { topic = "clicks", key = "c1", value = { page = "/", user = "ann" } },
  { topic = "clicks", key = "c2", value = { page = "/a", user = "bob" } },
  { topic = "clicks", key = "c3", value = { page = "/", user = "bob" } },
]
expect = [
  { topic = "per-page", key = "/", value = { n = 1, users = ["ann"] } },
  { topic = "per-page", key = "/a", value = { n = 1, users = ["bob"] } },
  { topic = "per-page", key = "/", value = { n = 2, users = ["ann", "bob"] } },
]
""".replace("ADDER", "{'n': agg['n'] + 1, 'users': sorted({*agg['users'], value['user']})}")


@pytest.fixture(scope="module")
def tables(build_app: BuildApp) -> App:
    return build_app(TABLES, "regions")


@pytest.mark.parametrize(("spec", "name"), [(SUMS, "sums"), (REKEYED, "rekeyed")])
def test_generated_suite_passes(build_app: BuildApp, spec: str, name: str) -> None:
    app = build_app(spec, name)
    result = app.pytest()
    assert result.returncode == 0, App.why(result)
    assert " passed" in result.stdout


def test_tables_suite_passes(tables: App) -> None:
    result = tables.pytest()
    assert result.returncode == 0, App.why(result)


def test_group_by_key_repartitions_only_after_a_key_change(tmp_path: Path) -> None:
    folder = tmp_path
    plans = {}
    for name, text in (("sums", SUMS), ("rekeyed", REKEYED)):
        spec = folder / f"{name}.toml"
        spec.write_text(text, encoding="utf-8")
        plans[name] = plan(load_spec(spec))
    assert plans["sums"].internal_source_topics == ()
    assert [t.name for t in plans["sums"].internal_topics] == ["sums-sums-changelog"]
    # select_key changed the key: the aggregation reads a repartition topic named after it.
    assert plans["rekeyed"].internal_source_topics == ("rekeyed-pages-repartition",)
    assert plans["rekeyed"].stores[0].source_topics == ("rekeyed-pages-repartition",)


def test_table_store_keeps_values_as_read_and_deletes_on_null(tables: App) -> None:
    driver = tables.module("driver").TopologyTestDriver()
    driver.pipe_input("users", "u1", {"region": "eu", "since": 2020}, timestamp=5)
    driver.pipe_input("users", "u9", {"region": "eu"}, timestamp=6)
    driver.pipe_input("users", "u9", None, timestamp=7)
    assert driver.read_store("users") == {"u1": {"region": "eu", "since": 2020}}
    assert driver.read_store("users-per-region") == {"eu": 1}
    # A record without a key is no table update: dropped.
    driver.pipe_input("users", None, {"region": "us"}, timestamp=8)
    assert driver.read_store("users-per-region") == {"eu": 1}
    assert driver.read_key_values("region-counts") == [("eu", 1), ("eu", 2), ("eu", 1)]


@pytest.mark.broker
def test_tables_app_on_the_broker_matches_the_driver(tables: App, kafka_bootstrap: str) -> None:
    result = tables.pytest_broker(kafka_bootstrap)
    assert result.returncode == 0, App.why(result)
    assert "1 passed" in result.stdout


UPDATE_ERRORS = """
app = "ratios-POLICY"
on_error = "POLICY"
dead_letter_topic = "ratios-dlq"
[topics.events]
key = "string"
value = "string"
[topics.ratios]
key = "string"
value = "double"
[topics.ratios-dlq]
key = "bytes"
value = "bytes"

[[streams]]
name = "ratios"
from = "events"
steps = [
  { group_by_key = true },
  { count = true, store = "counts" },
  { to_stream = true },
  { map_values = "1 / (value - 2)" },
  { to = "ratios" },
]
"""


@pytest.mark.parametrize("policy", ["fail", "skip", "dead_letter"])
def test_a_failing_step_after_a_store_follows_the_error_policy(
    build_app: BuildApp, policy: str
) -> None:
    app = build_app(UPDATE_ERRORS.replace("POLICY", policy), f"ratios_{policy}")
    driver = app.module("driver").TopologyTestDriver()
    driver.pipe_input("events", "k", "a", timestamp=1)
    if policy == "fail":
        failed = app.module("errors").ProcessingFailed
        match = "update of store counts-0, key b'k' failed at ratios-map-values: Zero"
        with pytest.raises(failed, match=match):
            driver.pipe_input("events", "k", "b", timestamp=2)
        return
    driver.pipe_input("events", "k", "b", timestamp=2)  # count 2: division by zero
    driver.pipe_input("events", "k", "c", timestamp=3)
    assert driver.read_key_values("ratios") == [("k", -1.0), ("k", 1.0)]
    # The store itself is right: only the step after it failed, for one update.
    assert driver.read_store("counts") == {"k": 3}
    if policy == "skip":
        assert driver.errors.skipped == 1
    else:
        [letter] = driver.read_raw("ratios-dlq")
        headers = dict(letter.headers)
        assert letter.key == b"k"
        assert headers["__streams.errors.exception"] == b"ZeroDivisionError"
        assert headers["__streams.errors.store"] == b"counts"
        assert headers["__streams.errors.processor"] == b"ratios-map-values"


def test_the_driver_forwards_every_update_in_order(build_app: BuildApp) -> None:
    """As Kafka Streams' TopologyTestDriver: one input record that updates a key twice gives
    two updates, in the order they happened, whatever the store's cache says."""
    root = Path(__file__).resolve().parent.parent
    text = (root / "specs" / "wordcount.toml").read_text()
    driver = build_app(text.replace('app = "wordcount"', 'app = "wc-updates"'), "wc_updates")
    driver = driver.module("driver").TopologyTestDriver()
    driver.pipe_input("lines", "l1", "a a", timestamp=1000)
    driver.pipe_input("lines", "l2", "x y x", timestamp=2000)
    assert [(r.key, r.value, r.timestamp) for r in driver.read_records("word-counts")] == [
        ("a", 1, 1000),
        ("a", 2, 1000),
        ("x", 1, 2000),
        ("y", 1, 2000),
        ("x", 2, 2000),
    ]


def test_a_row_that_stays_in_its_group_updates_it_once(tables: App) -> None:
    """KIP-904: regrouping a table, an update that keeps its row in the same group changes
    the group's aggregate once, with no visible intermediate value."""
    driver = tables.module("driver").TopologyTestDriver()
    driver.pipe_input("users", "bob", {"region": "eu"}, timestamp=600)
    driver.pipe_input("users", "bob", {"region": "eu", "tier": 2}, timestamp=700)
    driver.pipe_input("users", "bob", {"region": "us"}, timestamp=800)
    assert [(r.key, r.value, r.timestamp) for r in driver.read_records("region-counts")] == [
        ("eu", 1, 600),
        ("eu", 1, 700),
        ("eu", 0, 800),
        ("us", 1, 800),
    ]
