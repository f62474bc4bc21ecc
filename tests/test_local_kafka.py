"""The local Kafka broker: fast unit checks, then real-broker tests (`-m broker`)."""

import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaError, Producer
from confluent_kafka.admin import AdminClient

# confluent_kafka.admin re-exports NewTopic without declaring it, which mypy --strict rejects.
from confluent_kafka.cimpl import NewTopic

from kgen import topics
from kgen.kafka import (
    KAFKA_VERSION,
    FetchError,
    LocalKafka,
    ToolMissingError,
    fetch,
    kafka_home,
)
from kgen.kafka import broker as broker_module
from kgen.kafka.cli import cmd_status, cmd_stop
from kgen.kafka.config import new_cluster_id, server_properties
from kgen.kafka.fetch import MARKER_NAME
from kgen.kafka.net import free_ports

pytest_plugins = ["pytester"]

# --- unit checks: no JVM ------------------------------------------------------------------


def test_cache_dir_follows_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("KGEN_CACHE_DIR", str(tmp_path))
    assert kafka_home() == tmp_path / "kafka" / KAFKA_VERSION


def test_cluster_id_is_kafka_shaped() -> None:
    for _ in range(200):
        cluster_id = new_cluster_id()
        assert len(cluster_id) == 22
        assert not cluster_id.startswith("-")


def test_server_properties_are_single_node_loopback(tmp_path: Path) -> None:
    props = dict(
        line.split("=", 1)
        for line in server_properties(19092, 19093, tmp_path / "kraft").splitlines()
        if line and not line.startswith("#")
    )
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093"
    assert props["process.roles"] == "broker,controller"
    assert props["log.dirs"] == str(tmp_path / "kraft")
    assert props["auto.create.topics.enable"] == "false"
    assert props["transaction.state.log.min.isr"] == "1"
    assert "transaction.remove.expired.transaction.cleanup.interval.ms" not in props


