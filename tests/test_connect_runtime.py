"""Kafka Connect, PostgreSQL and MirrorMaker 2 for real: fast unit checks, then a session-wide
Connect worker (`-m broker`) running Connect's file connectors and Debezium's PostgreSQL source,
and MirrorMaker 2 between two local brokers."""

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import (
    Consumer,
    ConsumerGroupTopicPartitions,
    KafkaException,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, ConfigResource, ResourceType

# confluent_kafka.admin re-exports NewTopic without declaring it, which mypy --strict rejects.
from confluent_kafka.cimpl import NewTopic

from kgen.kafka import FetchError, LocalKafka, cache_root, connect_cli
from kgen.kafka.connect import FILE_SINK, FILE_SOURCE, ConnectWorker, worker_properties
from kgen.kafka.connect_jars import connect_bundle, find_plugin
from kgen.kafka.connect_rest import ConnectClient
from kgen.kafka.errors import ConnectError
from kgen.kafka.mirror import MirrorMaker, mirror_properties
from kgen.postgres import LocalPostgres, find_bindir

DEBEZIUM_POSTGRES = "io.debezium.connector.postgresql.PostgresConnector"
STRING_CONVERTER = "org.apache.kafka.connect.storage.StringConverter"
# Connect creates a source connector's topics (the broker does not auto-create them).
TOPIC_CREATION = {
    "topic.creation.default.replication.factor": "1",
    "topic.creation.default.partitions": "1",
}

# --- unit checks: no JVM ------------------------------------------------------------------


def test_worker_properties_are_loopback_and_single_replica(tmp_path: Path) -> None:
    text = worker_properties("127.0.0.1:9092", 18083, "g", [tmp_path / "a", tmp_path / "b"])
    props = dict(line.split("=", 1) for line in text.splitlines() if not line.startswith("#"))
    assert props["listeners"] == "http://127.0.0.1:18083"
    assert props["rest.advertised.host.name"] == "127.0.0.1"
    assert props["plugin.path"] == f"{tmp_path / 'a'},{tmp_path / 'b'}"
    assert props["config.storage.topic"] == "g-configs"
    for kind in ("config", "offset", "status"):
        assert props[f"{kind}.storage.replication.factor"] == "1"


def test_unknown_plugin_is_refused_before_any_jvm() -> None:
    with pytest.raises(FetchError, match=r"unknown Connect plugin 'mysql' \(known: debezium"):
        ConnectWorker("127.0.0.1:9", plugins=("mysql",))


def test_connect_bundle_pins_one_consistent_version() -> None:
    versions = {dependency.rsplit(":", 1)[1] for dependency in connect_bundle().dependencies}
    assert len(versions) == 2  # Connect's version, and log4j's for the slf4j binding
    plugin = find_plugin("debezium-postgres").bundle()
    assert "org.apache.kafka" in plugin.exclude_groups
    assert plugin.libs.parent.name == "plugins"  # plugin.path holds the plugin's directory


def test_client_reports_an_unreachable_worker() -> None:
    with pytest.raises(ConnectError, match=r"no answer from http://127\.0\.0\.1:9"):
        ConnectClient("http://127.0.0.1:9", timeout=2).connectors()


# --- real components ----------------------------------------------------------------------


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _consume(bootstrap: str, topic: str, expected: int, timeout: float = 60.0) -> list[Any]:
    """(key, value) of `topic`'s records, JSON-decoded (None for a tombstone), read by a fresh
    group until `expected` arrived, then 1 s more for any that must not be there."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": _name("check"),
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    records: list[Any] = []
    stop_at = time.monotonic() + timeout
    settling = False
    try:
        while time.monotonic() < stop_at:
            message = consumer.poll(0.2)
            if message is None or message.error() is not None:
                continue
            key, value = message.key(), message.value()
            records.append(
                (
                    None if key is None else json.loads(key),
                    None if value is None else json.loads(value),
                )
            )
            if len(records) >= expected and not settling:
                settling, stop_at = True, time.monotonic() + 1.0
    finally:
        consumer.close()
    return records


@pytest.fixture
def connectors(connect_worker: ConnectWorker) -> Iterator[list[str]]:
    """Names of connectors the test creates; deleted afterwards so the shared worker stays
    empty."""
    names: list[str] = []
    yield names
    for name in names:
        connect_worker.client.delete_connector(name)


@pytest.mark.broker
def test_file_source_to_topic_to_file_sink(
    connect_worker: ConnectWorker, connectors: list[str], tmp_path: Path
) -> None:
    client = connect_worker.client
    source_file, sink_file = tmp_path / "in.txt", tmp_path / "out.txt"
    first = [f"line {i} of the file" for i in range(100)]
    source_file.write_text("".join(f"{line}\n" for line in first), encoding="utf-8")
    topic, source, sink = _name("lines"), _name("file-source"), _name("file-sink")
    connectors += [source, sink]
    client.put_connector(
        source,
        {
            "connector.class": FILE_SOURCE,
            "tasks.max": "1",
            "file": str(source_file),
            "topic": topic,
            "value.converter": STRING_CONVERTER,
            **TOPIC_CREATION,
        },
    )
    client.wait_running(source)
    client.put_connector(
        sink,
        {
            "connector.class": FILE_SINK,
            "tasks.max": "1",
            "file": str(sink_file),
            "topics": topic,
            "value.converter": STRING_CONVERTER,
        },
    )
    client.wait_running(sink)
    # Lines appended while the source runs are picked up where it left off.
    later = [f"appended line {i}" for i in range(50)]
    with source_file.open("a", encoding="utf-8") as handle:
        handle.writelines(f"{line}\n" for line in later)
    expected = first + later
    deadline = time.monotonic() + 60
    lines: list[str] = []
    while time.monotonic() < deadline:
        lines = sink_file.read_text(encoding="utf-8").splitlines() if sink_file.exists() else []
        if len(lines) >= len(expected):
            break
        time.sleep(0.2)
    assert lines == expected
    # Exactly once on the topic too: no line was produced twice.
    consumer = Consumer(
        {"bootstrap.servers": connect_worker.bootstrap_servers, "group.id": _name("count")}
    )
    try:
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
    finally:
        consumer.close()
    assert high - low == len(expected)


@pytest.mark.broker
def test_debezium_postgres_captures_inserts_updates_and_deletes(
    connect_worker: ConnectWorker, connectors: list[str], local_postgres: LocalPostgres
) -> None:
    pg = local_postgres
    table = f"customers_{uuid.uuid4().hex[:8]}"
    # FULL: updates and deletes carry the whole old row in `before`, not only the key.
    pg.execute(
        f"CREATE TABLE {table} (id int PRIMARY KEY, name text NOT NULL);"
        f"ALTER TABLE {table} REPLICA IDENTITY FULL;"
        f"INSERT INTO {table} VALUES (1, 'ada');"
    )
    prefix, name = _name("pg"), _name("debezium")
    connectors.append(name)
    slot = name.replace("-", "_")
    connect_worker.client.put_connector(
        name,
        {
            "connector.class": DEBEZIUM_POSTGRES,
            "tasks.max": "1",
            "plugin.name": "pgoutput",
            "database.hostname": pg.host,
            "database.port": str(pg.port),
            "database.user": pg.user,
            "database.dbname": pg.database,
            "topic.prefix": prefix,
            "table.include.list": f"public.{table}",
            "slot.name": slot,
            "slot.drop.on.stop": "true",
            "publication.name": f"{slot}_pub",
            "publication.autocreate.mode": "filtered",
            **TOPIC_CREATION,
        },
    )
    connect_worker.client.wait_running(name)
    topic = f"{prefix}.public.{table}"
    # The snapshot's read event shows the slot exists: changes from now on are streamed.
    [(key, snapshot)] = _consume(connect_worker.bootstrap_servers, topic, 1)
    assert key == {"id": 1}
    assert snapshot["op"] == "r" and snapshot["after"] == {"id": 1, "name": "ada"}
    pg.execute(
        f"INSERT INTO {table} VALUES (2, 'grace');"
        f"UPDATE {table} SET name = 'grace hopper' WHERE id = 2;"
        f"DELETE FROM {table} WHERE id = 2;"
    )
    records = _consume(connect_worker.bootstrap_servers, topic, 5)
    changes = [
        (key, value and value["op"], value and value["before"], value and value["after"])
        for key, value in records[1:]
    ]
    assert changes == [
        ({"id": 2}, "c", None, {"id": 2, "name": "grace"}),
        ({"id": 2}, "u", {"id": 2, "name": "grace"}, {"id": 2, "name": "grace hopper"}),
        ({"id": 2}, "d", {"id": 2, "name": "grace hopper"}, None),
        ({"id": 2}, None, None, None),  # the tombstone: compaction may drop the key
    ]


@pytest.mark.broker
def test_a_connector_missing_from_the_plugin_path_is_a_clear_error(
    connect_worker: ConnectWorker,
) -> None:
    with pytest.raises(ConnectError, match="MySqlConnector") as caught:
        connect_worker.client.put_connector(
            _name("mysql"),
            {"connector.class": "io.debezium.connector.mysql.MySqlConnector", "tasks.max": "1"},
        )
    assert caught.value.status == 400
    assert "Failed to find any class that implements Connector" in str(caught.value)


def test_postgres_binaries_are_found() -> None:
    bindir = find_bindir()
    assert (bindir / "initdb").is_file() and (bindir / "postgres").is_file()


@pytest.fixture(scope="module")
def second_kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalKafka]:
    """A second single-node cluster, the target of MirrorMaker (the session broker is A)."""
    broker = LocalKafka(data_dir=tmp_path_factory.mktemp("kafka-b"))
    try:
        broker.start()
        yield broker
    finally:
        broker.kill()  # thrown away: no need for a clean shutdown


def _committed(admin: AdminClient, group: str, topic: str) -> int | None:
    """`group`'s committed offset of `topic` partition 0, None if it has none."""
    request = ConsumerGroupTopicPartitions(group, [TopicPartition(topic, 0)])
    try:
        result = admin.list_consumer_group_offsets([request])[group].result(timeout=10)
    except KafkaException:
        return None
    [partition] = result.topic_partitions
    return None if partition.offset < 0 else int(partition.offset)


@pytest.mark.broker
def test_mirror_maker_replicates_a_topic_its_config_and_a_groups_offsets(
    kafka_bootstrap: str, second_kafka: LocalKafka, tmp_path: Path
) -> None:
    source = AdminClient({"bootstrap.servers": kafka_bootstrap})
    target = AdminClient({"bootstrap.servers": second_kafka.bootstrap_servers})
    topic, group = _name("orders"), _name("billing")
    new = NewTopic(
        topic, num_partitions=1, replication_factor=1, config={"cleanup.policy": "compact"}
    )
    source.create_topics([new])[topic].result(timeout=30)
    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    for i in range(20):
        producer.produce(topic, key=json.dumps(f"k{i}"), value=json.dumps(f"v{i}"))
    assert producer.flush(30) == 0
    # The group has read all 20 records on A and committed, then left: MirrorMaker writes an
    # idle group's translated offsets into the same group on B. (A mid-topic offset may be
    # translated to a smaller one: MirrorMaker keeps only some offset syncs and translates
    # conservatively, so a failed-over consumer re-reads rather than skips.)
    consumer = Consumer(
        {"bootstrap.servers": kafka_bootstrap, "group.id": group, "enable.auto.commit": False}
    )
    consumer.assign([TopicPartition(topic, 0, 0)])
    consumer.commit(offsets=[TopicPartition(topic, 0, 20)], asynchronous=False)
    consumer.close()

    properties = mirror_properties(
        "A", kafka_bootstrap, "B", second_kafka.bootstrap_servers, topics=topic, groups=group
    )
    with MirrorMaker(properties, tmp_path / "mirror", clusters=["B"]) as mirror:
        remote = f"A.{topic}"
        records = _consume(second_kafka.bootstrap_servers, remote, 20, timeout=90)
        assert records == [(f"k{i}", f"v{i}") for i in range(20)]
        deadline = time.monotonic() + 60
        offset = None
        while time.monotonic() < deadline:
            offset = _committed(target, group, remote)
            if offset == 20:
                break
            time.sleep(0.5)
        assert offset == 20, mirror.log_tail()
        resource = ConfigResource(ResourceType.TOPIC, remote)
        configs = target.describe_configs([resource])[resource].result(timeout=10)
        assert configs["cleanup.policy"].value == "compact"


def test_connect_status_without_worker(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("KGEN_CACHE_DIR", str(tmp_path))
    assert connect_cli.cmd_status() == 1
    assert connect_cli.cmd_stop() == 0
    assert "no kgen Connect worker is running" in capsys.readouterr().err


def test_connect_start_needs_a_kafka(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("KGEN_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("KGEN_BOOTSTRAP_SERVERS", raising=False)
    assert connect_cli.cmd_start(None, None) == 1
    assert "no Kafka to run on: start one (`kgen kafka start`)" in capsys.readouterr().err


@pytest.mark.broker
def test_connect_cli_starts_finds_and_stops_a_detached_worker(
    kafka_bootstrap: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # A cache of our own for the run state, with the real cache's jars in it.
    for jars in (connect_bundle().home, find_plugin("debezium-postgres").bundle().home):
        link = tmp_path / jars.relative_to(cache_root())
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(jars)
    monkeypatch.setenv("KGEN_CACHE_DIR", str(tmp_path))
    try:
        assert connect_cli.cmd_start(None, None) == 0
        url = capsys.readouterr().out.strip()
        assert url.startswith("http://127.0.0.1:")
        assert DEBEZIUM_POSTGRES in ConnectClient(url).connector_plugins()
        assert connect_cli.cmd_status() == 0
        assert connect_cli.cmd_start(None, None) == 0  # finds the running one
        assert capsys.readouterr().out.split() == [url, url]
    finally:
        assert connect_cli.cmd_stop() == 0
    assert connect_cli.cmd_status() == 1
    assert not ConnectClient(url, timeout=1).healthy()
