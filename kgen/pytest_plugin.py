"""pytest plugin: real Kafka for tests. `kafka_bootstrap` is a session-wide broker's address;
`kafka_cluster` a 3-node cluster and `restartable_kafka` a broker of its own, both for tests
that stop, kill and restart brokers; `secure_kafka` a session-wide secured broker (TLS,
SASL/SCRAM, ACLs); `connect_worker` a session-wide Kafka Connect worker on the session broker
(with the Debezium PostgreSQL plugin) and `local_postgres` a session-wide PostgreSQL server
ready for logical decoding.

Auto-loaded wherever kgen is installed, so importing it does no work: the broker code is
imported, fetched and started only when a test asks for a fixture.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from kgen.kafka import LocalKafka, LocalKafkaCluster
    from kgen.kafka.connect import ConnectWorker
    from kgen.postgres import LocalPostgres

_BOOTSTRAP_ENV = "KGEN_BOOTSTRAP_SERVERS"  # == kgen.kafka.BOOTSTRAP_ENV; not imported, see above
_FIXTURE = "kafka_bootstrap"
# Fixtures that start brokers of their own: a `broker`-marked test using one does not also
# need the session broker.
_OWN_BROKER_FIXTURES = frozenset({"kafka_cluster", "restartable_kafka", "secure_kafka"})


def pytest_configure(config: pytest.Config) -> None:
    """Register the `broker` marker so projects using the plugin need no config for it."""
    config.addinivalue_line(
        "markers", "broker: needs a real Kafka broker (started by the kgen pytest plugin)"
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Give every `broker`-marked test the broker, even one that only reads the env variable."""
    for item in items:
        if item.get_closest_marker("broker") is None:
            continue
        names = getattr(item, "fixturenames", None)
        if isinstance(names, list) and _FIXTURE not in names:
            if not _OWN_BROKER_FIXTURES.intersection(names):
                names.append(_FIXTURE)


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Bootstrap servers of a real broker: `$KGEN_BOOTSTRAP_SERVERS`, else one started here.

    A broker started here lives for the whole session (data in pytest's tmp dir) and its
    address is exported in `KGEN_BOOTSTRAP_SERVERS` so subprocesses of the tests find it.
    """
    existing = os.environ.get(_BOOTSTRAP_ENV)
    if existing:
        yield existing
        return
    from kgen.kafka import LocalKafka  # deferred: the plugin import must stay cheap

    broker = LocalKafka(data_dir=tmp_path_factory.mktemp("kafka"))
    bootstrap = broker.start()
    os.environ[_BOOTSTRAP_ENV] = bootstrap
    try:
        yield bootstrap
    finally:
        os.environ.pop(_BOOTSTRAP_ENV, None)
        broker.stop()


@pytest.fixture(scope="module")
def _kgen_kafka_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalKafkaCluster]:
    """One 3-node cluster per test module (starting one takes seconds)."""
    from kgen.kafka import LocalKafkaCluster

    cluster = LocalKafkaCluster(brokers=3, data_dir=tmp_path_factory.mktemp("kafka-cluster"))
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.kill()  # its data is thrown away: no need for clean shutdowns


@pytest.fixture
def kafka_cluster(_kgen_kafka_cluster: LocalKafkaCluster) -> LocalKafkaCluster:
    """A real 3-node KRaft cluster on loopback (replication factor 3, min ISR 2), shared by the
    tests of a module. Each test gets it with every node running and every partition in sync:
    nodes an earlier test stopped or killed are started again first. Start nodes from the
    test's thread: a JVM dies with the thread that started it."""
    cluster = _kgen_kafka_cluster
    for node_id in cluster.node_ids:
        if not cluster.is_running(node_id):
            cluster.start_node(node_id)
    cluster.wait_healthy()
    return cluster


@pytest.fixture
def restartable_kafka(tmp_path: Path) -> Iterator[LocalKafka]:
    """A real single-node broker of the test's own (not the session's), started: the test may
    `stop()` and `start()` it (same port, same topics), `restart()` or `kill()` it, from the
    test's thread (a JVM dies with the thread that started it)."""
    from kgen.kafka import LocalKafka

    broker = LocalKafka(data_dir=tmp_path / "kafka")
    try:
        broker.start()
        yield broker
    finally:
        broker.stop()


@pytest.fixture(scope="session")
def secure_kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalKafka]:
    """A real secured broker for the session: clients connect over SASL_SSL (SCRAM-SHA-512,
    a CA made for it: `client_config()`), and nothing is allowed without an ACL but to the
    super user `admin`. `add_user(name, password)` creates a principal `User:name`."""
    from kgen.kafka import LocalKafka

    broker = LocalKafka(data_dir=tmp_path_factory.mktemp("kafka-secure"), secure=True)
    try:
        broker.start()
        yield broker
    finally:
        broker.kill()  # its data is thrown away: no need for a clean shutdown


@pytest.fixture(scope="session")
def connect_worker(
    kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ConnectWorker]:
    """A real Kafka Connect worker (distributed mode) on the session broker, shared by the
    session: `.url` is its REST API, `.bootstrap_servers` its cluster, `.client` a REST
    client. It has Connect's file and MirrorMaker connectors and Debezium's PostgreSQL one.
    Its group and internal topics are named for this session; tests name their connectors
    and topics uniquely and delete the connectors they create."""
    from kgen.kafka.connect import ConnectWorker

    worker = ConnectWorker(
        kafka_bootstrap,
        work_dir=tmp_path_factory.mktemp("connect"),
        group_id=f"kgen-connect-{uuid.uuid4().hex[:8]}",
    )
    try:
        worker.start()
        yield worker
    finally:
        worker.stop()


@pytest.fixture(scope="session")
def local_postgres() -> Iterator[LocalPostgres]:
    """A real PostgreSQL server for the session on 127.0.0.1 (trust auth, `wal_level=logical`):
    `.dsn`, `.host`, `.port`, `.user`, `.database`, and `.execute(sql)` through psql."""
    from kgen.postgres import LocalPostgres

    server = LocalPostgres()
    try:
        server.start()
        yield server
    finally:
        server.stop()
