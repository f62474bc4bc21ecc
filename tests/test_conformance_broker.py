"""Conformance on a real broker: a sample of the conformance topologies run as real apps.

tests/test_conformance.py compares kgen's in-memory driver with Kafka Streams'
TopologyTestDriver, one input record at a time. Both drivers hide what a broker adds: the
order in which a task takes records from several partitions (by timestamp, KIP-695), the
round trip of a repartition topic between sub-topologies, commits and transactions. Here, for
a sample of the topologies (SAMPLE), a few seeded cases (tests/conformance/cases.py) are
concatenated into one input per topology and produced once to the spec's input topics; then,
at the same time and against the same broker:

- the kgen app built from tests/conformance/specs/<topology>.toml runs as a process
  (`--stop-when-idle`, a fresh `--state-dir`, `--cache-max-entries 0`), writing to the spec's
  sink topics;
- the Java twin runs as a real KafkaStreams application (BrokerRun in the conformance jar:
  exactly_once_v2, statestore.cache.max.bytes=0, commit.interval.ms=100) under its own
  application id, writing to the same sink topics prefixed with `ks-`.

Every topic has one partition, so that each side's output has one order to compare. The
outputs are read back with read_committed and compared per sink topic: a stream record by
record (key, value, timestamp) in offset order; a table as its final value per key and as the
sequence of updates (value, timestamp) of each key. Kafka Streams' record cache is off, so
both sides forward every update and no difference is expected; a difference that is a
legitimate broker-level effect goes in KNOWN_DIFFERENCES with its reason, anything else fails.

KGEN_CONFORMANCE_BROKER_CASES (default 4) cases per topology, seeds from KGEN_CONFORMANCE_SEED
(default 0).
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient
from conformance import cases as case_gen
from conformance import kafka_streams
from conftest import App, BuildApp

from kgen import topics

pytestmark = pytest.mark.broker

SPECS = Path(__file__).resolve().parent / "conformance" / "specs"
CASES = int(os.environ.get("KGEN_CONFORMANCE_BROKER_CASES", "4"))
SEED = int(os.environ.get("KGEN_CONFORMANCE_SEED", "0"))
KS_PREFIX = "ks-"  # the Kafka Streams twin's sink topics: ks-<the spec's sink topic>
KGEN_IDLE_S = 8  # kgen stops after this long without input
KS_IDLE_MS = 3000  # the twin stops after this long without processing a record
KS_MAX_MS = 60_000  # ... or after this long in all
RUN_TIMEOUT_S = 120  # every process has ended by then
# Added to every input timestamp when it is produced, taken off every output timestamp read:
# librdkafka reads a timestamp of 0 (the cases have some) as "now".
TS_BASE = 1_000_000_000_000

# The sample: per topology, its sink topics and whether each is a stream or a table (the
# changelog stream of a table or an aggregation: compared per key).
SAMPLE: dict[str, dict[str, str]] = {
    "merge": {"merged": "stream", "both": "stream"},
    "regroup": {"region-counts": "table", "region-totals": "table"},
    "table-ops": {
        "t-active": "table",
        "t-inactive": "table",
        "t-names": "table",
        "t-active-per-region": "table",
        "t-active-kept": "table",
        "t-regions-kept": "table",
    },
    "wordcount": {"word-counts": "table"},
}

Case = list[dict[str, Any]]
# Put before the seeded cases of a topology: the minimal input of a known difference, so that
# every run exercises it (the seeded cases do only now and then).
PREFIX: dict[str, Case] = {
    "merge": [
        {"topic": "left", "key": "k", "value": "x", "timestamp": 100},
        {"topic": "left", "key": "k", "value": "y", "timestamp": 100},
        {"topic": "right", "key": "k", "value": "z", "timestamp": 100},
    ],
}
# One output record as read back: (key, value, timestamp), decoded with the topic's formats.
Rec = tuple[Any, Any, int]


# -- known differences --------------------------------------------------------------------------


@dataclass(frozen=True)
class KnownDifference:
    """A difference between the two apps on a broker, explained: `matches(topology, topic)`
    says whether the mismatch of that sink topic is exactly this difference."""

    topologies: tuple[str, ...]
    what: str
    why: str
    matches: Callable[[Topology, str], bool]


def _tie_order(t: Topology, topic: str) -> bool:
    """Each side wrote exactly what TopologyTestDriver writes when given the input in that
    side's processing order (its rule for equal timestamps)."""
    kgen = t.predicted.get("kgen", {}).get(topic, [])
    kafka_streams = [p.get(topic, []) for n, p in t.predicted.items() if n != "kgen"]
    return t.kgen[topic] == kgen and t.kafka_streams[topic] in kafka_streams


