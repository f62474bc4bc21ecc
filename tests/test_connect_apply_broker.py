"""A generated app's `connect apply | status | delete` against a real Kafka Connect worker (the
session's `connect_worker`), never a mock: a file source feeding the app's topic, applied twice
(the second time unchanged), a config field the worker rejects, and a task that fails."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from confluent_kafka import Consumer
from conftest import App, BuildApp

from kgen.kafka.connect import ConnectWorker

SPEC = """
app = "{app}"

[topics.{lines}]

[topics.{errors}]
partitions = 1

[[connectors]]
name = "{source}"
class = "file-source"

[connectors.config]
"file" = "${{env:LINES_FILE}}"
"topic" = "{lines}"
"topic.creation.default.partitions" = "1"
"topic.creation.default.replication.factor" = "1"

[[connectors]]
name = "{bad_field}"
class = "file-source"
config = {{ "file" = "/nonexistent", "topic" = "{lines}", "batch.size" = "many" }}

[[connectors]]
name = "{failing}"
class = "file-sink"
config = {{ "topics" = "{errors}", "file" = "/nonexistent-dir/{errors}/out.txt" }}

[[streams]]
name = "errors"
from = "{lines}"
steps = [
  {{ filter = "'ERROR' in value" }},
  {{ to = "{errors}" }},
]
"""


def _connect(
    app: App, url: str, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", app.package, "connect", *args, "--connect-url", url],
        cwd=app.root,
        env={**app.env(), **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _lines(bootstrap: str, topic: str, expected: int, timeout: float = 60.0) -> list[str]:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"check-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
        }
    )
    consumer.subscribe([topic])
    values: list[str] = []
    deadline = time.monotonic() + timeout
    try:
        while len(values) < expected and time.monotonic() < deadline:
            message = consumer.poll(0.2)
            if message is not None and message.error() is None:
                values.append((message.value() or b"").decode())
    finally:
        consumer.close()
    return values


@dataclass(frozen=True)
class Deployed:
    app: App
    names: dict[str, str]


@pytest.fixture(scope="module")
def deployed(build_app: BuildApp, connect_worker: ConnectWorker) -> Iterator[Deployed]:
    """The app, built once for the module; its connectors deleted afterwards."""
    suffix = uuid.uuid4().hex[:8]
    names = {
        "app": f"connect-e2e-{suffix}",
        "lines": f"lines-{suffix}",
        "errors": f"errors-{suffix}",
        "source": f"lines-file-{suffix}",
        "bad_field": f"bad-field-{suffix}",
        "failing": f"failing-sink-{suffix}",
    }
    built = build_app(SPEC.format(**names), f"connect_e2e_{suffix}")
    yield Deployed(built, names)
    for name in (names["source"], names["bad_field"], names["failing"]):
        _connect(built, connect_worker.url, "delete", name)


@pytest.mark.broker
def test_apply_twice_feeds_the_topic_then_delete(
    deployed: Deployed, connect_worker: ConnectWorker, tmp_path: Path
) -> None:
    app, source = deployed.app, deployed.names["source"]
    lines_file = tmp_path / "app.log"
    lines_file.write_text("INFO start\nERROR disk full\nINFO done\n", encoding="utf-8")
    env = {"LINES_FILE": str(lines_file)}

    first = _connect(app, connect_worker.url, "apply", source, env=env)
    assert first.returncode == 0, App.why(first)
    assert f"{source}: created" in first.stdout
    assert f"{source}: running (connector RUNNING, task 0 RUNNING)" in first.stdout

    again = _connect(app, connect_worker.url, "apply", source, env=env)
    print(first.stdout + again.stdout)
    assert again.returncode == 0, App.why(again)
    assert f"{source}: unchanged" in again.stdout

    status = _connect(app, connect_worker.url, "status", source)
    assert status.returncode == 0 and "task 0 RUNNING" in status.stdout, App.why(status)
    assert _lines(connect_worker.bootstrap_servers, deployed.names["lines"], 3) == [
        "INFO start",
        "ERROR disk full",
        "INFO done",
    ]

    deleted = _connect(app, connect_worker.url, "delete", source)
    assert deleted.returncode == 0 and f"{source}: deleted" in deleted.stdout, App.why(deleted)
    gone = _connect(app, connect_worker.url, "status", source)
    assert gone.returncode == 1 and f"{source}: not deployed" in gone.stdout, App.why(gone)
    again = _connect(app, connect_worker.url, "delete", source)
    assert again.returncode == 0 and f"{source}: not there" in again.stdout, App.why(again)


@pytest.mark.broker
def test_a_missing_variable_stops_apply_before_any_request(deployed: Deployed) -> None:
    app, source = deployed.app, deployed.names["source"]
    # Nothing listens on port 9: a request would fail with "no answer".
    env = {k: v for k, v in app.env().items() if k != "LINES_FILE"}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            app.package,
            "connect",
            "apply",
            source,
            "--connect-url",
            "http://127.0.0.1:9",
        ],
        cwd=app.root,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert result.stdout == (
        f"{source}: not applied: its config names environment variables that are not set: "
        "LINES_FILE\n"
    )


@pytest.mark.broker
def test_a_field_the_worker_rejects_is_named_and_nothing_is_applied(
    deployed: Deployed, connect_worker: ConnectWorker
) -> None:
    app, bad = deployed.app, deployed.names["bad_field"]
    result = _connect(app, connect_worker.url, "apply", bad)
    print(result.stdout)
    assert result.returncode == 1, App.why(result)
    assert f"{bad}: not applied: the worker finds 1 error in its config:" in result.stdout
    assert "  batch.size: Invalid value many for configuration batch.size" in result.stdout
    assert bad not in connect_worker.client.connectors()


@pytest.mark.broker
def test_a_failed_task_is_one_paragraph(deployed: Deployed, connect_worker: ConnectWorker) -> None:
    app, failing = deployed.app, deployed.names["failing"]
    result = _connect(app, connect_worker.url, "apply", failing, "--timeout", "60")
    print(result.stdout)
    assert result.returncode == 1, App.why(result)
    paragraphs = [line for line in result.stdout.splitlines() if "FAILED" in line]
    assert len(paragraphs) == 1, result.stdout
    assert paragraphs[0].startswith(f"{failing}: task {failing}-0 FAILED on worker 127.0.0.1:")
    assert "ConnectException" in paragraphs[0] and "\tat " not in result.stdout
    status = _connect(app, connect_worker.url, "status", failing)
    assert status.returncode == 1 and "task 0 FAILED" in status.stdout, App.why(status)
    # Applied again: unchanged, and what failed is tried again (and fails again).
    again = _connect(app, connect_worker.url, "apply", failing, "--timeout", "60")
    assert again.returncode == 1, App.why(again)
    assert again.stdout.startswith(
        f"{failing}: unchanged\n{failing}: restarting what had failed\n{failing}: task "
    ), again.stdout
