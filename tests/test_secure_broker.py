"""Generated apps against a secured broker (TLS, SASL/SCRAM-SHA-512, ACLs; see
kgen.kafka.security): each runs as a principal holding exactly the ACLs its `acls` command
lists, and its output is exact; without any one of them it stops with one line naming the
missing ACL; a wrong password, an untrusted CA or plaintext against the TLS listener each
end the app at once, saying what to check."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from kgen.kafka import LocalKafka, fetch
from kgen.kafka.security import Security
from tests.conftest import App, BuildApp
from tests.example_apps import ROOT, build_example

pytestmark = pytest.mark.broker

APP_TIMEOUT_S = 60


def stateless_spec(app: str) -> str:
    return f"""
app = "{app}"
guarantee = "exactly_once"

[topics.in-{app}]
key = "string"
value = "string"
partitions = 2

[topics.out-{app}]
key = "string"
value = "string"
partitions = 2

[[streams]]
name = "unknown-payments"
from = "in-{app}"
steps = [{{ filter = "key == 'unknown'" }}, {{ to = "out-{app}" }}]
"""


def env_of(broker: LocalKafka, config: dict[str, str]) -> dict[str, str]:
    """The process environment giving an app (or its acls command) these client settings."""
    names = {
        "security.protocol": "KAFKA_SECURITY_PROTOCOL",
        "sasl.mechanism": "KAFKA_SASL_MECHANISM",
        "sasl.username": "KAFKA_SASL_USERNAME",
        "sasl.password": "KAFKA_SASL_PASSWORD",
        "ssl.ca.location": "KAFKA_SSL_CA_LOCATION",
    }
    env = {k: v for k, v in os.environ.items() if k not in names.values()}
    env.update({names[key]: value for key, value in config.items()})
    env["KAFKA_BOOTSTRAP_SERVERS"] = broker.bootstrap_servers
    env.pop("KGEN_BOOTSTRAP_SERVERS", None)
    return env


# An app's folder and package.
Where = tuple[Path, str]


def app_command(where: Where, *args: str) -> list[str]:
    return [sys.executable, "-m", where[1], *args]


def python_path(app_dir: Path) -> str:
    return os.pathsep.join(map(str, [app_dir, ROOT / "specs"]))


def grant(
    broker: LocalKafka, where: Where, principal: str, *skip: str, options: tuple[str, ...] = ()
) -> list[str]:
    """Create the app's ACLs for `principal` through its `acls --apply` (with `options`, e.g.
    the group protocol), as the admin, but for those whose listed line contains one of `skip`;
    returns the lines of the ACLs granted."""
    app_dir = where[0]
    env = {**env_of(broker, broker.client_config()), "PYTHONPATH": python_path(app_dir)}
    listed = subprocess.run(
        app_command(where, "acls", "--principal", principal, *options),
        cwd=app_dir,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout.splitlines()
    lines = [line for line in listed if line.startswith("ALLOW")]
    if not skip:
        applied = subprocess.run(
            app_command(where, "acls", "--principal", principal, "--apply", *options),
            cwd=app_dir,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert applied.returncode == 0, applied.stdout + applied.stderr
        assert f"created {len(lines)} ACLs" in applied.stdout
        return lines
    from confluent_kafka.admin._acl import AclBinding, AclOperation, AclPermissionType
    from confluent_kafka.admin._resource import ResourcePatternType, ResourceType

    kept = [line for line in lines if not any(s in line for s in skip)]
    assert len(kept) == len(lines) - len(skip), (skip, lines)
    bindings = []
    for line in kept:
        _, who, operation, kind, pattern, name = line.split("  #")[0].split()
        bindings.append(
            AclBinding(
                ResourceType[kind],
                name,
                ResourcePatternType[pattern],
                who,
                "*",
                AclOperation[operation],
                AclPermissionType.ALLOW,
            )
        )
    client = admin(broker)  # alive until the futures are done
    for future in client.create_acls(bindings, request_timeout=30).values():
        future.result()
    return kept


def admin(broker: LocalKafka) -> AdminClient:
    return AdminClient({"bootstrap.servers": broker.bootstrap_servers, **broker.client_config()})


def user(broker: LocalKafka, name: str) -> dict[str, str]:
    password = f"{name}-secret"
    broker.add_user(name, password)
    return broker.client_config(name, password)


def start(
    broker: LocalKafka, where: Where, config: dict[str, str], log: Path, *args: str
) -> subprocess.Popen[bytes]:
    app_dir = where[0]
    return subprocess.Popen(
        app_command(where, "--session-timeout-ms", "6000", *args),
        cwd=app_dir,
        env={**env_of(broker, config), "PYTHONPATH": python_path(app_dir)},
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )


def run_to_exit(
    broker: LocalKafka, where: Where, config: dict[str, str], log: Path, *args: str
) -> int:
    app = start(broker, where, config, log, "--max-unavailable-s", "20", *args)
    try:
        return app.wait(APP_TIMEOUT_S)
    finally:
        if app.poll() is None:
            app.kill()
            app.wait()


def create_topics(
    broker: LocalKafka, names: list[str], config: dict[str, str] | None = None, partitions: int = 2
) -> None:
    if not names:
        return
    client = admin(broker)  # alive until the futures are done
    futures = client.create_topics(
        [NewTopic(name, partitions, 1, config=config or {}) for name in names],
        operation_timeout=30,
    )
    for future in futures.values():
        future.result()


def produce(broker: LocalKafka, topic: str, records: list[tuple[str, str]]) -> None:
    producer = Producer({"bootstrap.servers": broker.bootstrap_servers, **broker.client_config()})
    for key, value in records:
        producer.produce(topic, value.encode(), key.encode())
    assert producer.flush(30) == 0


def table_of(records: list[tuple[str, bytes]]) -> dict[str, int]:
    """wordcount's output: the latest count per word."""
    return {word: int.from_bytes(count, "big", signed=True) for word, count in records}


