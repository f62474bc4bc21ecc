"""The Processor API in the in-memory driver: what a processor sees and forwards, its store
(ranges over committed and uncommitted writes, in RocksDB too), punctuation on stream time
and on wall-clock time (Kafka Streams' rules: due from 0 / an interval after init, missed
intervals skipped, cancel), forwards to one child, failures after a forward under the error
policy, a processor fed by a store's updates, a processor without a store in an app with no
other state, and the example spec (specs/dedup.toml).
Kafka Streams' own judgement is the conformance twin (`processor` in test_conformance.py)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import App, BuildApp

ROOT = Path(__file__).resolve().parent.parent

PROCESSORS = '''
from __future__ import annotations

from typing import Any


class Ticker:
    """Forwards each record to the child its value names; punctuates on both clocks."""

    def init(self, context: Any) -> None:
        self.context = context
        self.marks = context.store("marks")
        self.fired: list[int] = []
        self.stream = context.schedule(100, "stream_time", self.on_stream_time)
        context.schedule(1000, "wall_clock", self.on_wall_clock)

    def process(self, record: Any) -> None:
        if record.value == "cancel":
            self.stream.cancel()
        meta = self.context.record_metadata()
        self.marks.put(record.key, {"offset": meta.offset, "topic": meta.topic})
        child = record.value if record.value in ("left-to", "right-filter") else None
        self.context.forward(record.with_value(record.value), child)

    def on_stream_time(self, timestamp: int) -> None:
        self.fired.append(timestamp)
        record = self.context.record_type("st", f"st@{timestamp}", timestamp)
        self.context.forward(record)

    def on_wall_clock(self, timestamp: int) -> None:
        record = self.context.record_type("wc", f"wc@{timestamp}", timestamp)
        self.context.forward(record, "left-to")

    def close(self) -> None:
        pass


class Boom:
    def init(self, context: Any) -> None:
        self.context = context

    def process(self, record: Any) -> None:
        if record.value == "raise":
            raise ValueError("the processor failed")
        self.context.forward(record)
        self.context.forward(record.with_value(record.value + "-again"))

    def close(self) -> None:
        pass


class Late:
    """After a count's to_stream: a store's updates, no input record."""

    def init(self, context: Any) -> None:
        self.context = context
        context.schedule(1_000_000, "wall_clock", self.fail)

    def process(self, record: Any) -> None:
        meta = self.context.record_metadata()
        self.context.forward(record.with_value(f"{record.value}:{meta is None}"))

    def fail(self, timestamp: int) -> None:
        raise RuntimeError("punctuator broke")

    def close(self) -> None:
        pass
'''

SPEC = """
app = "procs"
on_error = "dead_letter"
dead_letter_topic = "dlq"

[topics.in]
[topics.boom]
[topics.counted]
[topics.left]
[topics.right]
[topics.out]
[topics.counts-out]
[topics.dlq]
value = "bytes"
key = "bytes"

[stores.marks]
key = "string"
value = "json"

[stores.unused]
key = "string"
value = "long"
type = "memory"

[[streams]]
name = "ticks"
from = "in"
steps = [{ process = "kgen_procs_udfs:Ticker", stores = ["marks"] }]

[[streams]]
name = "left"
from_stream = "ticks"
steps = [{ to = "left" }]

[[streams]]
name = "right"
from_stream = "ticks"
steps = [{ filter = "key != 'skip'" }, { to = "right" }]

[[streams]]
name = "booms"
from = "boom"
steps = [
  { process = "kgen_procs_udfs:Boom", stores = ["unused"] },
  { map_values = "1 // 0 if value == 'x-again' else value" },
  { group_by_key = true },
  { count = true, store = "boom-counts" },
  { to_stream = true },
  { map_values = "str(value)" },
  { to = "out" },
]

[[streams]]
name = "late"
from = "counted"
steps = [
  { group_by_key = true },
  { count = true, store = "late-counts" },
  { to_stream = true },
  { process = "kgen_procs_udfs:Late", stores = ["late-store"] },
  { map_values = "str(value)" },
  { to = "counts-out" },
]

