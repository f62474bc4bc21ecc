"""The local multi-node Kafka cluster and broker restarts: unit checks, then real JVMs."""

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaError, Producer

# confluent_kafka.admin re-exports ClusterMetadata and ConfigResource without declaring them,
# which mypy --strict rejects.
from confluent_kafka.admin import (  # type: ignore[attr-defined]
    AdminClient,
    ClusterMetadata,
    ConfigResource,
)
from confluent_kafka.cimpl import NewTopic

from kgen.kafka import KAFKA_VERSION, LocalKafka, LocalKafkaCluster, LocalKafkaError, fetch
from kgen.kafka.cli import cmd_start
from kgen.kafka.config import cluster_node_properties
from kgen.kafka.net import port_free
from kgen.kafka.runstate import RunState, read_state, state_file

ROOT = Path(__file__).resolve().parent.parent

pytest_plugins = ["pytester"]

# --- unit checks: no JVM ------------------------------------------------------------------


def _properties(text: str) -> dict[str, str]:
    return dict(
        line.split("=", 1) for line in text.splitlines() if line and not line.startswith("#")
    )


def test_cluster_node_properties(tmp_path: Path) -> None:
    ports = {1: (19092, 19093), 2: (19094, 19095), 3: (19096, 19097)}
    props = _properties(
        cluster_node_properties(2, ports, tmp_path / "kraft", {"log.retention.ms": "60000"})
    )
    assert props["node.id"] == "2"
    assert props["process.roles"] == "broker,controller"
    assert props["controller.quorum.voters"] == (
        "1@127.0.0.1:19093,2@127.0.0.1:19095,3@127.0.0.1:19097"
    )
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:19094,CONTROLLER://127.0.0.1:19095"
    assert props["log.dirs"] == str(tmp_path / "kraft")
    for key, value in {
        "default.replication.factor": "3",
        "min.insync.replicas": "2",
        "offsets.topic.replication.factor": "3",
        "transaction.state.log.replication.factor": "3",
        "transaction.state.log.min.isr": "2",
        "auto.create.topics.enable": "false",
        "log.retention.ms": "60000",
    }.items():
        assert props[key] == value, key


def test_smaller_clusters_replicate_to_every_node(tmp_path: Path) -> None:
    props = _properties(cluster_node_properties(1, {1: (1, 2), 2: (3, 4)}, tmp_path))
    assert (props["default.replication.factor"], props["min.insync.replicas"]) == ("2", "1")
    with pytest.raises(ValueError, match="at least one broker"):
        LocalKafkaCluster(brokers=0)
    with pytest.raises(LocalKafkaError, match=r"no node 4: the nodes are 1\.\.3"):
        LocalKafkaCluster(brokers=3).stop_node(4)