def read(
    broker: LocalKafka,
    topic: str,
    count: int = 0,
    timeout: float = 90.0,
    until: Callable[[dict[str, int]], bool] | None = None,
) -> list[tuple[str, bytes]]:
    """The committed records of `topic`, as the admin: at least `count`, or until `until`
    holds of the table they make (waiting, bounded)."""
    consumer = Consumer(
        {
            "bootstrap.servers": broker.bootstrap_servers,
            **broker.client_config(),
            "group.id": "secure-test-reader",
            "isolation.level": "read_committed",
            "enable.auto.commit": False,
        }
    )
    got: list[tuple[str, bytes]] = []
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not _exists(broker, topic):
            time.sleep(0.2)
        partitions = admin(broker).list_topics(topic, timeout=30).topics[topic].partitions
        consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
        while time.monotonic() < deadline:
            if until(table_of(got)) if until is not None else len(got) >= count:
                break
            for msg in consumer.consume(100, timeout=0.5):
                if msg.error() is None:
                    got.append(((msg.key() or b"").decode(), msg.value() or b""))
        return got
    finally:
        consumer.close()


def _exists(broker: LocalKafka, topic: str) -> bool:
    found: Any = admin(broker).list_topics(topic, timeout=10).topics.get(topic)
    return found is not None and found.error is None


