"""--workers 2: one command, two processes, each a member of the group with its own instance id,
transactional.id and state directory; one log, one exit code.

Exactly-once holds with workers as with one process: a worker SIGKILLed mid-stream (the app
stops, its other worker committing first, and exits 128 + 9), then the whole app SIGKILLed (its
process group) mid-stream, then a run to the end: the output read with read_committed has
every expected record once.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient
from example_apps import build_example, committed_offsets, start_app

from kgen import topics

ROOT = Path(__file__).resolve().parent.parent
# A worker's first line: which worker, its pid, its group.instance.id and transactional.id.
IDENTITY = re.compile(
    r"\[w(\d)\] \S+: worker \1 of 2, pid (\d+): "
    r"group\.instance\.id (\S+), transactional\.id ([^\s,]+)"
)


def _committed(bootstrap: str, group: str, partitions: int) -> int:
    return sum(max(o, 0) for o in committed_offsets(bootstrap, group, "payment", partitions))


def _workers(log: Path, app: subprocess.Popen[bytes]) -> dict[int, tuple[int, str, str]]:
    """Worker index -> (pid, group.instance.id, transactional.id), once both have said."""
    deadline = time.monotonic() + 60
    while True:
        found = {int(m[1]): (int(m[2]), m[3], m[4]) for m in IDENTITY.finditer(log.read_text())}
        if len(found) == 2:
            return found
        assert app.poll() is None and time.monotonic() < deadline, log.read_text()[-4000:]
        time.sleep(0.05)


@contextmanager
def _watch(bootstrap: str, group: str, partitions: int) -> Iterator[Callable[[], list[int]]]:
    """The group's committed offsets of `payment` per partition, asked by one consumer that
    stays (a new one per look finds the coordinator first, which takes long enough for two
    workers to get far): for the kills mid-stream."""
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False}
    )
    tps = [TopicPartition("payment", p) for p in range(partitions)]
    try:
        yield lambda: [tp.offset for tp in consumer.committed(tps, timeout=30)]
    finally:
        consumer.close()


def _wait_committed(
    offsets: Callable[[], list[int]], app: subprocess.Popen[bytes], above: int
) -> int:
    """Until the group has committed more than `above` input records (bounded: 120 s)."""
    deadline = time.monotonic() + 120
    while True:
        done = sum(max(o, 0) for o in offsets())
        if done > above:
            return done
        assert app.poll() is None, "the app exited on its own"
        assert time.monotonic() < deadline, "the app made no progress within 120 s"
        time.sleep(0.02)


def _both_mid_stream(
    offsets: Callable[[], list[int]], app: subprocess.Popen[bytes], log: Path, past: list[int]
) -> int:
    """Until each partition has a commit past `past`: both workers hold partitions (see
    _both_assigned) and have committed on each of them (bounded: 120 s); returns the records
    committed."""
    deadline = time.monotonic() + 120
    while True:
        done = offsets()
        if all(now > then for now, then in zip(done, past, strict=True)):
            return sum(done)
        assert app.poll() is None and time.monotonic() < deadline, log.read_text()[-4000:]
        time.sleep(0.02)


def _both_assigned(bootstrap: str, group: str, app: subprocess.Popen[bytes], log: Path) -> None:
    """Until both workers are members of the group with partitions (bounded: 60 s)."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    deadline = time.monotonic() + 60
    while True:
        try:
            members = admin.describe_consumer_groups([group], request_timeout=10)[group].result()
            if sum(bool(m.assignment.topic_partitions) for m in members.members) == 2:
                return
        except KafkaException:
            pass  # the group does not exist yet
        assert app.poll() is None and time.monotonic() < deadline, log.read_text()[-4000:]
        time.sleep(0.05)


class _Input:
    """payment records produced in the background, a chunk every 0.1 s (30,000 a second, less
    than two workers read) until stopped: a run killed while it runs is mid-stream, whatever
    the machine's speed. Record i has key 'unknown' when i % 3 == 0 and value i."""

    CHUNK = 3000
    LIMIT = 900_000  # 30 s of input: a bound, never reached in a passing run

    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap
        self.produced = 0
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    @staticmethod
    def key(i: int) -> str:
        return "unknown" if i % 3 == 0 else f"user-{i}"

    def _run(self) -> None:
        while not self.stopping.is_set() and self.produced < self.LIMIT:
            chunk = range(self.produced, self.produced + self.CHUNK)
            pairs = ((self.key(i).encode(), str(i).encode()) for i in chunk)
            self.produced += topics.produce_all(self.bootstrap, "payment", pairs)
            self.stopping.wait(0.1)

    def running(self) -> bool:
        return self.thread.is_alive() and not self.stopping.is_set()

    def stop(self) -> int:
        self.stopping.set()
        self.thread.join(60)
        assert not self.thread.is_alive()
        return self.produced