[stores.late-store]
key = "string"
value = "long"
"""


@pytest.fixture(scope="module")
def udfs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    folder = tmp_path_factory.mktemp("procs")
    (folder / "kgen_procs_udfs.py").write_text(PROCESSORS)
    sys.path.insert(0, str(folder))
    yield folder
    sys.path.remove(str(folder))
    sys.modules.pop("kgen_procs_udfs", None)


@pytest.fixture(scope="module")
def app(build_app: BuildApp, udfs: Path) -> App:
    return build_app(SPEC, "procs")


@pytest.fixture
def driver(app: App) -> Any:
    record = app.module("processors").Record
    driver = app.module("driver").TopologyTestDriver()
    for task in driver.processors.tasks.values():
        for node in task.nodes.values():
            node.context.record_type = record  # the tests' processors make records with it
    return driver


def values(driver: Any, topic: str) -> list[tuple[Any, Any, int]]:
    return [(r.key, r.value, r.timestamp) for r in driver.read_records(topic)]


def test_stream_time_punctuates_from_zero_and_skips_missed_intervals(driver: Any) -> None:
    driver.pipe_input("in", "k", "v", timestamp=50)  # due at 0: fires at the first record
    driver.pipe_input("in", "k", "v", timestamp=99)
    driver.pipe_input("in", "k", "v", timestamp=350)  # 100, 200, 300 missed: fires once
    driver.pipe_input("in", "k", "v", timestamp=120)  # stream time stays at 350
    driver.pipe_input("in", "k", "v", timestamp=400)  # due at 400
    out = [v for _, v, _ in values(driver, "left")]
    assert out == ["v", "st@50", "v", "v", "st@350", "v", "v", "st@400"]
    assert values(driver, "right") == [
        ("k", "v", 50),
        ("st", "st@50", 50),
        ("k", "v", 99),
        ("k", "v", 350),
        ("st", "st@350", 350),
        ("k", "v", 120),
        ("k", "v", 400),
        ("st", "st@400", 400),
    ]


def test_a_cancelled_punctuation_stops(driver: Any) -> None:
    driver.pipe_input("in", "k", "v", timestamp=0)
    driver.pipe_input("in", "k", "cancel", timestamp=500)
    driver.pipe_input("in", "k", "v", timestamp=900)
    assert [v for _, v, _ in values(driver, "left")] == ["v", "st@0", "cancel", "v"]


def test_wall_clock_punctuates_an_interval_after_init_and_goes_to_one_child(driver: Any) -> None:
    driver.advance_wall_clock(999)
    assert driver.is_empty("left")
    driver.advance_wall_clock(1)
    driver.advance_wall_clock(3500)  # 2000, 3000, 4000 missed: once, at 4500
    driver.advance_wall_clock(500)  # due at 5000
    assert values(driver, "left") == [
        ("wc", "wc@1000", 1000),
        ("wc", "wc@4500", 4500),
        ("wc", "wc@5000", 5000),
    ]
    assert driver.is_empty("right")  # forwarded to the child "left-to" only


def test_forward_to_a_named_child_and_metadata(driver: Any) -> None:
    driver.pipe_input("in", "a", "left-to", timestamp=1)
    driver.pipe_input("in", "b", "right-filter", timestamp=1)
    assert [v for _, v, _ in values(driver, "left")] == ["left-to", "st@1"]
    assert [v for _, v, _ in values(driver, "right")] == ["st@1", "right-filter"]
    assert driver.read_store("marks") == {
        "a": {"offset": 0, "topic": "in"},
        "b": {"offset": 1, "topic": "in"},
    }


def test_a_failure_after_a_forward_is_the_records_and_the_processor_goes_on(driver: Any) -> None:
    driver.pipe_input("boom", "k", "x", timestamp=5)
    # The second forward fails in map_values: dead-lettered, naming that node; the first went on.
    dead = driver.read_records("dlq")
    assert len(dead) == 1
    assert dead[0].headers["__streams.errors.processor"] == b"booms-map-values"
    assert values(driver, "out") == [("k", "1", 5)]
    driver.pipe_input("boom", "k", "raise", timestamp=6)
    dead = driver.read_records("dlq")
    assert [d.headers["__streams.errors.processor"] for d in dead] == [b"booms-process"]
    assert dead[0].headers["__streams.errors.message"] == b"the processor failed"


def test_a_processor_after_a_stores_updates_has_no_record_metadata(app: App, driver: Any) -> None:
    driver.pipe_input("counted", "k", "v", timestamp=7)
    driver.pipe_input("counted", "k", "v", timestamp=8)
    assert values(driver, "counts-out") == [("k", "1:True", 7), ("k", "2:True", 8)]
    # Its wall-clock punctuator fails: a punctuation has no record to skip, the app stops.
    failed = app.module("errors").ProcessingFailed
    with pytest.raises(failed, match="wall_clock punctuation of late-process at 1000000 failed"):
        driver.advance_wall_clock(1_000_000)


def test_process_changes_the_key_so_grouping_after_it_repartitions(app: App) -> None:
    topology = app.module("topology").__doc__
    assert "procs-boom-counts-repartition" in topology
    assert "Processor: booms-process (process kgen_procs_udfs:Boom, stores: unused)" in topology


def test_store_ranges_merge_committed_and_uncommitted_writes(app: App, tmp_path: Path) -> None:
    state = app.module("state")
    backends = app.module("backends")
    spec = state.STORES["marks"]
    sent: list[Any] = []
    for backend in (backends.MemoryBackend(), backends.RocksDBBackend(str(tmp_path / "db"))):
        store = state.Store(spec, 0, backend, lambda *a: None, lambda *a: sent.append(a))
        for key in (b"a", b"c", b"e", b"g"):
            store.put(key, {"v": key.decode()}, 1)
        store.flush()
        store.commit(10)
        store.cache = {}
        store.put(b"c", None, 2)  # deleted, not committed
        store.put(b"d", {"v": "new"}, 2)  # added
        store.put(b"g", {"v": "changed"}, 2)  # changed
        assert [k for k, _ in store.range(None, None)] == [b"a", b"d", b"e", b"g"]
        assert list(store.range(b"b", b"g")) == [
            (b"d", {"v": "new"}),
            (b"e", {"v": "e"}),
            (b"g", {"v": "changed"}),
        ]
        assert list(store.range(b"e", b"e")) == [(b"e", {"v": "e"})]
        assert list(store.range(b"h", None)) == []
        backend.close()


def test_the_dedup_example_forgets_old_ids_at_its_wall_clock_punctuation() -> None:
    sys.path.insert(0, str(ROOT / "generated" / "dedup"))
    try:
        from dedup.driver import TopologyTestDriver
    finally:
        sys.path.remove(str(ROOT / "generated" / "dedup"))
    driver = TopologyTestDriver()
    minute = 60_000
    driver.pipe_input("events", "e1", {"n": 1}, timestamp=0)
    driver.pipe_input("events", "e2", {"n": 2}, timestamp=5 * minute)
    driver.pipe_input("events", "e1", {"n": 3}, timestamp=9 * minute)  # a duplicate
    driver.pipe_input("events", "e3", {"n": 4}, timestamp=12 * minute)
    assert [r.value["n"] for r in driver.read_records("unique-events")] == [1, 2, 4]
    assert set(driver.read_store("seen-ids")) == {"e1", "e2", "e3"}
    driver.advance_wall_clock(minute)  # stream time 12 min: e1 (0) is older than 10 min
    assert driver.read_store("seen-ids") == {"e2": 5 * minute, "e3": 12 * minute}


TAGGER = '''
from __future__ import annotations

from typing import Any


class Tagger:
    """No store: tags each record with where it was read; a tick each second of stream time."""

    def init(self, context: Any) -> None:
        self.context = context
        context.schedule(1000, "stream_time", self.tick)

    def process(self, record: Any) -> None:
        meta = self.context.record_metadata()
        self.context.forward(record.with_value(f"{meta.partition}:{meta.offset}:{record.value}"))

    def tick(self, timestamp: int) -> None:
        from tagger.processors import Record

        self.context.forward(Record("tick", str(timestamp), timestamp))

    def close(self) -> None:
        pass
'''

TAGGER_SPEC = """
app = "tagger"