def test_run_state_of_an_older_kgen_is_a_single_broker(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("KGEN_CACHE_DIR", str(tmp_path))
    state_file().parent.mkdir(parents=True)
    state_file().write_text(
        '{"pid": 7, "port": 9092, "bootstrap_servers": "127.0.0.1:9092", '
        '"data_dir": "/d", "kafka_version": "4.4.0"}'
    )
    state = read_state()
    assert state == RunState(7, 9092, "127.0.0.1:9092", "/d", "4.4.0")
    assert state is not None and (state.brokers, state.node_pids) == (1, (7,))


def test_cli_cluster_takes_no_port(capsys: pytest.CaptureFixture[str]) -> None:
    assert cmd_start(9092, brokers=3) == 1
    assert "--port is for a single broker" in capsys.readouterr().err


def test_plugin_fixtures_bring_their_own_broker(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    # Stand-ins for the real fixtures: this checks the wiring, not the brokers.
    pytester.makeconftest(
        """
        import pytest

        @pytest.fixture
        def kafka_cluster():
            return "cluster"
        """
    )
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.broker
        def test_marked_with_own_broker(kafka_cluster, request):
            # A broker-marked test with a broker of its own does not start the session's.
            assert "kafka_bootstrap" not in request.fixturenames
        """
    )
    result = pytester.runpytest("-p", "kgen.pytest_plugin", "--strict-markers")
    result.assert_outcomes(passed=1)
    listed = pytester.runpytest("-p", "kgen.pytest_plugin", "--fixtures")
    # Each on its own: the listing's order is pytest's, not the plugin's.
    for line in ("kafka_bootstrap ?session scope? -- *", "restartable_kafka -- *"):
        listed.stdout.fnmatch_lines([line])


# --- a real 3-node cluster ----------------------------------------------------------------


def _create_topic(bootstrap: str, partitions: int = 1) -> str:
    """A new topic with the cluster's default replication factor; returns once every node
    knows it."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    name = f"t-{uuid.uuid4().hex[:8]}"
    admin.create_topics([NewTopic(name, num_partitions=partitions)])[name].result(timeout=30)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        topic = admin.list_topics(topic=name, timeout=10).topics.get(name)
        if topic is not None and topic.error is None and len(topic.partitions) == partitions:
            return name
        time.sleep(0.2)
    raise AssertionError(f"topic {name} did not appear in the metadata")


def _consume(bootstrap: str, topic: str, expected: int) -> list[bytes]:
    """Values a fresh group reads with read_committed; polls 1 s more once `expected` arrived
    so that records which must not be there get the chance to show up."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"g-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
        }
    )
    consumer.subscribe([topic])
    values: list[bytes] = []
    stop_at = time.monotonic() + 60
    settling = False
    try:
        while time.monotonic() < stop_at:
            message = consumer.poll(0.5)
            if message is None:
                continue
            error = message.error()
            if error is not None:
                assert not error.fatal(), error
                continue
            values.append(message.value() or b"")
            if len(values) >= expected and not settling:
                settling, stop_at = True, time.monotonic() + 1
    finally:
        consumer.close()
    return values


def _produce_transaction(producer: Producer, topic: str, values: list[bytes]) -> None:
    producer.begin_transaction()
    for value in values:
        producer.produce(topic, value=value)
    producer.commit_transaction(60)


def _metadata(bootstrap: str, topic: str | None = None) -> ClusterMetadata:
    return AdminClient({"bootstrap.servers": bootstrap}).list_topics(topic=topic, timeout=10)


@pytest.mark.broker
def test_cluster_keeps_transactions_going_with_a_node_down(
    kafka_cluster: LocalKafkaCluster,
) -> None:
    bootstrap = kafka_cluster.bootstrap_servers
    assert bootstrap == ",".join(f"127.0.0.1:{kafka_cluster.port(n)}" for n in (1, 2, 3))
    metadata = _metadata(bootstrap)
    assert sorted(metadata.brokers) == [1, 2, 3]
    # Created by start(): with a node down they could not be created with 3 replicas.
    for internal in ("__consumer_offsets", "__transaction_state"):
        assert sorted(metadata.topics[internal].partitions[0].replicas) == [1, 2, 3]
    topic = _create_topic(bootstrap)
    partition = _metadata(bootstrap, topic).topics[topic].partitions[0]
    assert sorted(partition.replicas) == sorted(partition.isrs) == [1, 2, 3]
    resource = ConfigResource(ConfigResource.Type.TOPIC, topic)
    admin = AdminClient({"bootstrap.servers": bootstrap})
    configs = admin.describe_configs([resource])[resource].result(timeout=30)
    assert configs["min.insync.replicas"].value == "2"

    producer = Producer(
        {"bootstrap.servers": bootstrap, "transactional.id": f"tx-{uuid.uuid4().hex[:8]}"}
    )
    producer.init_transactions(60)
    before = [f"before-{i}".encode() for i in range(5)]
    _produce_transaction(producer, topic, before)
    assert _consume(bootstrap, topic, 5) == before

    # Stop the partition's leader: leadership moves, the ISR shrinks to 2 = min ISR.
    leader = partition.leader
    kafka_cluster.stop_node(leader)
    assert not kafka_cluster.is_running(leader)
    assert kafka_cluster.running_nodes() == [n for n in (1, 2, 3) if n != leader]
    during = [f"during-{i}".encode() for i in range(5)]
    _produce_transaction(producer, topic, during)
    assert _consume(bootstrap, topic, 10) == before + during
    partition = _metadata(bootstrap, topic).topics[topic].partitions[0]
    assert partition.leader != leader
    assert leader not in partition.isrs and len(partition.isrs) == 2

    # The node comes back on its old port with its data and catches up.
    kafka_cluster.start_node(leader)
    kafka_cluster.wait_healthy(timeout=60)
    partition = _metadata(bootstrap, topic).topics[topic].partitions[0]
    assert sorted(partition.isrs) == [1, 2, 3]
    assert _metadata(bootstrap).brokers[leader].port == kafka_cluster.port(leader)
    producer.flush(10)


@pytest.mark.broker
def test_killed_node_rejoins(kafka_cluster: LocalKafkaCluster) -> None:
    bootstrap = kafka_cluster.bootstrap_servers
    topic = _create_topic(bootstrap, partitions=3)
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})
    errors: list[KafkaError] = []

    def produce(prefix: str) -> None:
        for i in range(10):
            producer.produce(
                topic,
                value=f"{prefix}-{i}".encode(),
                on_delivery=lambda err, _msg: errors.append(err) if err else None,
            )
        assert producer.flush(60) == 0

    produce("before")
    kafka_cluster.kill_node(3)  # no clean shutdown: the cluster notices by its session timeout
    assert kafka_cluster.pid(3) is None
    produce("during")
    kafka_cluster.start_node(3)
    kafka_cluster.wait_healthy(timeout=60)
    assert errors == []
    assert sorted(_consume(bootstrap, topic, 20)) == sorted(
        f"{prefix}-{i}".encode() for prefix in ("before", "during") for i in range(10)
    )


@pytest.mark.broker
def test_restart_node_waits_until_in_sync(kafka_cluster: LocalKafkaCluster) -> None:
    bootstrap = kafka_cluster.bootstrap_servers
    topic = _create_topic(bootstrap)
    port = kafka_cluster.port(2)
    kafka_cluster.restart_node(2)
    assert kafka_cluster.port(2) == port
    partition = _metadata(bootstrap, topic).topics[topic].partitions[0]
    assert sorted(partition.isrs) == [1, 2, 3]


@pytest.mark.broker
def test_leaves_a_node_down(kafka_cluster: LocalKafkaCluster) -> None:
    kafka_cluster.kill_node(1)
    assert kafka_cluster.running_nodes() == [2, 3]


@pytest.mark.broker
def test_fixture_starts_nodes_an_earlier_test_left_down(kafka_cluster: LocalKafkaCluster) -> None:
    assert kafka_cluster.running_nodes() == [1, 2, 3]
    assert sorted(_metadata(kafka_cluster.bootstrap_servers).brokers) == [1, 2, 3]


# --- a single broker restarted ------------------------------------------------------------


@pytest.mark.broker
def test_restartable_kafka_comes_back_on_its_port(restartable_kafka: LocalKafka) -> None:
    bootstrap = restartable_kafka.bootstrap_servers
    port = restartable_kafka.port
    admin = AdminClient({"bootstrap.servers": bootstrap})
    name = f"kept-{uuid.uuid4().hex[:8]}"
    admin.create_topics([NewTopic(name, num_partitions=1, replication_factor=1)])[name].result(
        timeout=30
    )
    restartable_kafka.stop()
    assert not restartable_kafka.is_running()
    assert port_free(port)
    assert restartable_kafka.start() == bootstrap
    assert name in _metadata(bootstrap).topics

    pid = restartable_kafka.pid
    assert restartable_kafka.restart() == bootstrap
    assert restartable_kafka.pid not in (None, pid)
    assert name in _metadata(bootstrap).topics


# --- the CLI ------------------------------------------------------------------------------


def _kgen(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`python -m kgen ARGS` in a fresh interpreter, as a user would run it."""
    return subprocess.run(
        [sys.executable, "-m", "kgen", *args],
        env=env,
        capture_output=True,  # also proves the detached JVMs do not hold our pipes open
        text=True,
        timeout=240,
        check=False,
    )


def _private_cache(tmp_path: Path) -> dict[str, str]:
    """A private run dir, but the shared jar cache (no second Maven run)."""
    (tmp_path / "kafka").mkdir()
    (tmp_path / "kafka" / KAFKA_VERSION).symlink_to(fetch().parent)
    env = {**os.environ, "KGEN_CACHE_DIR": str(tmp_path), "PYTHONPATH": str(ROOT)}
    env.pop("KGEN_BOOTSTRAP_SERVERS", None)
    return env


@pytest.mark.broker
def test_cli_starts_status_and_stops_a_cluster(tmp_path: Path) -> None:
    env = _private_cache(tmp_path)
    try:
        started = _kgen("kafka", "start", "--brokers", "3", env=env)
        assert started.returncode == 0, started.stderr
        bootstrap = started.stdout.strip()
        servers = bootstrap.split(",")
        assert len(servers) == 3 and all(s.startswith("127.0.0.1:") for s in servers)
        assert f"export KGEN_BOOTSTRAP_SERVERS={bootstrap}" in started.stderr
        single = _kgen("kafka", "start", env=env)  # a cluster runs: say so, do not start another
        assert (single.returncode, single.stdout.strip()) == (0, bootstrap)
        assert "the 3-node Kafka cluster is already running" in single.stderr
        status = _kgen("kafka", "status", env=env)
        assert (status.returncode, status.stdout.strip()) == (0, bootstrap)
        assert sorted(_metadata(bootstrap).brokers) == [1, 2, 3]
    finally:
        stopped = _kgen("kafka", "stop", env=env)
        assert stopped.returncode == 0, stopped.stderr
    assert "stopped the 3-node Kafka cluster" in stopped.stderr
    status = _kgen("kafka", "status", env=env)
    assert status.returncode == 1
    assert all(port_free(int(server.rsplit(":", 1)[1])) for server in servers)