@pytest.mark.broker
@pytest.mark.slow
def test_workers_sigkill_then_exactly_once(kafka_bootstrap: str, tmp_path: Path) -> None:
    bootstrap, group, partitions = kafka_bootstrap, "payments-workers", 4
    topics.recreate_topics(
        bootstrap, {"payment": partitions, "unknown-payment": partitions}, groups=[group]
    )
    app = build_example("payments", group, tmp_path)
    args = ("--workers", "2", "--instance-id", "wk", "--batch-size", "100")

    # A worker SIGKILLed: the other commits and stops, and the app exits with 128 + 9.
    log = tmp_path / "run1.log"
    first = start_app(app, bootstrap, log, *args, new_session=True)
    ids = _workers(log, first)
    assert ids[0][1:] == ("payments-workers-wk-w0", "payments-workers-wk-w0")
    assert ids[1][1:] == ("payments-workers-wk-w1", "payments-workers-wk-w1")
    _both_assigned(bootstrap, group, first, log)
    payments = _Input(bootstrap)
    with _watch(bootstrap, group, partitions) as offsets:
        killed_at = [_both_mid_stream(offsets, first, log, [0] * partitions)]
        assert payments.running(), "the input ended before the kill"
        os.kill(ids[1][0], signal.SIGKILL)
        assert first.wait(60) == 128 + signal.SIGKILL, log.read_text()[-4000:]
        text = log.read_text()
        assert f"worker 1 (pid {ids[1][0]}) was killed by SIGKILL: stopping the app" in text
        assert f"worker 0 (pid {ids[0][0]}) stopped" in text
        assert "[w0] payments-workers: payments-workers stopped: " in text

        # The whole app SIGKILLed, supervisor and workers: its process group.
        log = tmp_path / "run2.log"
        second = start_app(app, bootstrap, log, *args, new_session=True)
        again = _workers(log, second)
        # The same ids: each worker takes its partitions back and fences its predecessor.
        assert {k: v[1:] for k, v in again.items()} == {k: v[1:] for k, v in ids.items()}
        _both_assigned(bootstrap, group, second, log)
        killed_at.append(_both_mid_stream(offsets, second, log, offsets()))
        assert payments.running(), "the input ended before the kill"
        os.killpg(second.pid, signal.SIGKILL)
        second.wait(30)
    records = payments.stop()

    # To the end: each worker stops once idle, and the app exits 0 when both have.
    log = tmp_path / "run3.log"
    last = start_app(app, bootstrap, log, *args[:-2], "--stop-when-idle", "3", new_session=True)
    assert last.wait(180) == 0, log.read_text()[-4000:]
    assert "every worker has stopped; exit code 0" in log.read_text()
    assert _committed(bootstrap, group, partitions) == records

    # Every dead transaction was aborted when its worker's transactional.id came back.
    output = topics.read_committed(bootstrap, "unknown-payment")
    values = Counter(r.value.decode() for r in output if r.value is not None)
    expected = {str(i) for i in range(records) if _Input.key(i) == "unknown"}
    duplicates = {v: n for v, n in values.items() if n > 1}
    missing = expected - set(values)
    assert not duplicates, f"{len(duplicates)} duplicated, e.g. {list(duplicates)[:5]}"
    assert not missing, f"{len(missing)} lost, e.g. {sorted(missing)[:5]}"
    assert set(values) == expected
    print(f"killed after {killed_at} of {records} records committed; output exactly once")