def test_fetch_without_maven_says_so(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("KGEN_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(ToolMissingError, match="mvn not found"):
        fetch()


def test_fetch_reports_maven_failure(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake_mvn = bin_dir / "mvn"
    fake_mvn.write_text(
        "#!/bin/sh\necho '[ERROR] Failed to execute goal: could not resolve'\nexit 1\n"
    )
    fake_mvn.chmod(0o755)
    monkeypatch.setenv("KGEN_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    with pytest.raises(FetchError, match=r"\[ERROR\] Failed to execute goal"):
        fetch()
    assert not (kafka_home() / MARKER_NAME).exists()


def test_fetch_is_a_no_op_once_complete(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("KGEN_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))  # no mvn, no java: they must not be needed
    kafka_home().mkdir(parents=True)
    (kafka_home() / MARKER_NAME).write_text("{}")
    assert fetch() == kafka_home() / "libs"


def test_status_without_broker(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("KGEN_CACHE_DIR", str(tmp_path))
    assert cmd_status() == 1
    assert cmd_stop() == 0
    assert "no kgen Kafka broker is running" in capsys.readouterr().err


def test_plugin_prefers_preset_bootstrap(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KGEN_BOOTSTRAP_SERVERS", "127.0.0.1:1")
    # Load the plugin explicitly and only once, installed (entry point) or not.
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    pytester.makepyfile(
        """
        import os
        import pytest

        def test_fixture(kafka_bootstrap):
            assert kafka_bootstrap == "127.0.0.1:1"

        @pytest.mark.broker
        def test_marked_gets_the_broker_without_asking(request):
            assert "kafka_bootstrap" in request.fixturenames
            assert os.environ["KGEN_BOOTSTRAP_SERVERS"] == "127.0.0.1:1"
        """
    )
    result = pytester.runpytest("-p", "kgen.pytest_plugin", "--strict-markers")
    result.assert_outcomes(passed=2)


# --- real broker --------------------------------------------------------------------------


def _topic(admin: AdminClient, prefix: str) -> str:
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    futures = admin.create_topics([NewTopic(name, num_partitions=1, replication_factor=1)])
    futures[name].result(timeout=30)
    return name


def _consume(bootstrap: str, topic: str, expected: int, isolation: str) -> list[bytes]:
    """Values read from `topic` by a fresh group: once `expected` arrived, poll 2 s more
    so that records which must not be seen get the chance to show up."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"g-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "isolation.level": isolation,
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
                settling, stop_at = True, time.monotonic() + 2
    finally:
        consumer.close()
    return values


@pytest.mark.broker
def test_produce_and_consume(kafka_bootstrap: str) -> None:
    assert os.environ["KGEN_BOOTSTRAP_SERVERS"] == kafka_bootstrap
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    topic = _topic(admin, "plain")
    assert topic in admin.list_topics(timeout=10).topics
    producer = Producer({"bootstrap.servers": kafka_bootstrap, "enable.idempotence": True})
    for i in range(10):
        producer.produce(topic, key=f"k{i}".encode(), value=f"v{i}".encode())
    assert producer.flush(30) == 0
    assert _consume(kafka_bootstrap, topic, 10, "read_uncommitted") == [
        f"v{i}".encode() for i in range(10)
    ]


@pytest.mark.broker
def test_auto_create_is_off(kafka_bootstrap: str) -> None:
    topic = f"undeclared-{uuid.uuid4().hex[:8]}"
    producer = Producer({"bootstrap.servers": kafka_bootstrap, "message.timeout.ms": 3000})
    errors: list[KafkaError | None] = []
    producer.produce(topic, value=b"x", on_delivery=lambda err, _msg: errors.append(err))
    producer.flush(10)
    assert len(errors) == 1 and errors[0] is not None
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    assert topic not in admin.list_topics(timeout=10).topics


@pytest.mark.broker
def test_topics_made_for_tests_keep_records_from_long_ago(kafka_bootstrap: str) -> None:
    """The broker checks time retention every second; the topics kgen's helpers create keep
    records stamped at the epoch's start (the samples' and the specs' test timestamps)."""
    suffix = uuid.uuid4().hex[:8]
    kept, aged = f"kept-{suffix}", f"aged-{suffix}"
    topics.create_topics(kafka_bootstrap, {kept: 1})
    topics.create_topics(kafka_bootstrap, {aged: 1}, config={"retention.ms": "604800000"})
    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    for topic in (kept, aged):
        producer.produce(topic, value=b"old", timestamp=1_000)
    assert producer.flush(10) == 0
    # The aged topic shows retention at work: its record goes within a few checks.
    deadline = time.monotonic() + 30
    while topics.read_committed(kafka_bootstrap, aged) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert topics.read_committed(kafka_bootstrap, aged) == []
    assert [r.value for r in topics.read_committed(kafka_bootstrap, kept)] == [b"old"]


@pytest.mark.broker
def test_read_committed_sees_only_committed(kafka_bootstrap: str) -> None:
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    topic = _topic(admin, "txn")
    producer = Producer(
        {"bootstrap.servers": kafka_bootstrap, "transactional.id": f"t-{uuid.uuid4().hex[:8]}"}
    )
    producer.init_transactions(30)
    producer.begin_transaction()
    for i in range(3):
        producer.produce(topic, value=f"committed-{i}".encode())
    producer.commit_transaction(30)
    producer.begin_transaction()
    for i in range(3):
        producer.produce(topic, value=f"aborted-{i}".encode())
    producer.flush(30)  # the aborted records really reach the log before the abort marker
    producer.abort_transaction(30)
    producer.begin_transaction()
    producer.produce(topic, value=b"committed-last")
    producer.commit_transaction(30)

    assert _consume(kafka_bootstrap, topic, 4, "read_committed") == [
        b"committed-0",
        b"committed-1",
        b"committed-2",
        b"committed-last",
    ]
    # The aborted records are in the log; only the isolation level hides them.
    everything = _consume(kafka_bootstrap, topic, 7, "read_uncommitted")
    assert sum(1 for value in everything if value.startswith(b"aborted")) == 3


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # As a restarted broker would bind: TIME_WAIT leftovers must not block it.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


@pytest.mark.broker
def test_start_stop_frees_port_and_keeps_data(tmp_path: Path) -> None:
    data_dir = tmp_path / "broker"
    with LocalKafka(data_dir=data_dir) as kafka:
        port = kafka.port
        assert kafka.bootstrap_servers == f"127.0.0.1:{port}"
        assert not _port_free(port)
        admin = AdminClient({"bootstrap.servers": kafka.bootstrap_servers})
        topic = _topic(admin, "kept")
    assert not kafka.is_running()
    assert _port_free(port)
    assert "Kafka Server started" in kafka.server_log.read_text()

    # Same data dir, same port: the storage is reused and the topic is still there.
    restarted = LocalKafka(data_dir=data_dir, port=port)
    try:
        assert restarted.start() == f"127.0.0.1:{port}"
        admin = AdminClient({"bootstrap.servers": restarted.bootstrap_servers})
        assert topic in admin.list_topics(timeout=10).topics
    finally:
        restarted.stop()
    assert _port_free(port)


@pytest.mark.broker
def test_start_retries_when_a_picked_port_gets_taken(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        picks: list[int] = []

        def first_pick_is_taken(count: int) -> list[int]:
            ports = free_ports(count)
            picks.append(count)
            return [taken, *ports[1:]] if len(picks) == 1 else ports

        monkeypatch.setattr(broker_module, "free_ports", first_pick_is_taken)
        with LocalKafka() as kafka:
            assert kafka.port != taken
            assert len(picks) == 2


@pytest.mark.broker
def test_temporary_data_dir_is_removed() -> None:
    kafka = LocalKafka()
    try:
        kafka.start()
        data_dir = kafka.data_dir
        assert (data_dir / "kraft" / "meta.properties").is_file()
    finally:
        kafka.stop()
    assert not data_dir.exists()


def _kgen_kafka(command: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run one `kgen kafka` CLI function in a fresh interpreter, as the real command would."""
    call = "cmd_start(None)" if command == "start" else f"cmd_{command}()"
    code = f"import sys; from kgen.kafka.cli import cmd_{command}; sys.exit({call})"
    # capture_output also proves the detached JVM does not hold the caller's stdout pipe open
    # (`export X=$(kgen kafka start)` would hang otherwise).
    return subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def _kgen(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """`python -m kgen kafka ARGS`, as a user types it."""
    return subprocess.run(
        [sys.executable, "-m", "kgen", "kafka", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


@pytest.mark.broker
def test_cli_broker_outlives_start(tmp_path: Path) -> None:
    # A private run dir, but the shared jar cache (no second Maven run).
    version_dir = fetch().parent
    (tmp_path / "kafka").mkdir()
    (tmp_path / "kafka" / KAFKA_VERSION).symlink_to(version_dir)
    env = {**os.environ, "KGEN_CACHE_DIR": str(tmp_path), "PYTHONPATH": _repo_root()}
    env.pop("KGEN_BOOTSTRAP_SERVERS", None)
    try:
        started = _kgen_kafka("start", env)
        assert started.returncode == 0, started.stderr
        bootstrap = started.stdout.strip()
        assert bootstrap.startswith("127.0.0.1:")
        assert f"export KGEN_BOOTSTRAP_SERVERS={bootstrap}" in started.stderr
        again = _kgen_kafka("start", env)  # already running: same address, no second broker
        assert (again.returncode, again.stdout.strip()) == (0, bootstrap)
        status = _kgen_kafka("status", env)
        assert (status.returncode, status.stdout.strip()) == (0, bootstrap)
        metadata = AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=10)
        assert metadata.brokers
        # A second, named one beside it (to mirror to): its own storage, port and record.
        try:
            backup = _kgen(env, "start", "--cluster", "backup")
            assert backup.returncode == 0, backup.stderr
            second = backup.stdout.strip()
            assert second.startswith("127.0.0.1:") and second != bootstrap
            assert (tmp_path / "kafka" / "run-backup" / "data").is_dir()
            status = _kgen(env, "status", "--cluster", "backup")
            assert (status.returncode, status.stdout.strip()) == (0, second)
            backup_admin = AdminClient({"bootstrap.servers": second})  # alive for the future
            backup_admin.create_topics([NewTopic("only-on-backup", 1, 1)])[
                "only-on-backup"
            ].result()
            topics = AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=10).topics
            assert "only-on-backup" not in topics
        finally:
            stopped = _kgen(env, "stop", "--cluster", "backup")
            assert stopped.returncode == 0, stopped.stderr
        assert _kgen(env, "status", "--cluster", "backup").returncode == 1
        status = _kgen_kafka("status", env)  # the default one is untouched
        assert (status.returncode, status.stdout.strip()) == (0, bootstrap)
        refused = _kgen(env, "start", "--cluster", "Bad Name")
        assert refused.returncode == 1 and "--cluster takes a name" in refused.stderr
    finally:
        stopped = _kgen_kafka("stop", env)
        assert stopped.returncode == 0, stopped.stderr
    status = _kgen_kafka("status", env)
    assert status.returncode == 1
    assert status.stderr.strip() == "no kgen Kafka broker is running"
    assert _port_free(int(bootstrap.rsplit(":", 1)[1]))
    # Started again without --port: the port of the last run, which is free.
    try:
        again = _kgen_kafka("start", env)
        assert (again.returncode, again.stdout.strip()) == (0, bootstrap), again.stderr
    finally:
        stopped = _kgen_kafka("stop", env)
        assert stopped.returncode == 0, stopped.stderr


@pytest.mark.broker
def test_concurrent_fetches_run_maven_once(tmp_path: Path) -> None:
    env = {**os.environ, "KGEN_CACHE_DIR": str(tmp_path), "PYTHONPATH": _repo_root()}
    # fetch() reports progress only when it is the one running Maven.
    code = "from kgen.kafka import fetch; print(fetch(progress=lambda line: print('MAVEN')))"
    runs = [
        subprocess.Popen(
            [sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        for _ in range(2)
    ]
    outputs = [run.communicate(timeout=600) for run in runs]
    assert [run.returncode for run in runs] == [0, 0], outputs
    stdouts = [out.decode().split() for out, _ in outputs]
    libs = tmp_path / "kafka" / KAFKA_VERSION / "libs"
    assert sorted(stdouts) == [[str(libs)], ["MAVEN", str(libs)]]
    assert (libs.parent / MARKER_NAME).is_file()
    assert (libs / f"kafka_2.13-{KAFKA_VERSION}.jar").is_file()
    assert not (libs.parent / "libs.partial").exists()


def _repo_root() -> str:
    return str(Path(__file__).resolve().parent.parent)
