"""`python -m <app> acls --connect`: the ACLs of the Kafka Connect worker's principal for the
spec's connectors, proved on the secured broker (SASL_SSL, SCRAM, an authorizer that allows
nothing without an ACL) with a real Connect worker logging in as `User:<name>`.

With exactly the listed set the worker starts and both connectors run: a file source writes
its lines to its topic, a file sink writes its topic's records to a file. Each of the
connectors' ACLs, removed, fails its task with the authorization error (and `connect apply`
restarts it once granted); the worker's group READ, removed, keeps the worker from starting.
The worker's internal-topic ACLs are proved by the start with exactly the set only."""

from __future__ import annotations

import re
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest
from confluent_kafka.admin import (
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    ResourcePatternType,
    ResourceType,
)

from kgen.kafka import LocalKafka
from kgen.kafka.connect import ConnectWorker
from kgen.kafka.errors import ServiceStartError
from tests.conftest import App, BuildApp
from tests.test_secure_broker import admin, create_topics, env_of, produce, read, user

pytestmark = pytest.mark.broker

SPEC = """
app = "{app}"

[topics.{lines}]
[topics.{copied}]

[[connectors]]
name = "{source}"
class = "file-source"
config = {{ "file" = "${{env:LINES_FILE}}", "topic" = "{lines}" }}

[[connectors]]
name = "{sink}"
class = "file-sink"
config = {{ "topics" = "{copied}", "file" = "${{env:COPY_FILE}}" }}

[[streams]]
name = "copy"
from = "{lines}"
steps = [{{ to = "{copied}" }}]
"""


def _java_client(broker: LocalKafka, name: str) -> dict[str, str]:
    """Java client settings (the worker's and, prefixed, its connectors' clients) logging in
    as `name`, trusting the broker's CA."""
    security = broker.security
    assert security is not None
    login = {
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.jaas.config": "org.apache.kafka.common.security.scram.ScramLoginModule required "
        f'username="{name}" password="{name}-secret";',
        "ssl.truststore.type": "PEM",
        "ssl.truststore.location": str(security.ca_file),
    }
    settings = dict(login)
    for prefix in ("producer.", "consumer.", "admin."):
        settings |= {prefix + key: value for key, value in login.items()}
    return settings


def _binding(line: str) -> AclBinding:
    _, who, operation, kind, pattern, name = line.split("  #", maxsplit=1)[0].split()
    return AclBinding(
        ResourceType[kind],
        name,
        ResourcePatternType[pattern],
        who,
        "*",
        AclOperation[operation],
        AclPermissionType.ALLOW,
    )


def _delete(broker: LocalKafka, binding: AclBinding) -> None:
    matching = AclBindingFilter(
        binding.restype,
        binding.name,
        binding.resource_pattern_type,
        binding.principal,
        binding.host,
        binding.operation,
        binding.permission_type,
    )
    client = admin(broker)
    for future in client.delete_acls([matching], request_timeout=30).values():
        assert len(future.result()) == 1


def _create(broker: LocalKafka, bindings: list[AclBinding]) -> None:
    client = admin(broker)
    for future in client.create_acls(bindings, request_timeout=30).values():
        future.result()