@pytest.mark.broker
def test_workers_sigterm_and_one_exit_code(kafka_bootstrap: str, tmp_path: Path) -> None:
    bootstrap, group, partitions = kafka_bootstrap, "payments-workers-exit", 2
    topics.recreate_topics(
        bootstrap, {"payment": partitions, "unknown-payment": partitions}, groups=[group]
    )
    topics.produce_all(bootstrap, "payment", ((b"unknown", b"%d" % i) for i in range(1000)))
    app = build_example("payments", group, tmp_path)

    # SIGTERM to the app reaches every worker: each commits and stops, and the app exits 0.
    log = tmp_path / "run1.log"
    run = start_app(app, bootstrap, log, "--workers", "2", "--instance-id", "x")
    ids = _workers(log, run)
    with _watch(bootstrap, group, partitions) as offsets:
        _wait_committed(offsets, run, 999)
    run.send_signal(signal.SIGTERM)
    assert run.wait(60) == 0, log.read_text()[-4000:]
    text = log.read_text()
    for worker, (pid, _, _) in ids.items():
        assert f"[w{worker}] {group}: SIGTERM: finishing the batch" in text
        assert f"[w{worker}] {group}: {group} stopped: " in text
        assert f"worker {worker} (pid {pid}) stopped" in text
    assert "every worker has stopped; exit code 0" in text

    # The supervisor alone SIGKILLed: its workers see their stdin close and stop by themselves.
    log = tmp_path / "orphans.log"
    run = start_app(app, bootstrap, log, "--workers", "2", "--instance-id", "x")
    _workers(log, run)
    run.kill()
    run.wait(30)
    deadline = time.monotonic() + 60
    while log.read_text().count(f"{group}: {group} stopped: ") < 2:
        assert time.monotonic() < deadline, log.read_text()[-4000:]
        time.sleep(0.1)
    assert log.read_text().count(": SIGTERM: finishing the batch") == 2

    # A record that cannot be decoded, under on_error = "fail": its worker exits 1, the other
    # is stopped, and the app exits 1.
    topics.produce_all(bootstrap, "payment", [(b"\xff", b"poison")])
    log = tmp_path / "run2.log"
    run = start_app(app, bootstrap, log, "--workers", "2", "--instance-id", "x")
    assert run.wait(120) == 1, log.read_text()[-4000:]
    text = log.read_text()
    failed = re.search(r"worker (\d) \(pid \d+\) exited with code 1: stopping the app", text)
    assert failed is not None, text[-4000:]
    other = 1 - int(failed[1])
    assert f"[w{failed[1]}] {group}: record payment-" in text
    assert re.search(rf"worker {other} \(pid \d+\) stopped", text), text[-4000:]
    assert "every worker has stopped; exit code 1" in text


@pytest.mark.broker
def test_more_workers_than_partitions_still_stop_when_idle(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    """Three workers on two partitions: the one the group gives nothing counts its idle time
    too, so --stop-when-idle ends the whole app (it used to wait forever for partitions)."""
    bootstrap, group = kafka_bootstrap, "payments-workers-idle"
    topics.recreate_topics(bootstrap, {"payment": 2, "unknown-payment": 2}, groups=[group])
    topics.produce_all(bootstrap, "payment", ((b"unknown", b"%d" % i) for i in range(300)))
    app = build_example("payments", group, tmp_path)
    log = tmp_path / "idle.log"
    run = start_app(app, bootstrap, log, "--workers", "3", "--stop-when-idle", "3")
    try:
        assert run.wait(120) == 0, log.read_text()[-4000:]
    finally:
        if run.poll() is None:
            run.kill()
    text = log.read_text()
    assert text.count("no input for 3.0 s: stopping") == 3, text[-4000:]
    assert ": assigned: none" in text, text[-4000:]  # the worker the group gave nothing
    assert _committed(bootstrap, group, 2) == 300


def test_each_worker_has_its_own_ids_state_dir_and_port() -> None:
    """What the supervisor's flags become in each worker (wordcount: RocksDB stores)."""
    code = """
import json, sys
from wordcount import settings
flags = ["--bootstrap-servers", "b:9092", "--instance-id", "pod-1", "--state-dir", "/s",
         "--http-port", "8080", "--http-advertised-url", "http://pod-1:8080",
         "--rocksdb-memory-mib", "256", "--workers", "2"]
seen = [settings.parse(flags)] + [settings.parse([*flags, "--worker", str(k)]) for k in (0, 1)]
print(json.dumps([[s.workers, s.worker, s.instance_id, s.state_dir, s.http_port,
                   s.http_advertised_url, s.rocksdb_memory_mib] for s in seen]))
print(settings.parse(["--bootstrap-servers", "b:9092", "--workers", "auto"]).workers)
"""
    result = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "PYTHONPATH": str(ROOT / "generated" / "wordcount")},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    supervisor, w0, w1 = json.loads(result.stdout.splitlines()[0])
    assert supervisor == [2, None, "pod-1", "/s", 8080, "http://pod-1:8080", 256]
    assert w0 == [2, 0, "pod-1-w0", "/s/w0", 8080, "http://pod-1:8080", 128]
    assert w1 == [2, 1, "pod-1-w1", "/s/w1", 8081, "http://pod-1:8081", 128]
    assert int(result.stdout.splitlines()[1]) == len(os.sched_getaffinity(0))
