"""The whole file pipeline of issue 14, on the real engines: a file source connector -> a topic
-> a generated app (exactly-once) -> a topic -> a file sink connector. Both connectors are the
spec's, deployed by the app's own `connect apply`; every line the app keeps arrives in the
sink's file exactly once, in the order of the source file."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from conftest import App, BuildApp

from kgen.kafka.connect import ConnectWorker

pytestmark = pytest.mark.broker

SPEC = """
app = "{app}"

[topics.{lines}]
partitions = 1

[topics.{errors}]
partitions = 1

[[connectors]]
name = "{source}"
class = "file-source"
config = {{ "file" = "${{env:LINES_FILE}}", "topic" = "{lines}" }}

[[connectors]]
name = "{sink}"
class = "file-sink"
config = {{ "topics" = "{errors}", "file" = "${{env:ERRORS_FILE}}" }}

[[streams]]
name = "errors"
from = "{lines}"
steps = [
  {{ filter = "'ERROR' in value" }},
  {{ map_values = "value.upper()" }},
  {{ to = "{errors}" }},
]
"""

LINES = 400


def test_file_source_to_app_to_file_sink_exactly_once_in_order(
    build_app: BuildApp, connect_worker: ConnectWorker, tmp_path: Path
) -> None:
    suffix = uuid.uuid4().hex[:8]
    names = {
        "app": f"file-pipe-{suffix}",
        "lines": f"pipe-lines-{suffix}",
        "errors": f"pipe-errors-{suffix}",
        "source": f"pipe-source-{suffix}",
        "sink": f"pipe-sink-{suffix}",
    }
    app: App = build_app(SPEC.format(**names), f"file_pipe_{suffix}")
    lines = [f"{'ERROR' if n % 3 == 0 else 'INFO'} line {n}" for n in range(LINES)]
    lines_file, errors_file = tmp_path / "in.log", tmp_path / "errors.txt"
    lines_file.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
    env = {
        **app.env(),
        "LINES_FILE": str(lines_file),
        "ERRORS_FILE": str(errors_file),
        "KAFKA_BOOTSTRAP_SERVERS": connect_worker.bootstrap_servers,
    }

    def connect(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", app.package, "connect", *args],
            cwd=app.root,
            env={**env, "KAFKA_CONNECT_URL": connect_worker.url},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    # The app first (it creates both topics), then the connectors.
    log = tmp_path / "app.log"
    running = subprocess.Popen(
        [
            sys.executable,
            "-m",
            app.package,
            "--bootstrap-servers",
            connect_worker.bootstrap_servers,
        ],
        cwd=app.root,
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    try:
        applied = connect("apply")
        assert applied.returncode == 0, App.why(applied)
        expected = [line.upper() for line in lines if line.startswith("ERROR")]
        deadline = time.monotonic() + 90
        got: list[str] = []
        while time.monotonic() < deadline:
            got = (
                errors_file.read_text(encoding="utf-8").splitlines() if errors_file.exists() else []
            )
            if len(got) >= len(expected):
                break
            assert running.poll() is None, log.read_text()[-3000:]
            time.sleep(0.3)
        # A moment more: a duplicate written late would show.
        time.sleep(2)
        got = errors_file.read_text(encoding="utf-8").splitlines()
        assert got == expected, (len(got), len(expected), log.read_text()[-3000:])
    finally:
        connect("delete")
        running.terminate()
        assert running.wait(60) == 0, log.read_text()[-3000:]
