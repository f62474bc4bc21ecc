"""Tasks on the real broker: a sub-topology that reads two topics processes its records in
timestamp order across them (Kafka Streams' PartitionGroup), whatever order the fetches bring."""

from __future__ import annotations

import itertools
import subprocess
import sys
from pathlib import Path

import pytest
from confluent_kafka import Producer
from conftest import BuildApp
from example_apps import committed_offsets

from kgen import topics

pytestmark = pytest.mark.broker

MERGE = """
app = "merge-order"
[topics.mo-a]
[topics.mo-b]
[topics.mo-out]
partitions = 1

[[streams]]
name = "b"
from = "mo-b"
steps = []

[[streams]]
name = "all"
from = "mo-a"
steps = [{ merge = "b" }, { to = "mo-out" }]
"""


def test_a_merge_takes_its_inputs_in_timestamp_order(
    kafka_bootstrap: str, build_app: BuildApp, tmp_path: Path
) -> None:
    app = build_app(MERGE, "merge_order")
    topics.recreate_topics(
        kafka_bootstrap, {"mo-a": 1, "mo-b": 1, "mo-out": 1}, groups=["merge-order"]
    )
    # All of one topic first, then all of the other: fetches bring long runs of each.
    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    for topic, parity in (("mo-a", 0), ("mo-b", 1)):
        for i in range(2000):
            ts = 1_000 + 2 * i + parity
            producer.produce(topic, f"{topic}-{i}".encode(), timestamp=ts)
    assert producer.flush(30) == 0
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            app.package,
            "--bootstrap-servers",
            kafka_bootstrap,
            "--stop-when-idle",
            "10",
            "--batch-size",
            "100",
        ],
        cwd=app.root,
        env=app.env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = topics.read_committed(kafka_bootstrap, "mo-out")
    stamps = [r.timestamp for r in out]
    assert len(out) == 4000 and len({r.value for r in out}) == 4000
    switches = sum(1 for a, b in itertools.pairwise(out) if a.value[:4] != b.value[:4])
    print(f"{switches} switches between the two inputs in 4,000 records")
    assert stamps == sorted(stamps), f"not in timestamp order: {switches} switches"
    # Commits claim processed records only (not ones still buffered): all of both, in the end.
    for topic in ("mo-a", "mo-b"):
        assert committed_offsets(kafka_bootstrap, "merge-order", topic, 1) == [2000]
