"""Joins, by hand: the edge cases of a stream-table join (a record before its row exists, a
row deleted and created again, null keys and values) through the generated app's driver,
and the mistakes a spec can make. Kafka Streams judges the rest (test_conformance:
stream-table-join)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import BuildApp

from kgen import topics
from kgen.spec.errors import SpecInvalid
from kgen.spec.load import load_spec

ENRICH = """
app = "join-{how}"

[topics.orders]
key = "string"
value = "json"

[topics.customers]
key = "string"
value = "json"

[topics.enriched]
key = "string"
value = "json"

[[tables]]
name = "customers"
from = "customers"
store = "customers"

[[streams]]
name = "orders"
from = "orders"
steps = [
  {{ join = "customers", joiner = "[value['n'], other and other['name']]", how = "{how}" }},
  {{ to = "enriched" }},
]
"""


@pytest.mark.parametrize(
    ("how", "expected"),
    [
        ("inner", [("c1", [2, "ada"], 30), ("c1", [4, "bo"], 60)]),
        (
            "left",
            [
                ("c1", [1, None], 10),
                ("c1", [2, "ada"], 30),
                ("c1", [3, None], 50),
                ("c1", [4, "bo"], 60),
                (None, [5, None], 70),
            ],
        ),
    ],
)
def test_each_order_sees_the_customer_as_it_is_then(
    build_app: BuildApp, how: str, expected: list[tuple[object, object, int]]
) -> None:
    app = build_app(ENRICH.format(how=how), f"join_{how}")
    driver = app.module("driver").TopologyTestDriver()
    driver.pipe_input("orders", "c1", {"n": 1}, timestamp=10)  # before the customer exists
    driver.pipe_input("customers", "c1", {"name": "ada"}, timestamp=20)
    driver.pipe_input("orders", "c1", {"n": 2}, timestamp=30)
    driver.pipe_input("customers", "c1", None, timestamp=40)  # deleted ...
    driver.pipe_input("orders", "c1", {"n": 3}, timestamp=50)
    driver.pipe_input("customers", "c1", {"name": "bo"}, timestamp=55)  # ... and back
    driver.pipe_input("orders", "c1", {"n": 4}, timestamp=60)
    driver.pipe_input("orders", None, {"n": 5}, timestamp=70)  # a left join joins nothing
    driver.pipe_input("orders", "c1", None, timestamp=80)  # a null value is dropped
    out = [(r.key, r.value, r.timestamp) for r in driver.read_records("enriched")]
    assert out == expected  # table updates trigger nothing


REKEYED = ENRICH.replace('"join-{how}"', '"join-rekeyed"').replace(
    '{{ join = "customers"', '{{ select_key = "value.get(\'c\')" }},\n  {{ join = "customers"'
)


def test_a_rekeyed_stream_is_repartitioned_before_it_joins(build_app: BuildApp) -> None:
    """Orders keyed by order id name their customer in the value: select_key, then join.
    The records go through a repartition topic keyed like the table (as in Kafka Streams),
    which the describe and the internal topics show; on a left join a null key travels too."""
    app = build_app(REKEYED.format(how="left"), "join_rekeyed")
    settings = app.module("settings")
    topic = "join-rekeyed-orders-join-repartition"
    assert settings.INTERNAL_SOURCE_TOPICS == (topic,)
    # As many partitions as the table's topic: co-partitioned with it.
    assert settings.INTERNAL_TOPICS[topic].partitions_from == ("customers",)
    driver = app.module("driver").TopologyTestDriver()
    driver.pipe_input("customers", "c1", {"name": "ada"}, timestamp=1)
    driver.pipe_input("orders", "o1", {"n": 1, "c": "c1"}, timestamp=2)
    driver.pipe_input("orders", "o2", {"n": 2, "c": "c9"}, timestamp=3)
    driver.pipe_input("orders", "o3", {"n": 3}, timestamp=4)
    out = [(r.key, r.value, r.timestamp) for r in driver.read_records("enriched")]
    assert out == [("c1", [1, "ada"], 2), ("c9", [2, None], 3), (None, [3, None], 4)]


@pytest.mark.parametrize(
    ("steps", "message"),
    [
        ('{ join = "custmers", joiner = "other" }', "unknown table or stream 'custmers'"),
        ('{ join = "customers", joiner = "agg" }', "unknown name 'agg'"),
        (
            '{ join = "customers", joiner = "other", how = "outer" }',
            "only a table joined with a table is outer",
        ),
        ('{ map_values = "other" }', "unknown name 'other'"),
    ],
)
def test_join_mistakes_are_located(tmp_path: Path, steps: str, message: str) -> None:
    spec = tmp_path / "bad.toml"
    spec.write_text(
        'app = "bad"\n[topics.t]\n[topics.c]\n[topics.o]\n'
        '[[tables]]\nname = "customers"\nfrom = "c"\nstore = "customers"\n'
        f'[[streams]]\nname = "s"\nfrom = "t"\nsteps = [{steps}, {{ to = "o" }}]\n',
        encoding="utf-8",
    )
    with pytest.raises(SpecInvalid) as info:
        load_spec(spec)
    text = info.value.format()
    assert message in text and "bad.toml:12" in text, text


@pytest.mark.broker
def test_joined_topics_of_different_partition_counts_stop_the_app(
    build_app: BuildApp, kafka_bootstrap: str, tmp_path: Path
) -> None:
    app = build_app(
        ENRICH.format(how="inner").replace('"join-inner"', '"join-copartition"'),
        "join_copartition",
    )
    topics.recreate_topics(kafka_bootstrap, {"orders": 2, "enriched": 2})
    topics.recreate_topics(kafka_bootstrap, {"customers": 3})
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            app.package,
            "--bootstrap-servers",
            kafka_bootstrap,
            "--state-dir",
            str(tmp_path / "state"),
        ],
        cwd=app.root,
        env=app.env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 1, result.stderr[-3000:]
    assert "co-partitioned" in result.stderr and "customers (3 partitions)" in result.stderr
    assert "orders (2 partitions)" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.broker
def test_an_order_never_overtakes_the_rows_on_the_broker_before_it(
    build_app: BuildApp, kafka_bootstrap: str, tmp_path: Path
) -> None:
    """20,000 customer rows, then 2,000 orders (later timestamps), all on the broker before the
    app starts; tiny fetches make the table's partition take seconds to read. Each order waits
    for the rows before it (Kafka Streams' max.task.idle.ms = 0): every order finds its
    customer. Cut at 500 ms, as the app did before, hundreds of orders found none."""
    app = build_app(ENRICH.format(how="inner").replace('"join-inner"', '"join-wait"'), "join_wait")
    topics.recreate_topics(
        kafka_bootstrap, {"orders": 1, "customers": 1, "enriched": 1}, ["join-wait"]
    )
    customers = [(f"c{i}".encode(), b'{"name":"n%d"}' % i) for i in range(20_000)]
    topics.produce_all(kafka_bootstrap, "customers", customers)
    time.sleep(0.05)  # every order is stamped after every row
    orders = [(f"c{i * 7 % 20_000}".encode(), b'{"n":%d}' % i) for i in range(2_000)]
    topics.produce_all(kafka_bootstrap, "orders", orders)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            app.package,
            "--bootstrap-servers",
            kafka_bootstrap,
            "--state-dir",
            str(tmp_path / "state"),
            "--stop-when-idle",
            "5",
            "-X",
            "max.partition.fetch.bytes=1024",
        ],
        cwd=app.root,
        env=app.env(),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    enriched = topics.read_committed(kafka_bootstrap, "enriched")
    assert len(enriched) == 2_000, result.stderr[-3000:]
    assert "none came" not in result.stderr


TABLES = """
app = "join-tables-{how}"

[topics.ta]
key = "string"
value = "string"

[topics.tb]
key = "string"
value = "string"

[topics.joined]
key = "string"
value = "string"

[[tables]]
name = "a"
from = "ta"
store = "a"
steps = [
  {{ join = "b", joiner = "f'{{value}}+{{other}}'", how = "{how}" }},
  {{ to_stream = true }},
  {{ to = "joined" }},
]

[[tables]]
name = "b"
from = "tb"
store = "b"
"""


@pytest.mark.parametrize(
    ("how", "expected"),
    [
        ("inner", [("a1+b1", 20), (None, 30)]),
        ("left", [("a1+None", 10), ("a1+b1", 20), (None, 30)]),
        ("outer", [("a1+None", 10), ("a1+b1", 20), ("None+b1", 30), (None, 40), ("None+b2", 50)]),
    ],
)
def test_both_tables_trigger_and_deletions_are_tombstones(
    build_app: BuildApp, how: str, expected: list[tuple[object, int]]
) -> None:
    app = build_app(TABLES.format(how=how), f"join_tables_{how}")
    driver = app.module("driver").TopologyTestDriver()
    for topic, value, ts in [
        ("ta", "a1", 10),
        ("tb", "b1", 20),
        ("ta", None, 30),  # the left row goes
        ("tb", None, 40),  # then the right one
        ("tb", "b2", 50),  # a right row alone
    ]:
        driver.pipe_input(topic, "k", value, timestamp=ts)
    assert [(r.value, r.timestamp) for r in driver.read_records("joined")] == expected
