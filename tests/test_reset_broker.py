"""`python -m <app> reset` on a real broker, with the wordcount example: run the app, reset
it, run it again. The second run recomputes every count from the first input record with
empty stores (the counts are right, not doubled); `--dry-run` and a reset without `--yes`
change nothing; a reset while an instance runs is refused."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient
from example_apps import build_example, committed_offsets, start_app, word_counts

from kgen import topics

PARTITIONS = 6
APP_ID = "reset-wordcount"
pytestmark = [pytest.mark.broker]


def _reset(app_dir: Path, bootstrap: str, state_dir: Path, *args: str) -> tuple[int, str]:
    command = [sys.executable, "-m", app_dir.name, "reset", "--bootstrap-servers", bootstrap]
    done = subprocess.run(
        [*command, "--state-dir", str(state_dir), *args],
        cwd=app_dir,
        env={**os.environ, "PYTHONPATH": str(app_dir)},
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    return done.returncode, done.stdout + done.stderr


def _run_until_idle(app_dir: Path, bootstrap: str, log: Path, state_dir: Path) -> None:
    app = start_app(app_dir, bootstrap, log, "--state-dir", str(state_dir), "--stop-when-idle", "2")
    assert app.wait(120) == 0, log.read_text()[-4000:]


def _output_records(bootstrap: str) -> int:
    return len(topics.read_committed(bootstrap, "word-counts"))


def _internal(bootstrap: str) -> set[str]:
    listed = AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=30).topics
    return {t for t in listed if t.startswith(f"{APP_ID}-")}


def test_reset_recomputes_from_the_start(kafka_bootstrap: str, tmp_path: Path) -> None:
    bootstrap = kafka_bootstrap
    lines = [f"w{i % 37} x{i % 11} common" for i in range(300)]
    expected = dict(Counter(word for line in lines for word in line.split()))
    app_dir = build_example("wordcount", APP_ID, tmp_path)
    topics.recreate_topics(
        bootstrap,
        {"lines": PARTITIONS, "word-counts": PARTITIONS},
        groups=[APP_ID],
        config={"cleanup.policy": "compact"},
    )
    topics.produce_all(
        bootstrap, "lines", ((f"l{i}".encode(), line.encode()) for i, line in enumerate(lines))
    )
    state_dir, log = tmp_path / "state", tmp_path / "app.log"

    _run_until_idle(app_dir, bootstrap, log, state_dir)
    assert word_counts(bootstrap) == expected
    first_output = _output_records(bootstrap)
    internal = _internal(bootstrap)
    assert internal == {f"{APP_ID}-word-counts-repartition", f"{APP_ID}-word-counts-changelog"}
    offsets = committed_offsets(bootstrap, APP_ID, "lines", PARTITIONS)
    assert sum(offsets) == len(lines)

    # --dry-run and no --yes: the plan, and nothing changed.
    code, out = _reset(app_dir, bootstrap, state_dir, "--dry-run")
    assert code == 0 and "dry run: nothing changed" in out, out
    assert "lines-0: 0" in out and f"{APP_ID}-word-counts-changelog" in out, out
    code, out = _reset(app_dir, bootstrap, state_dir)
    assert code == 1 and "run again with --yes" in out, out
    assert committed_offsets(bootstrap, APP_ID, "lines", PARTITIONS) == offsets
    assert _internal(bootstrap) == internal and state_dir.is_dir()

    code, out = _reset(app_dir, bootstrap, state_dir, "--to-earliest", "--yes")
    assert code == 0, out
    assert committed_offsets(bootstrap, APP_ID, "lines", PARTITIONS) == [0] * PARTITIONS
    assert _internal(bootstrap) == set() and not state_dir.exists()

    # Run again: every line counted again from empty stores; the counts are not doubled.
    app = start_app(app_dir, bootstrap, log, "--state-dir", str(state_dir))
    try:
        deadline = time.monotonic() + 120
        while word_counts(bootstrap) != expected or _output_records(bootstrap) <= first_output:
            assert app.poll() is None and time.monotonic() < deadline, log.read_text()[-4000:]
            time.sleep(1)
        # While it runs, a reset is refused.
        code, out = _reset(app_dir, bootstrap, state_dir, "--dry-run")
        assert code == 1 and "active member" in out, out
    finally:
        app.send_signal(signal.SIGTERM)
        assert app.wait(60) == 0, log.read_text()[-4000:]
    assert committed_offsets(bootstrap, APP_ID, "lines", PARTITIONS) == offsets
