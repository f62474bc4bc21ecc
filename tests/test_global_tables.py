"""Global tables, by hand: lookups by a key the stream computes, updates and deletions of
rows, null lookup keys, the mistakes a spec can make, and on a real broker: loading before
processing, reading on while running, and a restart that reads only what is new. Kafka
Streams judges the rest (test_conformance: stream-global-join)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import BuildApp

from kgen import topics
from kgen.codegen import render
from kgen.plan import describe
from kgen.plan.planner import plan as make_plan
from kgen.spec.errors import SpecInvalid
from kgen.spec.load import load_spec

PRICES = """
app = "global-{how}"

[topics.orders]
key = "string"
value = "json"

[topics.rates]
key = "string"
value = "json"

[topics.priced]
key = "string"
value = "json"

[[global_tables]]
name = "rates"
from = "rates"
store = "rates"

[[streams]]
name = "orders"
from = "orders"

[[streams.steps]]
join = "rates"
key = "value.get('cur')"
joiner = "[value['n'], other_key, other and other['r']]"
how = "{how}"

[[streams.steps]]
to = "priced"
"""


@pytest.mark.parametrize(
    ("how", "expected"),
    [
        (
            "inner",
            [("o2", [2, "usd", 3], 30), (None, [4, "usd", 5], 60), ("o6", [6, "chf", 7], 80)],
        ),
        (
            "left",
            [
                ("o1", [1, "usd", None], 10),
                ("o2", [2, "usd", 3], 30),
                ("o3", [3, "usd", None], 50),
                (None, [4, "usd", 5], 60),
                ("o5", [5, None, None], 70),
                ("o6", [6, "chf", 7], 80),
            ],
        ),
    ],
)
def test_each_order_looks_its_rate_up_by_its_currency(
    build_app: BuildApp, how: str, expected: list[tuple[object, object, int]]
) -> None:
    app = build_app(PRICES.format(how=how), f"global_{how}")
    driver = app.module("driver").TopologyTestDriver()
    driver.pipe_input("orders", "o1", {"n": 1, "cur": "usd"}, timestamp=10)  # no rate yet
    driver.pipe_input("rates", "usd", {"r": 3}, timestamp=20)
    driver.pipe_input("orders", "o2", {"n": 2, "cur": "usd"}, timestamp=30)
    driver.pipe_input("rates", "usd", None, timestamp=40)  # deleted ...
    driver.pipe_input("orders", "o3", {"n": 3, "cur": "usd"}, timestamp=50)
    driver.pipe_input("rates", "usd", {"r": 5}, timestamp=55)  # ... and back
    driver.pipe_input("orders", None, {"n": 4, "cur": "usd"}, timestamp=60)  # a null key joins
    driver.pipe_input("orders", "o5", {"n": 5}, timestamp=70)  # no lookup key
    driver.pipe_input("rates", None, {"r": 9}, timestamp=75)  # no key: not a row
    driver.pipe_input("rates", "chf", {"r": 7}, timestamp=76)
    driver.pipe_input("orders", "o6", {"n": 6, "cur": "chf"}, timestamp=80)
    driver.pipe_input("orders", "o7", None, timestamp=90)  # a null value is dropped
    out = [(r.key, r.value, r.timestamp) for r in driver.read_records("priced")]
    assert out == expected  # rate updates trigger nothing
    assert driver.read_store("rates") == {"usd": {"r": 5}, "chf": {"r": 7}}


def test_describe_shows_the_global_store_apart(tmp_path: Path) -> None:
    spec = tmp_path / "g.toml"
    spec.write_text(PRICES.format(how="inner"), encoding="utf-8")
    plan = make_plan(load_spec(spec))
    text = describe.text(plan)
    assert "Sub-topology: 1 for global store (will not generate tasks)" in text, text
    assert "Source: rates-global-source (topics: [rates], global table, store: rates)" in text
    assert "inner join with global table rates, store: rates" in text
    # A global topic is read by its own consumer, never through the group's subscription.
    assert plan.source_topics == ("orders",) and plan.global_topics == ("rates",)
    files = render.render(plan)
    assert "global_inner/global_tables.py" in files
    assert '"rocksdict' in files["pyproject.toml"]


BAD = """app = "bad"
[topics.t]
[topics.c]
[topics.o]
[topics.r]
[[tables]]
name = "customers"
from = "c"
store = "customers"
[[global_tables]]
name = "rates"
from = "{global_topic}"
store = "rates"
[[streams]]
name = "s"
from = "t"
steps = [{steps}, {{ to = "o" }}]
"""


@pytest.mark.parametrize(
    ("steps", "global_topic", "line", "message"),
    [
        ('{ join = "rates", joiner = "other" }', "r", 17, "needs key: the lookup key"),
        (
            '{ join = "customers", key = "value", joiner = "other" }',
            "r",
            17,
            "'customers' is a table: a stream joins it on the record's key",
        ),
        (
            '{ join = "rates", key = "value", joiner = "other", how = "outer" }',
            "r",
            17,
            "a stream joins a global table inner or left",
        ),
        (
            '{ join = "customers", joiner = "other_key" }',
            "r",
            17,
            "unknown name 'other_key'",
        ),
        ('{ join = "rates", key = "agg", joiner = "other" }', "r", 17, "unknown name 'agg'"),
        ('{ peek = "None" }', "t", 12, "topic 't' is read by the stream at line 15 too"),
        ('{ peek = "None" }', "c", 12, "topic 'c' is read by the table at line 7 too"),
    ],
)
def test_global_table_mistakes_are_located(
    tmp_path: Path, steps: str, global_topic: str, line: int, message: str
) -> None:
    spec = tmp_path / "bad.toml"
    spec.write_text(BAD.format(steps=steps, global_topic=global_topic), encoding="utf-8")
    with pytest.raises(SpecInvalid) as info:
        load_spec(spec)
    out = info.value.format()
    assert message in out and f"bad.toml:{line}" in out, out


def test_a_table_cannot_join_a_global_table(tmp_path: Path) -> None:
    spec = tmp_path / "bad.toml"
    spec.write_text(
        'app = "bad"\n[topics.a]\n[topics.r]\n[topics.o]\n'
        '[[global_tables]]\nname = "rates"\nfrom = "r"\nstore = "rates"\n'
        '[[tables]]\nname = "a"\nfrom = "a"\nstore = "a"\n'
        'steps = [{ join = "rates", key = "key", joiner = "other" }, { to_stream = true }, '
        '{ to = "o" }]\n',
        encoding="utf-8",
    )
    with pytest.raises(SpecInvalid) as info:
        load_spec(spec)
    out = info.value.format()
    assert "only streams join global tables" in out and "bad.toml:13" in out, out


@pytest.mark.broker
def test_a_global_table_is_loaded_before_processing_and_kept_up_to_date(
    build_app: BuildApp, kafka_bootstrap: str, tmp_path: Path
) -> None:
    """The global topic (3 partitions) is full when the app starts; the orders' topic has 2
    partitions: no co-partitioning is needed. Every order of the first batch finds its rate
    (loaded before processing); rates written while the app runs reach later orders; a restart
    reads only the rates written while it was down."""
    app = build_app(PRICES.format(how="inner").replace("global-inner", "global-run"), "global_run")
    topics.recreate_topics(kafka_bootstrap, {"orders": 2, "priced": 2}, ["global-run"])
    topics.recreate_topics(kafka_bootstrap, {"rates": 3}, config={"cleanup.policy": "compact"})
    currencies = [f"c{i:03}" for i in range(300)]
    topics.produce_all(
        kafka_bootstrap, "rates", [(c.encode(), b'{"r":%d}' % i) for i, c in enumerate(currencies)]
    )
    orders = [
        (f"o{i}".encode(), b'{"n":%d,"cur":"%s"}' % (i, currencies[i % 300].encode()))
        for i in range(2000)
    ]
    topics.produce_all(kafka_bootstrap, "orders", orders)
    log = tmp_path / "app.log"
    state = tmp_path / "state"

    def start() -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                app.package,
                "--bootstrap-servers",
                kafka_bootstrap,
                "--state-dir",
                str(state),
            ],
            cwd=app.root,
            env=app.env(),
            stdout=log.open("ab"),
            stderr=subprocess.STDOUT,
        )

    def priced() -> list[list[object]]:
        records = topics.read_committed(kafka_bootstrap, "priced")
        return [json.loads(r.value) for r in records if r.value is not None]

    def wait_priced(count: int) -> list[list[object]]:
        deadline = time.monotonic() + 90
        out = priced()
        while len(out) < count and time.monotonic() < deadline:
            assert proc.poll() is None, log.read_text()[-3000:]
            time.sleep(0.5)
            out = priced()
        return out

    proc = start()
    try:
        first = wait_priced(2000)
        assert len(first) == 2000, log.read_text()[-3000:]
        assert sorted(v[2] for v in first) == sorted(i % 300 for i in range(2000))
        text = log.read_text()
        loaded = text.index("global tables loaded (rates): 300 records read")
        assert loaded < text.index("running (exactly_once"), text[-3000:]
        # A new currency, while the app runs: later orders find it.
        topics.produce_all(kafka_bootstrap, "rates", [(b"new", b'{"r":1000}')])
        found: list[list[object]] = []
        for n in range(2000, 2120):  # bounded: 120 orders, 0.5 s apart
            topics.produce_all(kafka_bootstrap, "orders", [(b"late", b'{"n":%d,"cur":"new"}' % n)])
            time.sleep(0.5)
            found = [v for v in priced() if v[1] == "new"]
            if found:
                break
        assert found and found[0][2] == 1000, log.read_text()[-3000:]
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0, log.read_text()[-3000:]
    # While it is down: 5 more rates. The restart reads those 5 only.
    topics.produce_all(
        kafka_bootstrap, "rates", [(f"d{i}".encode(), b'{"r":%d}' % (2000 + i)) for i in range(5)]
    )
    with log.open("a") as f:
        f.write("--- restart ---\n")
    proc = start()
    try:
        deadline = time.monotonic() + 60
        while "running (exactly_once" not in log.read_text().split("--- restart ---")[1]:
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.2)
        assert (
            "global tables loaded (rates): 5 records read"
            in log.read_text().split("--- restart ---")[1]
        ), log.read_text()[-3000:]
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0, log.read_text()[-3000:]
    assert "Traceback" not in log.read_text()
    assert os.path.isdir(state / "global" / "rates")
