"""Building example apps under another application.id for broker tests, so that tests sharing
one broker never share a consumer group (or its lingering static members)."""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from kgen import topics
from kgen.codegen import emit, render
from kgen.plan.planner import plan
from kgen.spec.load import load_spec

ROOT = Path(__file__).resolve().parent.parent


def build_example(name: str, app_id: str, out: Path) -> Path:
    """specs/<name>.toml built as app `app_id` into `out`; returns the app's folder."""
    loaded = load_spec(ROOT / "specs" / f"{name}.toml", f"specs/{name}.toml")
    loaded = dataclasses.replace(loaded, spec=loaded.spec.model_copy(update={"app": app_id}))
    app_plan = plan(loaded)
    app_dir = out / app_plan.package
    emit.write(render.render(app_plan), app_dir)
    return app_dir


def committed_offsets(
    bootstrap: str, group: str, topic: str, partitions: int, watcher: Consumer | None = None
) -> list[int]:
    """The group's committed offset per partition (-1001: none), as the broker reports it;
    asked through `watcher` when given (a consumer of the group that never joins it: one kept
    for many looks answers in milliseconds, a new one takes long enough for a fast app to get
    far ahead).

    Retries for up to 120 s while the group coordinator is not ready (a fresh broker creates
    its offsets topic on first use) or a pending transaction holds the answer (right after a
    broker restart, until the app's recovery or the transaction time-out resolves it: on a
    loaded machine two 30 s waits were not enough once in CI)."""
    consumer = watcher or Consumer(
        {"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False}
    )
    deadline = time.monotonic() + 120
    try:
        while True:
            try:
                tps = [TopicPartition(topic, p) for p in range(partitions)]
                return [tp.offset for tp in consumer.committed(tps, timeout=30)]
            except KafkaException as exc:
                if time.monotonic() > deadline or (
                    not exc.args[0].retriable()
                    and exc.args[0].code()
                    not in (
                        # After a broker restart: the coordinator is loading, or a pending
                        # transaction on the partitions holds the answer (KIP-447).
                        KafkaError._TIMED_OUT,
                        KafkaError.NOT_COORDINATOR,
                        KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
                        KafkaError.COORDINATOR_NOT_AVAILABLE,
                    )
                ):
                    raise
                time.sleep(0.2)
    finally:
        if watcher is None:
            consumer.close()


def kill_at_thresholds(
    app_dir: Path,
    bootstrap: str,
    log: Path,
    progress: tuple[str, str, int],
    thresholds: tuple[int, ...],
    *args: str,
    before_run: Callable[[int], None] | None = None,
) -> list[int]:
    """Start the app and SIGKILL it once the group has committed `threshold` records of a topic
    (`progress`: group, topic, partitions), once per threshold, each run on from the last;
    returns the counts seen at the kills. `before_run(i)` runs before the i-th start (e.g. to
    write the input that run is to find: a kill then falls before the rest of the input
    exists, however fast the app). Bounded: 180 s a run."""
    group, topic, partitions = progress
    kills = []
    watcher = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False}
    )
    try:
        committed_offsets(bootstrap, group, topic, partitions, watcher)  # connected before
        for i, threshold in enumerate(thresholds):
            if before_run is not None:
                before_run(i)
            app = start_app(app_dir, bootstrap, log, *args)
            deadline = time.monotonic() + 180
            while True:
                offsets = committed_offsets(bootstrap, group, topic, partitions, watcher)
                done = sum(max(o, 0) for o in offsets)
                if done >= threshold:
                    break
                assert app.poll() is None and time.monotonic() < deadline, log.read_text()[-4000:]
                time.sleep(0.05)
            os.kill(app.pid, signal.SIGKILL)
            app.wait(30)
            kills.append(done)
    finally:
        watcher.close()
    return kills


def start_app(
    app_dir: Path,
    bootstrap: str,
    log: Path,
    *args: str,
    pythonpath: Sequence[Path] = (),
    new_session: bool = False,
) -> subprocess.Popen[bytes]:
    """Run the app in `app_dir` in the background, its output appended to `log` (`pythonpath`:
    where else its user code is; `new_session`: in a process group of its own, which
    os.killpg can end with its workers). A short session timeout: a killed member's partitions
    move after 6 s, not 45 s."""
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            app_dir.name,
            "--bootstrap-servers",
            bootstrap,
            "-X",
            "session.timeout.ms=6000",
            *args,
        ],
        cwd=app_dir,
        # specs/: the example specs' user code (a processor's module).
        env={
            **os.environ,
            "PYTHONPATH": os.pathsep.join(map(str, [app_dir, ROOT / "specs", *pythonpath])),
        },
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        start_new_session=new_session,
    )


def word_counts(bootstrap: str) -> dict[str, int]:
    """wordcount's output as a table: the latest count per word, read with read_committed."""
    latest: dict[str, int] = {}
    for record in topics.read_committed(bootstrap, "word-counts"):
        assert record.key is not None and record.value is not None
        latest[record.key.decode()] = int.from_bytes(record.value, "big", signed=True)
    return latest


def wait_for_word_counts(
    bootstrap: str, expected: dict[str, int], apps: list[subprocess.Popen[bytes]], log: Path
) -> None:
    """Until the table is `expected` (bounded: 240 s), checking that every app still runs."""
    deadline = time.monotonic() + 240
    table: dict[str, int] = {}
    while time.monotonic() < deadline:
        for app in apps:
            assert app.poll() is None, f"an instance exited:\n{log.read_text()[-4000:]}"
        table = word_counts(bootstrap)
        if table == expected:
            return
        time.sleep(2)
    wrong = {w: (table.get(w), n) for w, n in expected.items() if table.get(w) != n}
    raise AssertionError(
        f"{len(wrong)} words wrong after 240 s, e.g. {list(wrong.items())[:5]}\n"
        f"{log.read_text()[-4000:]}"
    )