def wait_topics(broker: LocalKafka, names: list[str], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not all(_exists(broker, name) for name in names):
        assert time.monotonic() < deadline, f"topics {names} not created"
        time.sleep(0.2)


def delete_topics(broker: LocalKafka, names: list[str]) -> None:
    if not names:
        return
    client = admin(broker)  # alive until the futures are done
    for future in client.delete_topics(names, operation_timeout=30).values():
        future.result()
    deadline = time.monotonic() + 30
    while any(admin(broker).list_topics(timeout=10).topics.get(name) is not None for name in names):
        assert time.monotonic() < deadline
        time.sleep(0.2)


def stop(app: subprocess.Popen[bytes], log: Path) -> None:
    app.terminate()
    assert app.wait(60) == 0, log.read_text()[-4000:]


def test_stateless_app_with_exactly_its_acls(
    secure_kafka: LocalKafka, build_app: BuildApp, tmp_path: Path
) -> None:
    app: App = build_app(stateless_spec("sec-pay"), "sec_pay")
    lines = grant(secure_kafka, (app.root, app.package), "User:sec-pay-app")
    assert lines == [
        "ALLOW User:sec-pay-app READ TOPIC LITERAL in-sec-pay  # source topic",
        "ALLOW User:sec-pay-app WRITE TOPIC LITERAL out-sec-pay  # sink topic",
        "ALLOW User:sec-pay-app CREATE TOPIC LITERAL in-sec-pay  # created at start when missing",
        "ALLOW User:sec-pay-app CREATE TOPIC LITERAL out-sec-pay  # created at start when missing",
        "ALLOW User:sec-pay-app READ GROUP LITERAL sec-pay  # the app's consumer group",
        "ALLOW User:sec-pay-app WRITE TRANSACTIONAL_ID PREFIXED sec-pay-  "
        "# exactly-once: a transactional id per instance",
    ]
    log = tmp_path / "app.log"
    running = start(secure_kafka, (app.root, app.package), user(secure_kafka, "sec-pay-app"), log)
    wait_topics(secure_kafka, ["in-sec-pay", "out-sec-pay"])
    produce(secure_kafka, "in-sec-pay", [("unknown", "100"), ("user-1", "250"), ("unknown", "7")])
    got = read(secure_kafka, "out-sec-pay", 2)
    stop(running, log)
    assert sorted(got) == [("unknown", b"100"), ("unknown", b"7")], log.read_text()[-4000:]
    assert "secret" not in log.read_text()


def test_each_missing_acl_of_a_stateless_app_is_named(
    secure_kafka: LocalKafka, build_app: BuildApp, tmp_path: Path
) -> None:
    app = build_app(stateless_spec("sec-rm"), "sec_rm")
    source, sink = "in-sec-rm", "out-sec-rm"
    # (the ACL left out, what the app's one line must say); in this order the topics the
    # CREATE cases need missing are missing.
    cases = [
        ("CREATE TOPIC LITERAL out-sec-rm", f"CREATE on topic {sink}"),
        ("CREATE TOPIC LITERAL in-sec-rm", f"CREATE on topic {source}"),
        ("WRITE TRANSACTIONAL_ID", "WRITE on transactional id sec-rm-*"),
        ("READ GROUP", "READ on group sec-rm"),
        ("READ TOPIC LITERAL in-sec-rm", f"READ on topic {source}"),
        ("WRITE TOPIC LITERAL out-sec-rm", f"WRITE on topic {sink}"),
    ]
    for number, (skip, expected) in enumerate(cases):
        if number == 1:
            delete_topics(secure_kafka, [source])  # created by the first case's app
        if number == 2:
            create_topics(secure_kafka, [source])  # the second case's app could not
            produce(secure_kafka, source, [("unknown", "1")])
        name = f"sec-rm-{number}"
        config = user(secure_kafka, name)
        grant(secure_kafka, (app.root, app.package), f"User:{name}", skip)
        log = tmp_path / f"{number}.log"
        code = run_to_exit(secure_kafka, (app.root, app.package), config, log)
        text = log.read_text()
        assert code == 3, f"without {skip}: exit {code}\n{text[-3000:]}"
        assert f"not authorized: User:{name} is not allowed {expected} " in text, text[-3000:]
        assert "kafka-acls.sh" in text


def test_stateful_app_with_exactly_its_acls(secure_kafka: LocalKafka, tmp_path: Path) -> None:
    app_dir = build_example("wordcount", "sec-wc", tmp_path)
    where = (app_dir, app_dir.name)
    grant(secure_kafka, where, "User:sec-wc-app")
    log = tmp_path / "app.log"
    config = user(secure_kafka, "sec-wc-app")
    running = start(secure_kafka, where, config, log)
    wait_topics(secure_kafka, ["lines", "word-counts"])
    produce(secure_kafka, "lines", [("l1", "Hello world"), ("l2", "hello, Kafka!")])
    expected = {"hello": 2, "world": 1, "kafka": 1}
    got = read(secure_kafka, "word-counts", until=lambda table: table == expected)
    stop(running, log)
    assert table_of(got) == expected, log.read_text()[-4000:]
    # Again: the changelog exists now, so its config is read (DESCRIBE_CONFIGS), and the
    # store is restored from it (READ).
    running = start(secure_kafka, where, config, log)
    produce(secure_kafka, "lines", [("l3", "kafka")])
    expected["kafka"] = 2
    got = read(secure_kafka, "word-counts", until=lambda table: table == expected)
    stop(running, log)
    assert table_of(got) == expected, log.read_text()[-4000:]


@pytest.mark.parametrize(
    ("number", "skip", "expected"),
    [
        (1, "CREATE TOPIC PREFIXED", "CREATE on topic sec-wc1-*"),
        (2, "READ TOPIC PREFIXED", "READ on topic sec-wc2-*"),
        (3, "WRITE TOPIC PREFIXED", "WRITE on topic sec-wc3-*"),
        (4, "DESCRIBE_CONFIGS TOPIC PREFIXED", "DESCRIBE_CONFIGS on topic sec-wc4-*"),
        # Consumed repartition records are purged (here every 0.5 s).
        (5, "DELETE TOPIC PREFIXED", "DELETE on topic sec-wc5-*"),
        # The store's changelog has a record: the restore consumer reads it.
        (6, "DESCRIBE GROUP LITERAL sec-wc6-restore", "DESCRIBE on group sec-wc6-restore"),
    ],
)
def test_missing_internal_topic_acls_of_a_stateful_app_are_named(
    secure_kafka: LocalKafka, tmp_path: Path, number: int, skip: str, expected: str
) -> None:
    app_dir = build_example("wordcount", f"sec-wc{number}", tmp_path)
    where = (app_dir, app_dir.name)
    create_topics(
        secure_kafka, [t for t in ("lines", "word-counts") if not _exists(secure_kafka, t)]
    )
    produce(secure_kafka, "lines", [("l1", "Hello world")])
    if number in (4, 6):
        # An existing changelog (as many partitions as `lines`): the app reads its cleanup.policy.
        changelog = f"sec-wc{number}-word-counts-changelog"
        lines: Any = admin(secure_kafka).list_topics("lines", timeout=30).topics["lines"]
        create_topics(
            secure_kafka, [changelog], {"cleanup.policy": "compact"}, len(lines.partitions)
        )
        if number == 6:
            producer = Producer(
                {
                    "bootstrap.servers": secure_kafka.bootstrap_servers,
                    **secure_kafka.client_config(),
                }
            )
            for partition in lines.partitions:
                producer.produce(changelog, (1).to_bytes(8, "big"), b"hello", partition=partition)
            assert producer.flush(30) == 0
    name = f"sec-wc-rm{number}"
    config = user(secure_kafka, name)
    grant(secure_kafka, where, f"User:{name}", skip)
    log = tmp_path / "app.log"
    purge = ("--purge-interval-ms", "500", "--commit-interval-ms", "100") if number == 5 else ()
    code = run_to_exit(secure_kafka, where, config, log, *purge)
    text = log.read_text()
    assert code == 3, f"without {skip}: exit {code}\n{text[-3000:]}"
    assert f"not authorized: User:{name} is not allowed {expected} " in text, text[-3000:]


def test_each_missing_topic_group_and_transaction_acl_of_a_stateful_app_is_named(
    secure_kafka: LocalKafka, tmp_path: Path
) -> None:
    """The rest of wordcount's set (the internal topics' and the restore group's are above)."""
    app_dir = build_example("wordcount", "sec-wco", tmp_path)
    where = (app_dir, app_dir.name)
    # In this order the topics the CREATE cases need missing are missing.
    cases = [
        ("CREATE TOPIC LITERAL word-counts", "CREATE on topic word-counts"),
        ("CREATE TOPIC LITERAL lines", "CREATE on topic lines"),
        ("WRITE TRANSACTIONAL_ID", "WRITE on transactional id sec-wco-*"),
        ("READ GROUP", "READ on group sec-wco"),
        ("READ TOPIC LITERAL lines", "READ on topic lines"),
        ("WRITE TOPIC LITERAL word-counts", "WRITE on topic word-counts"),
    ]
    delete_topics(secure_kafka, [t for t in ("lines", "word-counts") if _exists(secure_kafka, t)])
    for number, (skip, expected) in enumerate(cases):
        if number == 1:
            delete_topics(secure_kafka, ["lines"])  # created by the first case's app
        if number == 2:
            missing = [t for t in ("lines", "word-counts") if not _exists(secure_kafka, t)]
            create_topics(secure_kafka, missing)
            produce(secure_kafka, "lines", [("l1", "Hello world")])
        name = f"sec-wco-{number}"
        config = user(secure_kafka, name)
        grant(secure_kafka, where, f"User:{name}", skip)
        log = tmp_path / f"{number}.log"
        code = run_to_exit(secure_kafka, where, config, log)
        text = log.read_text()
        assert code == 3, f"without {skip}: exit {code}\n{text[-3000:]}"
        assert f"not authorized: User:{name} is not allowed {expected} " in text, text[-3000:]


def test_missing_standby_group_acl_is_named(secure_kafka: LocalKafka, tmp_path: Path) -> None:
    """Two instances keeping a standby replica of each other's store partitions, without
    DESCRIBE on the standby consumer's group."""
    app_dir = build_example("wordcount", "sec-wsb", tmp_path)
    where = (app_dir, app_dir.name)
    standbys = ("--num-standby-replicas", "1")
    config = user(secure_kafka, "sec-wsb-app")
    skip = "DESCRIBE GROUP LITERAL sec-wsb-standby"
    grant(secure_kafka, where, "User:sec-wsb-app", skip, options=standbys)
    create_topics(
        secure_kafka, [t for t in ("lines", "word-counts") if not _exists(secure_kafka, t)]
    )
    produce(secure_kafka, "lines", [("l1", "Hello world"), ("l2", "hello, Kafka!")])
    logs = [tmp_path / f"{n}.log" for n in range(2)]
    apps = [
        start(secure_kafka, where, config, log, *standbys, "--state-dir", str(tmp_path / f"s{n}"))
        for n, log in enumerate(logs)
    ]
    try:
        deadline = time.monotonic() + APP_TIMEOUT_S
        while all(app.poll() is None for app in apps) and time.monotonic() < deadline:
            time.sleep(0.2)
        codes = [app.poll() for app in apps]
    finally:
        for app in apps:
            if app.poll() is None:
                app.terminate()
                app.wait(60)
    text = "".join(log.read_text() for log in logs)
    assert 3 in codes, f"exits {codes}\n{text[-3000:]}"
    expected = "not authorized: User:sec-wsb-app is not allowed DESCRIBE on group sec-wsb-standby "
    assert expected in text, text[-3000:]


def test_missing_group_config_acl_under_the_consumer_protocol_is_named(
    secure_kafka: LocalKafka, build_app: BuildApp, tmp_path: Path
) -> None:
    app = build_app(stateless_spec("sec-cp"), "sec_cp")
    where = (app.root, app.package)
    protocol = ("--group-protocol", "consumer")
    config = user(secure_kafka, "sec-cp-app")
    lines = grant(secure_kafka, where, "User:sec-cp-app", "ALTER_CONFIGS GROUP", options=protocol)
    assert not any("ALTER_CONFIGS" in line for line in lines)
    log = tmp_path / "app.log"
    code = run_to_exit(secure_kafka, where, config, log, *protocol)
    text = log.read_text()
    assert code == 3, text[-3000:]
    expected = "not authorized: User:sec-cp-app is not allowed ALTER_CONFIGS on group sec-cp "
    assert expected in text, text[-3000:]


def test_kgen_kafka_start_secure_prints_settings_an_app_can_use(
    build_app: BuildApp, tmp_path: Path
) -> None:
    """The command's printed settings, exported as a shell would, let an app's `acls --apply`
    (reading the password from KAFKA_SASL_PASSWORD_FILE) log in as the admin."""
    # A private run dir, but the shared jar cache (no second Maven run).
    (tmp_path / "cache" / "kafka").mkdir(parents=True)
    (tmp_path / "cache" / "kafka" / fetch().parent.name).symlink_to(fetch().parent)
    env = {**os.environ, "KGEN_CACHE_DIR": str(tmp_path / "cache"), "PYTHONPATH": str(ROOT)}
    for name in ("KGEN_BOOTSTRAP_SERVERS", "KAFKA_SASL_PASSWORD", "KAFKA_SASL_PASSWORD_FILE"):
        env.pop(name, None)

    def kgen(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "kgen", "kafka", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )

    try:
        started = kgen("start", "--secure")
        assert started.returncode == 0, started.stderr
        bootstrap = started.stdout.strip()
        exports = dict(
            line.removeprefix("export ").split("=", 1)
            for line in started.stderr.splitlines()
            if line.startswith("export ")
        )
        assert exports["KGEN_BOOTSTRAP_SERVERS"] == bootstrap
        assert exports["KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
        assert "KAFKA_SASL_PASSWORD" not in exports  # the file that holds it, not its text
        password = Path(exports["KAFKA_SASL_PASSWORD_FILE"]).read_text().strip()
        assert password and password not in started.stdout + started.stderr
        assert kgen("status").stdout.strip() == bootstrap
        app = build_app(stateless_spec("sec-cli"), "sec_cli")
        applied = subprocess.run(
            [sys.executable, "-m", app.package, "acls", "--principal", "User:x", "--apply"],
            cwd=app.root,
            env={**env, **exports, "PYTHONPATH": python_path(app.root)},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert applied.returncode == 0, applied.stdout + applied.stderr
        assert "created 6 ACLs for User:x" in applied.stdout
        # Without the password file's text, the same settings are refused.
        wrong = tmp_path / "wrong.password"
        wrong.write_text("not-it\n")
        refused = subprocess.run(
            [sys.executable, "-m", app.package, "acls", "--principal", "User:x", "--apply"],
            cwd=app.root,
            env={
                **env,
                **exports,
                "KAFKA_SASL_PASSWORD_FILE": str(wrong),
                "PYTHONPATH": python_path(app.root),
            },
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert refused.returncode == 1, refused.stdout
        assert "cannot connect: " in refused.stdout and "refuses the login of User:admin" in (
            refused.stdout
        )
    finally:
        stopped = kgen("stop")
        assert stopped.returncode == 0, stopped.stderr


@pytest.mark.parametrize("case", ["wrong password", "untrusted CA", "plaintext"])
def test_refused_settings_end_the_app_at_once(
    secure_kafka: LocalKafka, build_app: BuildApp, tmp_path: Path, case: str
) -> None:
    app = build_app(stateless_spec("sec-bad"), "sec_bad")
    config = secure_kafka.client_config()
    if case == "wrong password":
        config["sasl.password"] = "not-the-password"
        expected = "refuses the login of User:admin"
    elif case == "untrusted CA":
        other = Security(tmp_path / "other-ca")
        other.ensure()
        config["ssl.ca.location"] = str(other.ca_file)
        expected = "the TLS handshake with"
    else:
        config = {}
        expected = "it expects TLS, but security.protocol is plaintext"
    log = tmp_path / "app.log"
    started = time.monotonic()
    code = run_to_exit(secure_kafka, (app.root, app.package), config, log)
    text = log.read_text()
    assert code == 3, text[-3000:]
    assert expected in text, text[-3000:]
    assert time.monotonic() - started < 30
    assert (
        "not-the-password" not in text and secure_kafka.client_config()["sasl.password"] not in text
    )