def test_the_connect_worker_runs_the_connectors_with_exactly_its_acls(
    secure_kafka: LocalKafka, build_app: BuildApp, tmp_path: Path
) -> None:
    broker = secure_kafka
    suffix = uuid.uuid4().hex[:8]
    names = {
        "app": f"cacl-{suffix}",
        "lines": f"cacl-lines-{suffix}",
        "copied": f"cacl-copied-{suffix}",
        "source": f"cacl-source-{suffix}",
        "sink": f"cacl-sink-{suffix}",
    }
    app: App = build_app(SPEC.format(**names), f"connect_acls_{suffix}")
    group = f"cacl-connect-{suffix}"
    principal = f"connect{suffix}"
    user(broker, principal)
    create_topics(broker, [names["lines"], names["copied"]], partitions=1)
    lines_file, copy_file = tmp_path / "in.log", tmp_path / "copy.txt"
    lines_file.write_text("".join(f"line {n}\n" for n in range(50)), encoding="utf-8")
    env = {
        **env_of(broker, broker.client_config()),
        "PYTHONPATH": str(app.root),
        "LINES_FILE": str(lines_file),
        "COPY_FILE": str(copy_file),
    }

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", app.package, *args],
            cwd=app.root,
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )

    acls = [
        "acls",
        "--connect",
        "--principal",
        f"User:{principal}",
        "--worker-group",
        group,
        "--worker-topics",
        f"{group}-configs,{group}-offsets,{group}-status",
    ]
    listed = run(*acls)
    assert listed.returncode == 0, App.why(listed)
    lines = [line for line in listed.stdout.splitlines() if line.startswith("ALLOW")]
    who = f"User:{principal}"
    assert [line.split("  #")[0] for line in lines] == [
        f"ALLOW {who} READ GROUP LITERAL {group}",
        *(
            f"ALLOW {who} {operation} TOPIC LITERAL {group}-{kind}"
            for kind in ("configs", "offsets", "status")
            for operation in ("CREATE", "READ", "WRITE")
        ),
        f"ALLOW {who} WRITE TOPIC LITERAL {names['lines']}",
        f"ALLOW {who} READ TOPIC LITERAL {names['copied']}",
        f"ALLOW {who} READ GROUP LITERAL connect-{names['sink']}",
    ]
    bindings = {line.split("  #")[0].split(" ", 2)[2]: _binding(line) for line in lines}
    worker_group = bindings[f"READ GROUP LITERAL {group}"]
    # 1. Without the worker group's READ the worker never gets ready (it cannot join).
    _create(broker, [b for b in bindings.values() if b is not worker_group])
    worker_config = _java_client(broker, principal)
    refused_worker = ConnectWorker(
        broker.bootstrap_servers,
        tmp_path / "refused",
        plugins=(),
        group_id=group,
        worker_config=worker_config,
    )
    # Started in a thread, killed as soon as its log shows the refusal: start() then fails.
    refusals: list[ServiceStartError] = []

    def attempt() -> None:
        try:
            refused_worker.start(timeout=90)
        except ServiceStartError as exc:
            refusals.append(exc)

    starting = threading.Thread(target=attempt)
    starting.start()
    denied = r"GroupAuthorizationException|Not authorized to access group"
    deadline, log = time.monotonic() + 90, ""
    try:
        while not re.search(denied, log) and time.monotonic() < deadline:
            time.sleep(0.2)
            log = "".join(
                path.read_text(errors="replace") for path in (tmp_path / "refused").rglob("*.log")
            )
    finally:
        refused_worker.kill()
        starting.join(60)
        refused_worker.stop()
    assert re.search(denied, log), log[-3000:]
    assert len(refusals) == 1, "the worker got ready without its group's READ"
    # 2. With the set as listed (applied by the command itself, as the admin) it starts.
    applied = run(*acls, "--apply")
    assert applied.returncode == 0 and f"created {len(lines)} ACLs" in applied.stdout, App.why(
        applied
    )
    with ConnectWorker(
        broker.bootstrap_servers,
        tmp_path / "worker",
        plugins=(),
        group_id=group,
        worker_config=worker_config,
    ) as worker:
        env["KAFKA_CONNECT_URL"] = worker.url
        # 3. Each connector ACL removed: the task fails for want of it; granted back, the
        # next apply restarts the task and it runs.
        for acl, connector, refused in [
            (f"WRITE TOPIC LITERAL {names['lines']}", names["source"], "TopicAuthorization"),
            (f"READ TOPIC LITERAL {names['copied']}", names["sink"], "TopicAuthorization"),
            (f"READ GROUP LITERAL connect-{names['sink']}", names["sink"], "GroupAuthorization"),
        ]:
            _delete(broker, bindings[acl])
            run("connect", "apply", connector, "--timeout", "30")
            deadline, status = time.monotonic() + 60, None
            while time.monotonic() < deadline:
                status = run("connect", "status", connector)
                if status.returncode == 1 and "FAILED" in status.stdout:
                    break
                time.sleep(1)
            assert status is not None and "FAILED" in status.stdout, (acl, App.why(status))
            assert refused in status.stdout, (acl, status.stdout)
            _create(broker, [bindings[acl]])
            again = run("connect", "apply", connector, "--timeout", "60")
            assert again.returncode == 0, (acl, App.why(again))
        # 4. And the data flows: the source's lines reach its topic, the sink's topic its file.
        produce(broker, names["copied"], [(f"k{n}", f"copied {n}") for n in range(20)])
        deadline = time.monotonic() + 60
        got: list[str] = []
        while time.monotonic() < deadline and len(got) < 20:
            got = copy_file.read_text().splitlines() if copy_file.exists() else []
            time.sleep(0.3)
        # At least once (a restarted task may send a record again): every record, nothing else.
        assert set(got) == {f"copied {n}" for n in range(20)}, got
        written = read(broker, names["lines"], 50)
        assert {value for _, value in written} == {f"line {n}".encode() for n in range(50)}