# With the record cache off and one partition per topic, both apps write the same records in
# the same order but for these (see the README, Semantics).
KNOWN_DIFFERENCES: dict[str, KnownDifference] = {
    "tie-order": KnownDifference(
        topologies=("merge",),
        what=(
            "a task reading several topics whose buffered heads have equal timestamps: Kafka "
            "Streams takes the partition it did not just take a record from, kgen the first "
            "source topic of the spec (merge: left 'x'@100 then 'y'@100, right 'z'@100: Kafka "
            "Streams processes x, z, y, or z, x, y when its first fetch returned right first; "
            "kgen x, y, z)"
        ),
        why=(
            "both take records in timestamp order (PartitionGroup); Kafka Streams breaks ties "
            "by the order of its java.util.PriorityQueue of partitions, which re-offers the "
            "partition just polled behind one with an equal head timestamp, kgen by topic "
            "order. Neither order is specified; kgen could copy Kafka Streams' (tasks.py.j2)"
        ),
        matches=_tie_order,
    ),
}


# -- processing order ---------------------------------------------------------------------------


def _java_priority_queue_order(queues: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Kafka Streams' PartitionGroup.nextRecord(): a java.util.PriorityQueue of the non-empty
    partition queues by head timestamp (offered in `queues` order); poll one, take its head
    record, offer it again while it is not empty. Java's sift-up and sift-down, exactly."""
    heap: list[int] = []

    def head(i: int) -> int:
        return int(queues[i][0]["timestamp"])

    def offer(i: int) -> None:
        heap.append(i)
        k = len(heap) - 1
        while k > 0:
            parent = (k - 1) >> 1
            if head(i) >= head(heap[parent]):
                break
            heap[k] = heap[parent]
            k = parent
        heap[k] = i

    def poll() -> int:
        first, last = heap[0], heap.pop()
        if heap:
            k, n = 0, len(heap)
            while k < n >> 1:
                child = 2 * k + 1
                if child + 1 < n and head(heap[child]) > head(heap[child + 1]):
                    child += 1
                if head(last) <= head(heap[child]):
                    break
                heap[k] = heap[child]
                k = child
            heap[k] = last
        return first

    queues = [list(q) for q in queues]
    for i, q in enumerate(queues):
        if q:
            offer(i)
    out = []
    while heap:
        i = poll()
        out.append(queues[i].pop(0))
        if queues[i]:
            offer(i)
    return out


def _kgen_order(queues: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """kgen's PartitionGroups (tasks.py): the buffered head with the smallest timestamp, the
    first of the task's topics (in spec order) on a tie."""
    queues = [list(q) for q in queues]
    out = []
    while any(queues):
        first = min((q for q in queues if q), key=lambda q: q[0]["timestamp"])
        out.append(first.pop(0))
    return out


def _processing_orders(inputs: Case, groups: tuple[tuple[str, ...], ...]) -> dict[str, Case]:
    """The orders in which each side processes `inputs` when every record is there before
    it starts: for each task group of several topics (kgen's TASK_GROUPS), its records
    merged by timestamp with each side's rule for ties; then the other records as given. A
    side's output per sink depends only on the order within each task. Kafka Streams' first
    offer order is that of its first fetch: both are kept ("kafka-streams-N")."""
    groups = tuple(dict.fromkeys(g for g in groups if len(g) > 1))
    if not groups:
        return {}
    grouped = {topic for g in groups for topic in g}
    rest = [r for r in inputs if r["topic"] not in grouped]
    orders: dict[str, Case] = {"kgen": []}
    variants = [list(groups[0]), list(reversed(groups[0]))] if len(groups) == 1 else [None]
    for n, first in enumerate(variants):
        order: Case = []
        for g in groups:
            topics_in_order = first if first is not None else list(g)
            order += _java_priority_queue_order(
                [[r for r in inputs if r["topic"] == topic] for topic in topics_in_order]
            )
        orders[f"kafka-streams-{n}"] = order + rest
    for g in groups:
        orders["kgen"] += _kgen_order([[r for r in inputs if r["topic"] == tp] for tp in g])
    orders["kgen"] += rest
    return orders


# -- formats ------------------------------------------------------------------------------------


def _encode(fmt: str, value: Any) -> bytes | None:
    """A case file's value as the bytes of the spec's format (what the twins' Format does)."""
    if value is None:
        return None
    if fmt == "string":
        return str(value).encode()
    if fmt == "long":
        return struct.pack(">q", value)
    if fmt == "json":
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()
    raise ValueError(f"no encoding for format {fmt!r}")


def _decode(fmt: str, data: bytes | None) -> Any:
    if data is None:
        return None
    if fmt == "string":
        return data.decode()
    if fmt == "long":
        return struct.unpack(">q", data)[0]
    if fmt == "json":
        return json.loads(data)
    raise ValueError(f"no decoding for format {fmt!r}")


# -- the broker ---------------------------------------------------------------------------------


def _delete_with_prefix(bootstrap: str, prefixes: tuple[str, ...]) -> None:
    """Delete the topics named `<prefix>...` (the apps' internal topics of an earlier run: a
    changelog left over would be restored into the fresh state) and wait until they are gone."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    doomed = [t for t in admin.list_topics(timeout=30).topics if t.startswith(prefixes)]
    if not doomed:
        return
    for future in admin.delete_topics(doomed, operation_timeout=30).values():
        future.result()
    deadline = time.monotonic() + 60
    while any(t in admin.list_topics(timeout=30).topics for t in doomed):
        if time.monotonic() > deadline:
            raise TimeoutError(f"topics {doomed} were not deleted within 60 s")
        time.sleep(0.2)


def _produce(bootstrap: str, settings: Any, records: Case) -> None:
    """The records, in order, each to partition 0 of its topic with its timestamp (plus
    TS_BASE)."""
    producer = Producer(
        {"bootstrap.servers": bootstrap, "enable.idempotence": True, "linger.ms": 5}
    )
    failures: list[Any] = []
    for record in records:
        spec = settings.TOPICS[record["topic"]]
        producer.produce(
            record["topic"],
            _encode(spec.value_format, record["value"]),
            _encode(spec.key_format, record["key"]),
            partition=0,
            timestamp=TS_BASE + record["timestamp"],
            on_delivery=lambda err, _msg: failures.append(err) if err is not None else None,
        )
    left = producer.flush(60)
    assert not left and not failures, f"producing: {left} undelivered, failures {failures[:3]}"


def _read(bootstrap: str, topic: str, key_format: str, value_format: str) -> list[Rec]:
    return [
        (_decode(key_format, r.key), _decode(value_format, r.value), r.timestamp - TS_BASE)
        for r in topics.read_committed(bootstrap, topic, timeout_s=30)
    ]


# -- comparing ----------------------------------------------------------------------------------


def _by_key(records: list[Rec]) -> dict[Any, list[tuple[Any, int]]]:
    updates: dict[Any, list[tuple[Any, int]]] = {}
    for key, value, timestamp in records:
        updates.setdefault(_hashable(key), []).append((value, timestamp))
    return updates


def _hashable(key: Any) -> Any:
    return json.dumps(key, sort_keys=True) if isinstance(key, dict | list) else key


def _differences(kind: str, ks: list[Rec], kg: list[Rec]) -> list[str]:
    """What differs, shortly: nothing when the two outputs agree."""
    if kind == "stream":
        if ks == kg:
            return []
        at = next(
            (i for i, (a, b) in enumerate(zip(ks, kg, strict=False)) if a != b),
            min(len(ks), len(kg)),
        )
        return [
            f"{len(ks)} records from Kafka Streams, {len(kg)} from kgen; first difference at "
            f"offset {at}: Kafka Streams {ks[at] if at < len(ks) else '(none)'}, "
            f"kgen {kg[at] if at < len(kg) else '(none)'}"
        ]
    out = []
    ks_keys, kg_keys = _by_key(ks), _by_key(kg)
    ks_final = {k: u[-1][0] for k, u in ks_keys.items()}
    kg_final = {k: u[-1][0] for k, u in kg_keys.items()}
    if ks_final != kg_final:
        wrong = sorted(
            (k for k in set(ks_final) | set(kg_final) if ks_final.get(k) != kg_final.get(k)),
            key=repr,
        )
        out.append(
            "final values differ: "
            + "; ".join(
                f"{k!r}: Kafka Streams {ks_final.get(k, '(absent)')!r}, "
                f"kgen {kg_final.get(k, '(absent)')!r}"
                for k in wrong[:5]
            )
        )
    for key in sorted(set(ks_keys) | set(kg_keys), key=repr):
        if ks_keys.get(key, []) != kg_keys.get(key, []):
            out.append(
                f"updates of {key!r}: Kafka Streams {ks_keys.get(key, [])}, "
                f"kgen {kg_keys.get(key, [])}"
            )
    return out


# -- running ------------------------------------------------------------------------------------


@dataclass
class Topology:
    """One topology of the sample: its app, input and what each side wrote."""

    name: str
    app: App
    settings: Any
    inputs: Case
    ks_app_id: str = ""
    kafka_streams: dict[str, list[Rec]] = field(default_factory=dict)
    kgen: dict[str, list[Rec]] = field(default_factory=dict)
    # Kafka Streams' TopologyTestDriver on the same input, one record at a time (for the
    # summary: what the broker changes)
    driver: dict[str, list[Rec]] = field(default_factory=dict)
    # Processing orders of the input (_processing_orders), and what TopologyTestDriver writes
    # given the input in each of them
    orders: dict[str, Case] = field(default_factory=dict)
    predicted: dict[str, dict[str, list[Rec]]] = field(default_factory=dict)
    # sink topic -> what differs (unexplained), and known difference names seen
    unexplained: dict[str, list[str]] = field(default_factory=dict)
    known: dict[str, str] = field(default_factory=dict)


@dataclass
class Run:
    topologies: dict[str, Topology]
    seconds: dict[str, float]


def _start_kgen(t: Topology, bootstrap: str, work: Path) -> subprocess.Popen[bytes]:
    args = ["--bootstrap-servers", bootstrap, "--stop-when-idle", str(KGEN_IDLE_S)]
    if "--state-dir" in t.settings.parser().format_help():  # an app with state stores
        args += ["--state-dir", str(work / f"kgen-state-{t.name}"), "--cache-max-entries", "0"]
    return subprocess.Popen(
        [sys.executable, "-m", t.app.package, *args],
        cwd=t.app.root,
        env=t.app.env(),
        stdout=(work / f"kgen-{t.name}.log").open("wb"),
        stderr=subprocess.STDOUT,
    )


def _start_kafka_streams(
    jar: Path, sample: list[Topology], bootstrap: str, work: Path
) -> subprocess.Popen[bytes]:
    args: list[str] = []
    for t in sample:
        args += [t.name, bootstrap, t.ks_app_id, str(work / f"ks-state-{t.name}")]
    return subprocess.Popen(
        [
            "java",
            f"-Dkgen.sink.prefix={KS_PREFIX}",
            f"-Dkgen.idle.ms={KS_IDLE_MS}",
            f"-Dkgen.max.ms={KS_MAX_MS}",
            "-cp",
            str(jar),
            "dev.kgen.conformance.BrokerRun",
            *args,
        ],
        stdout=(work / "kafka-streams.out").open("wb"),
        stderr=(work / "kafka-streams.log").open("wb"),
    )


def _wait(proc: subprocess.Popen[bytes], deadline: float, log: Path, what: str) -> None:
    try:
        code = proc.wait(max(1.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(30)
        pytest.fail(f"{what} still running after {RUN_TIMEOUT_S} s:\n{_tail(log)}")
    assert code == 0, f"{what} exited {code}:\n{_tail(log)}"


def _tail(path: Path) -> str:
    return path.read_text(errors="replace")[-4000:] if path.exists() else "(no output)"


def _compare(t: Topology) -> None:
    for topic, kind in SAMPLE[t.name].items():
        ks, kg = t.kafka_streams[topic], t.kgen[topic]
        diffs = _differences(kind, ks, kg)
        if not diffs:
            continue
        known = [n for n, d in KNOWN_DIFFERENCES.items() if d.matches(t, topic)]
        if known:
            t.known[topic] = known[0]
        else:
            t.unexplained[topic] = diffs


@pytest.fixture(scope="module")
def run(kafka_bootstrap: str, build_app: BuildApp, tmp_path_factory: pytest.TempPathFactory) -> Run:
    if shutil.which("java") is None:
        pytest.fail("java is not on PATH: the broker conformance runs Kafka Streams")
    jar = kafka_streams.build()  # before the clock: the first build takes minutes
    seconds: dict[str, float] = {}
    started = time.monotonic()
    work = tmp_path_factory.mktemp("conformance-broker")
    sample: dict[str, Topology] = {}
    for name, sinks in SAMPLE.items():
        app = build_app((SPECS / f"{name}.toml").read_text(encoding="utf-8"), f"broker_{name}")
        settings = app.module("settings")
        assert set(settings.SINK_TOPICS) == set(sinks), name
        seeded = [r for i in range(CASES) for r in case_gen.generate(name, SEED + i)]
        inputs = [*PREFIX.get(name, []), *seeded]
        # kgen's application id is the spec's app; the twin's is its own, so that the two never
        # share a consumer group, a transactional id or an internal topic.
        t = Topology(name, app, settings, inputs, ks_app_id=f"ks-{settings.APP_ID}")
        if (app.root / app.package / "tasks.py").is_file():  # tasks reading several topics
            t.orders = _processing_orders(inputs, app.module("tasks").TASK_GROUPS)
        sample[name] = t
    seconds["build"] = time.monotonic() - started

    at = time.monotonic()
    for t in sample.values():
        app_id = t.ks_app_id.removeprefix("ks-")
        _delete_with_prefix(kafka_bootstrap, (f"{app_id}-", f"{t.ks_app_id}-"))
        sinks = list(t.settings.SINK_TOPICS)
        topics.recreate_topics(
            kafka_bootstrap,
            dict.fromkeys([*t.settings.SOURCE_TOPICS, *sinks, *(KS_PREFIX + s for s in sinks)], 1),
            groups=[app_id, t.ks_app_id],
            config={"retention.ms": "-1"},  # the case timestamps are from 1970
        )
        _produce(kafka_bootstrap, t.settings, t.inputs)
    seconds["topics and input"] = time.monotonic() - at

    at = time.monotonic()
    java = _start_kafka_streams(jar, list(sample.values()), kafka_bootstrap, work)
    apps = {name: _start_kgen(t, kafka_bootstrap, work) for name, t in sample.items()}
    deadline = time.monotonic() + RUN_TIMEOUT_S
    try:
        # Meanwhile, for the summary: the same inputs through TopologyTestDriver.
        lines = kafka_streams.run(
            jar, {t.name: [t.inputs, *t.orders.values()] for t in sample.values()}, work
        )
        seconds["TopologyTestDriver"] = time.monotonic() - at
        for name, proc in apps.items():
            _wait(proc, deadline, work / f"kgen-{name}.log", f"kgen app {name}")
        seconds["kgen apps"] = time.monotonic() - at
        _wait(java, deadline, work / "kafka-streams.log", "the Kafka Streams twins")
        seconds["Kafka Streams twins"] = time.monotonic() - at
    finally:
        for proc in [java, *apps.values()]:
            if proc.poll() is None:
                proc.kill()
                proc.wait(30)
    for line in (work / "kafka-streams.out").read_text().splitlines():
        status = json.loads(line)
        assert status["idle"] and status["closed"] and "error" not in status, status
    for line in lines:
        assert "error" not in line, line
        t = sample[line["topology"]]
        rec = (line["key"], line["value"], line["timestamp"])
        if line["case"] == 0:
            t.driver.setdefault(line["topic"], []).append(rec)
        else:
            order = list(t.orders)[line["case"] - 1]
            t.predicted.setdefault(order, {}).setdefault(line["topic"], []).append(rec)

    at = time.monotonic()
    reads = [
        (t, side, topic)
        for t in sample.values()
        for topic in SAMPLE[t.name]
        for side in ("kgen", "kafka_streams")
    ]

    def read(t: Topology, side: str, topic: str) -> list[Rec]:
        spec = t.settings.TOPICS[topic]
        name = topic if side == "kgen" else KS_PREFIX + topic
        return _read(kafka_bootstrap, name, spec.key_format, spec.value_format)

    with ThreadPoolExecutor(8) as pool:
        for (t, side, topic), records in zip(
            reads, pool.map(lambda r: read(*r), reads), strict=True
        ):
            getattr(t, side)[topic] = records
    for t in sample.values():
        _compare(t)
    seconds["read and compare"] = time.monotonic() - at
    (work / "outputs.json").write_text(
        json.dumps(
            {
                t.name: {"kafka_streams": t.kafka_streams, "kgen": t.kgen, "driver": t.driver}
                for t in sample.values()
            },
            ensure_ascii=False,
            indent=1,
        ),
        encoding="utf-8",
    )
    seconds["total"] = time.monotonic() - started
    return Run(sample, seconds)


@pytest.mark.parametrize("topology", sorted(SAMPLE))
def test_kgen_on_a_broker_writes_what_kafka_streams_writes(run: Run, topology: str) -> None:
    t = run.topologies[topology]
    assert any(t.kafka_streams.values()), f"{topology}: Kafka Streams wrote nothing"
    shown = "\n".join(
        f"  {topic}:\n" + "\n".join(f"    {d}" for d in diffs[:5])
        for topic, diffs in t.unexplained.items()
    )
    inputs = "\n".join(f"    {r}" for r in t.inputs)
    assert not t.unexplained, (
        f"{topology} on a broker: unexplained differences from Kafka Streams:\n{shown}\n"
        f"  input ({CASES} cases, seeds from {SEED}, concatenated):\n{inputs}"
    )
    for name, difference in KNOWN_DIFFERENCES.items():
        if topology in difference.topologies:
            assert name in t.known.values(), (
                f"known difference {name!r} ({difference.what}) no longer shows in {topology} "
                "(PREFIX exercises it): kgen looks fixed; take it off KNOWN_DIFFERENCES and the "
                "README's Semantics section"
            )


def test_summary(run: Run, capsys: pytest.CaptureFixture[str]) -> None:
    lines = [
        "",
        "conformance with Kafka Streams 4.4.0 on a real broker (one partition per topic, "
        "cache off, exactly-once):",
    ]
    for name, t in run.topologies.items():
        records = sum(len(v) for v in t.kafka_streams.values())
        known = ", ".join(f"{k} on {topic}" for topic, k in t.known.items()) or "none"
        driver = [
            topic
            for topic, kind in SAMPLE[name].items()
            if _differences(kind, t.driver.get(topic, []), t.kafka_streams[topic])
        ]
        order = [
            topic
            for topic, kind in SAMPLE[name].items()
            if kind == "table" and t.kafka_streams[topic] != t.kgen[topic]
        ]
        lines.append(
            f"  {name:10} {len(t.inputs)} input records, {records} output records compared; "
            f"known differences: {known}; unexplained: {len(t.unexplained)} topics; "
            f"tables in another order across keys: {', '.join(order) or 'none'}; "
            f"topics where TopologyTestDriver differs from the broker: "
            f"{', '.join(driver) or 'none'}"
        )
    lines.append("  seconds: " + ", ".join(f"{k} {v:.1f}" for k, v in run.seconds.items()))
    with capsys.disabled():
        print("\n".join(lines))
    assert set(run.topologies) == set(SAMPLE)
