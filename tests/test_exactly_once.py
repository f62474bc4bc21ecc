"""Exactly-once, proved: SIGKILL the generated payments app mid-stream, twice, restart it, and
read the output with isolation.level=read_committed — every expected record once, none lost,
none duplicated.

The first restart keeps the instance id (static membership and the same transactional.id: the
new producer fences the dead one and aborts its open transaction at once). The second comes
back under a new id, as a replacement instance would: the dead member's partitions move after
its session times out, and its open transaction is aborted by the broker's transaction
timeout before the new owner may read the committed offsets (KIP-447).
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaException, TopicPartition
from example_apps import build_example, committed_offsets, start_app

from kgen import topics

GROUP = "payments-eos"
TRANSACTION_TIMEOUT_S = 10  # the generated app's transaction.timeout.ms, as Kafka Streams'
RECORDS = 300_000
PARTITIONS = 3

pytestmark = [pytest.mark.broker, pytest.mark.slow]


def _committed(bootstrap: str) -> int:
    """How many input records the app's group has committed, over all partitions."""
    return sum(max(o, 0) for o in committed_offsets(bootstrap, GROUP, "payment", PARTITIONS))


def _kill_mid_stream(bootstrap: str, app: subprocess.Popen[bytes], above: int) -> int:
    """SIGKILL the app as soon as it has committed more than `above` records, but not all.

    One consumer asks for the group's offsets throughout: a new one per look must find the
    coordinator first (up to a second on a loaded machine), long enough for the restarted app
    to get through all 300,000 records between two looks (it happened once in CI)."""
    watcher = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": GROUP, "enable.auto.commit": False}
    )
    partitions = [TopicPartition("payment", p) for p in range(PARTITIONS)]
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline:
            try:
                done = sum(max(tp.offset, 0) for tp in watcher.committed(partitions, timeout=10))
            except KafkaException:
                done = 0  # the coordinator is not ready yet: look again
            if done > above:
                app.send_signal(signal.SIGKILL)
                app.wait(30)
                assert done < RECORDS, "the app finished before it could be killed mid-stream"
                return done
            assert app.poll() is None, "the app exited on its own"
            time.sleep(0.02)
    finally:
        watcher.close()
    raise AssertionError("the app made no progress within 120 s")


def test_sigkill_twice_then_exactly_once(kafka_bootstrap: str, tmp_path: Path) -> None:
    bootstrap = kafka_bootstrap
    topics.recreate_topics(
        bootstrap, {"payment": PARTITIONS, "unknown-payment": PARTITIONS}, groups=[GROUP]
    )
    keys = ["unknown" if i % 3 == 0 else f"user-{i}" for i in range(RECORDS)]
    expected = [str(i) for i, key in enumerate(keys) if key == "unknown"]
    topics.produce_all(
        bootstrap, "payment", ((k.encode(), str(i).encode()) for i, k in enumerate(keys))
    )

    # The payments example as app 'payments-eos': its own consumer group on the shared broker.
    app = build_example("payments", GROUP, tmp_path)
    log = tmp_path / "app.log"
    first = start_app(app, bootstrap, log, "--instance-id", "eos-a", "--batch-size", "100")
    killed_at = [_kill_mid_stream(bootstrap, first, 0)]

    second = start_app(app, bootstrap, log, "--instance-id", "eos-a", "--batch-size", "100")
    killed_at.append(_kill_mid_stream(bootstrap, second, killed_at[0]))
    last_kill = time.monotonic()

    last = start_app(app, bootstrap, log, "--instance-id", "eos-b")
    deadline = time.monotonic() + 180
    while _committed(bootstrap) < RECORDS:
        assert time.monotonic() < deadline, log.read_text()[-4000:]
        assert last.poll() is None, log.read_text()[-4000:]
        time.sleep(0.2)
    # A clean stop: SIGTERM finishes the batch, commits, leaves the group, exits 0.
    last.send_signal(signal.SIGTERM)
    assert last.wait(60) == 0, log.read_text()[-4000:]
    assert _committed(bootstrap) == RECORDS

    # The second dead instance's open transaction is only aborted by the broker once its
    # transaction.timeout.ms (10 s) has passed; until then a read_committed reader stops at
    # the first offset of that transaction (the last stable offset), as it should.
    time.sleep(max(0.0, last_kill + TRANSACTION_TIMEOUT_S + 3 - time.monotonic()))
    output = topics.read_committed(bootstrap, "unknown-payment")
    values = Counter(r.value.decode() for r in output if r.value is not None)
    duplicates = {v: n for v, n in values.items() if n > 1}
    missing = set(expected) - set(values)
    assert not duplicates, f"{len(duplicates)} duplicated, e.g. {list(duplicates)[:5]}"
    assert not missing, f"{len(missing)} lost, e.g. {sorted(missing)[:5]}"
    assert sorted(values) == sorted(expected)
    assert all(r.key == b"unknown" for r in output)
    print(f"killed after {killed_at} committed records; {len(output)} output records exactly once")
