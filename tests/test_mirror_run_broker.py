"""A spec's [[mirrors]] for real: the generated mm2.properties run by `kgen mirror run` (kgen's
MirrorMaker 2) from the session broker to a second one, with the target's address and a client
setting given as ${env:...} references that MirrorMaker resolves itself; and the properties
reader `kgen mirror run` uses."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic
from conftest import BuildApp

from kgen.kafka import LocalKafka
from kgen.mirrors import parse_properties

ROOT = Path(__file__).resolve().parent.parent

SPEC = """
app = "mirrored"

[topics.{topic}]

[topics.{topic}-copy]

[[streams]]
name = "copy"
from = "{topic}"
steps = [{{ to = "{topic}-copy" }}]

[[mirrors]]
topics = ["{topic}", "{topic}-c\\\\.py"]
replication_policy = "identity"

[mirrors.source]
alias = "primary"
bootstrap_servers = "{source}"
config = {{ "client.id" = "${{env:MM2_CLIENT_ID}}" }}

[mirrors.target]
alias = "backup"
bootstrap_servers = "${{env:BACKUP_BOOTSTRAP}}"

# The internal topics of the Connect worker MirrorMaker runs for the flow, on the target.
[mirrors.target.config]
"config.storage.replication.factor" = "1"
"offset.storage.replication.factor" = "1"
"status.storage.replication.factor" = "1"

[mirrors.config]
"replication.factor" = "1"
"checkpoints.topic.replication.factor" = "1"
"heartbeats.topic.replication.factor" = "1"
"offset-syncs.topic.replication.factor" = "1"
"refresh.topics.interval.seconds" = "2"
"""


def test_properties_are_read_as_java_reads_them() -> None:
    text = (
        "# a comment\n! another\n  a.b = one two \nc:d\ne f\n"
        "g = x\\\\y\\:z\\n\\u0041\nh = first \\\n    second\nempty =\n"
    )
    assert parse_properties(text) == {
        "a.b": "one two ",
        "c": "d",
        "e": "f",
        "g": "x\\y:z\nA",
        "h": "first second",
        "empty": "",
    }


def test_the_cdc_example_mirrors_as_written() -> None:
    settings = parse_properties((ROOT / "generated/cdc/mm2.properties").read_text("utf-8"))
    assert settings["clusters"] == "primary, backup"
    assert settings["primary->backup.topics"] == "customers"
    assert settings["primary->backup.sync.group.offsets.enabled"] == "true"


@pytest.fixture(scope="module")
def backup_kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalKafka]:
    broker = LocalKafka(data_dir=tmp_path_factory.mktemp("kafka-backup"))
    try:
        broker.start()
        yield broker
    finally:
        broker.kill()


@pytest.mark.broker
def test_kgen_mirror_run_mirrors_a_spec_topic(
    kafka_bootstrap: str, backup_kafka: LocalKafka, build_app: BuildApp
) -> None:
    topic = f"orders-{uuid.uuid4().hex[:8]}"
    app = build_app(SPEC.format(topic=topic, source=kafka_bootstrap), "mirrored")
    properties = app.root / "mm2.properties"
    assert "${env:BACKUP_BOOTSTRAP}" in properties.read_text("utf-8")
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(timeout=30)
    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    for i in range(10):
        producer.produce(topic, key=f"k{i}", value=f"v{i}")
    assert producer.flush(30) == 0

    env = {
        **os.environ,
        "BACKUP_BOOTSTRAP": backup_kafka.bootstrap_servers,
        "MM2_CLIENT_ID": "kgen-mirror-test",
        "PYTHONPATH": str(ROOT),
    }
    mirror = subprocess.Popen(
        [sys.executable, "-m", "kgen", "mirror", "run", str(properties), "--clusters", "backup"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    consumer = Consumer(
        {
            "bootstrap.servers": backup_kafka.bootstrap_servers,
            "group.id": f"check-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            "topic.metadata.refresh.interval.ms": 500,
        }
    )
    records: list[tuple[str, str]] = []
    try:
        # Identity policy: the topic keeps its name on the backup cluster.
        consumer.subscribe([topic])
        deadline = time.monotonic() + 120
        while len(records) < 10 and time.monotonic() < deadline and mirror.poll() is None:
            message = consumer.poll(0.5)
            if message is not None and message.error() is None:
                records.append(((message.key() or b"").decode(), (message.value() or b"").decode()))
    finally:
        consumer.close()
        mirror.send_signal(signal.SIGTERM)
        out, err = mirror.communicate(timeout=60)
    assert records == [(f"k{i}", f"v{i}") for i in range(10)], out + err[-3000:]
    assert mirror.returncode == 0, out + err[-3000:]
    assert "MirrorMaker 2 runs the flows of" in out