[topics.in]
key = "string"
value = "string"

[topics.out]
key = "string"
value = "string"

[[streams]]
name = "tagged"
from = "in"
steps = [{ process = "kgen_tagger_udfs:Tagger" }, { map_values = "value.upper()" }, { to = "out" }]
"""


@pytest.fixture(scope="module")
def tagger(build_app: BuildApp, tmp_path_factory: pytest.TempPathFactory) -> Iterator[App]:
    folder = tmp_path_factory.mktemp("tagger")
    (folder / "kgen_tagger_udfs.py").write_text(TAGGER)
    sys.path.insert(0, str(folder))
    app = build_app(TAGGER_SPEC, "tagger")
    sys.path.insert(0, str(app.root))
    yield app
    sys.path.remove(str(folder))
    sys.path.remove(str(app.root))
    for name in [m for m in sys.modules if m == "kgen_tagger_udfs" or m.startswith("tagger")]:
        del sys.modules[name]


def test_a_processor_without_a_store_runs_in_an_otherwise_stateless_app(tagger: App) -> None:
    """Its instances are per task all the same: made on assignment, punctuated on their
    partition's stream time. The app keeps no store, so it needs no RocksDB."""
    assert "tagger/state.py" in tagger.files  # the tasks' bookkeeping
    assert "tests/test_tagger_state.py" not in tagger.files
    assert "rocksdict" not in tagger.files["pyproject.toml"]
    from tagger.driver import TopologyTestDriver

    driver = TopologyTestDriver()
    for i, timestamp in enumerate((0, 400, 1200, 3500)):
        driver.pipe_input("in", f"k{i}", f"v{i}", timestamp=timestamp)
    assert [(r.key, r.value, r.timestamp) for r in driver.read_records("out")] == [
        ("k0", "0:0:V0", 0),
        ("tick", "0", 0),  # due from 0
        ("k1", "0:1:V1", 400),
        ("k2", "0:2:V2", 1200),
        ("tick", "1200", 1200),
        ("k3", "0:3:V3", 3500),
        ("tick", "3500", 3500),  # 2000 and 3000 were missed: skipped
    ]
