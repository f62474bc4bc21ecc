"""A generated app under the consumer group protocol (KIP-848, `--group-protocol consumer`) on a
real broker: two instances of the wordcount example share the partitions as the second joins
mid-stream (an incremental rebalance: the first gives up only the partitions that move, and
keeps processing the others), and the table they write is exactly right."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient, ConfigResource
from example_apps import build_example, committed_offsets, wait_for_word_counts, word_counts

from kgen import topics

pytestmark = pytest.mark.broker

PARTITIONS = 6
APP_ID = "wc-kip848"


def _start(app: Path, bootstrap: str, log: Path, *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            app.name,
            *("--bootstrap-servers", bootstrap, "--group-protocol", "consumer"),
            # The group's session time-out, set by the app (the test broker allows 6 s).
            *("--session-timeout-ms", "6000", "--batch-size", "100", *args),
        ],
        cwd=app,
        env={**os.environ, "PYTHONPATH": str(app)},
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )


def _counted(bootstrap: str) -> int:
    topic = f"{APP_ID}-word-counts-repartition"
    return sum(max(o, 0) for o in committed_offsets(bootstrap, APP_ID, topic, PARTITIONS))


def _lines_done(bootstrap: str, partitions: list[int]) -> int:
    """Input lines the group has committed on these partitions of `lines`."""
    offsets = committed_offsets(bootstrap, APP_ID, "lines", PARTITIONS)
    return sum(max(offsets[p], 0) for p in partitions)


def _owned(log: Path) -> set[str]:
    """The partitions the instance writing `log` owns, from its incremental callbacks."""
    owned: set[str] = set()
    for kind, names in re.findall(r"(assigned|revoked): (.*)", log.read_text()):
        parts = {n for n in names.split(", ") if n != "none"}
        owned = owned | parts if kind == "assigned" else owned - parts
    return owned


def test_join_and_crash_under_the_consumer_protocol(kafka_bootstrap: str, tmp_path: Path) -> None:
    bootstrap = kafka_bootstrap
    lines = [f"w{i % 997} x{(i * 31) % 1009} common" for i in range(60_000)]
    expected = dict(Counter(word for line in lines for word in line.split()))
    # Fresh topics (the app's internal ones as it would create them) and no group.
    topics.recreate_topics(
        bootstrap,
        {
            "lines": PARTITIONS,
            "word-counts": PARTITIONS,
            f"{APP_ID}-word-counts-repartition": PARTITIONS,
        },
        groups=[APP_ID],
    )
    changelog = f"{APP_ID}-word-counts-changelog"
    topics.recreate_topics(bootstrap, {changelog: PARTITIONS}, config={"cleanup.policy": "compact"})

    def produce(start: int, end: int, pause: float = 0.0) -> None:
        for chunk in range(start, end, 1_000):
            records = (
                (f"l{i}".encode(), lines[i].encode()) for i in range(chunk, min(end, chunk + 1_000))
            )
            topics.produce_all(bootstrap, "lines", records)
            time.sleep(pause)

    def wait(what: str, done: Callable[[], bool]) -> None:
        deadline = time.monotonic() + 120
        while not done():
            running = [p.poll() in (None, -signal.SIGKILL) for p in apps]
            assert all(running), [log.read_text()[-3000:] for log in logs]
            assert time.monotonic() < deadline, (what, [log.read_text()[-3000:] for log in logs])
            time.sleep(0.1)

    # A alone reads the first part. B joins; the rest comes slowly (20 s), and B dies
    # (SIGKILL) once it has committed some: A takes B's partitions back while it is at work
    # on its own.
    produce(0, 10_000)
    app = build_example("wordcount", APP_ID, tmp_path)
    logs = [tmp_path / "a.log", tmp_path / "b.log"]
    apps = [_start(app, bootstrap, logs[0], "--state-dir", str(tmp_path / "a"))]
    feeder = threading.Thread(target=produce, args=(10_000, len(lines), 0.4))
    try:
        wait("A counts", lambda: _counted(bootstrap) >= 5_000)
        assert len(_owned(logs[0])) == 2 * PARTITIONS  # lines and the repartition topic
        apps.append(_start(app, bootstrap, logs[1], "--state-dir", str(tmp_path / "b")))
        wait("B gets half", lambda: len(_owned(logs[1])) == PARTITIONS)
        owned = [_owned(log) for log in logs]
        b_parts = sorted(int(n.rsplit("-", 1)[1]) for n in owned[1] if n.startswith("lines-"))
        start = _lines_done(bootstrap, b_parts)
        feeder.start()
        wait("B commits", lambda: _lines_done(bootstrap, b_parts) >= start + 1_000)
        apps[1].send_signal(signal.SIGKILL)
        apps[1].wait(30)
        wait("A takes all back", lambda: len(_owned(logs[0])) == 2 * PARTITIONS)
        feeder.join(60)
        wait_for_word_counts(bootstrap, expected, apps[:1], logs[0])
    finally:
        if feeder.is_alive():
            feeder.join(60)
        for proc in apps:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        codes = [proc.wait(60) for proc in apps]
    texts = [log.read_text() for log in logs]
    assert codes == [0, -signal.SIGKILL], [t[-3000:] for t in texts]
    assert word_counts(bootstrap) == expected
    for text in texts:
        assert "consumer group protocol" in text, text[-3000:]
    # The app set its group's session time-out (a group config, kept across runs).
    group = ConfigResource(ConfigResource.Type.GROUP, APP_ID)
    admin = AdminClient({"bootstrap.servers": bootstrap})
    configs = admin.describe_configs([group])[group].result(30)
    assert configs["consumer.session.timeout.ms"].value == "6000"
    # A gave up half of its partitions and kept the rest: incremental.
    revoked = re.findall(r"revoked: (.*)", texts[0])
    assert revoked and len(revoked[0].split(", ")) == PARTITIONS, revoked
    # Co-partitioned (range): each instance reads the same partition numbers of both topics.
    for names in owned:
        numbers = [
            {n.rsplit("-", 1)[1] for n in names if n.startswith(t)} for t in ("lines-", APP_ID)
        ]
        assert numbers[0] == numbers[1] and len(numbers[0]) == PARTITIONS // 2, owned
    # A restored what B had committed to the changelog of B's partitions.
    restored = [
        int(n) for n in re.findall(r"ready in .* (\d+) changelog records restored", texts[0])
    ]
    assert len(restored) == 2 and restored[1] > 0, restored


def test_a_static_member_restarted_within_its_dead_sessions_time_stops(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    """Under the consumer protocol the broker refuses a member whose group.instance.id a dead
    member's session still holds (the classic protocol lets it take the place at once):
    librdkafka reports it as a fatal error among the records, and the app exits 3 saying so,
    instead of running on without a group."""
    app_id = "wc-kip848-static"
    topics.recreate_topics(
        kafka_bootstrap, {"lines": PARTITIONS, "word-counts": PARTITIONS}, groups=[app_id]
    )
    app = build_example("wordcount", app_id, tmp_path)
    logs = [tmp_path / "first.log", tmp_path / "second.log"]
    args = ("--instance-id", "one", "--state-dir", str(tmp_path / "state"))
    first = _start(app, kafka_bootstrap, logs[0], *args)
    try:
        deadline = time.monotonic() + 60
        while "assigned: " not in logs[0].read_text():
            assert first.poll() is None and time.monotonic() < deadline, logs[0].read_text()
            time.sleep(0.1)
    finally:
        first.kill()
        first.wait(30)
    second = _start(app, kafka_bootstrap, logs[1], *args)
    assert second.wait(60) == 3, logs[1].read_text()[-3000:]
    text = logs[1].read_text()
    assert "the consumer cannot go on" in text and "instance ID is still used" in text, text
