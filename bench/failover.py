"""`python -m bench failover`: how long a group of three instances of the count app takes to
produce output again for the partitions of an instance that dies (SIGKILL).

Per variant and round:

1. Cold: the input and output topics empty, the app's internal topics and group gone, every
   instance's state dir empty.
2. Three instances start (their own state dirs, client ids `failover-0..2`). Once the group has
   kept one balanced assignment for 5 s (two repartition partitions each), the harness writes
   `--keys` input records with distinct users and waits until the group has counted them all:
   a store of that many keys, a third on each instance. Filling it only now means that no
   instance holds a copy of a store it does not own (the first to join is given every
   partition at first). Then a feeder produces `--rate` records per second over 10,000 other
   users, so every partition always has input, and the harness waits until the assignment has
   held for 5 s more and every output partition got new committed output in the last 2 s.
3. Instance 1 is killed with SIGKILL (`kgen-restart`: and started again at once, with the same
   `--instance-id` and state dir). The feeder goes on.
4. A read_committed consumer of the output topic notes when each of the dead instance's
   partitions gets its first new committed record (an offset at or past the partition's last
   stable offset one second after the kill: nothing the dead instance committed). The time
   from the kill to the last of them is the failover time. The count is grouped by user
   through a repartition topic with as many partitions as the output topic, and both are
   partitioned by the same key hash, so output partition p is written by the task that owns
   repartition partition p and its store.
5. The phases are read from the surviving instances' log lines, time-stamped as the harness
   reads them: when the group's rebalance reached them, when the dead partitions were assigned,
   how long the stores took to open and restore. Kafka Streams logs at WARN here; the harness
   turns INFO on for its state transitions and its StoreChangelogReader.

Every wait is bounded; every process the harness starts is stopped (SIGTERM, then SIGKILL).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO

from confluent_kafka import OFFSET_END, Consumer, KafkaException, Producer, TopicPartition

from bench import data, kafka_streams, report
from bench.broker import Broker
from bench.measure import _internal_ends
from bench.systems import BuiltApp, build_app, package_digest
from bench.workloads import INPUT_PARTITIONS, INPUT_TOPIC, WORKLOADS

INSTANCES = 3
VICTIM = 1
USERS = 10_000
STREAMS_APP_ID = "bench-failover-ks"
STREAMS_OUTPUT = "bench-failover-ks-out"
# The instances stop by themselves this long after their input stops (should the harness die).
IDLE_STOP_S = 60
STOP_TIMEOUT_S = 60.0
# A member's client id; Kafka Streams' consumer adds "-StreamThread-1-consumer".
CLIENT_ID = re.compile(r"failover-(\d+)")
# Kafka Streams' lines the phases come from (INFO, turned on for these two loggers).
STREAMS_LOGGERS = (
    "org.apache.kafka.streams.KafkaStreams",
    "org.apache.kafka.streams.processor.internals.StoreChangelogReader",
)


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Variant:
    name: str
    system: str  # "kgen" | "kafka-streams"
    description: str
    app_args: tuple[str, ...] = ()
    streams_config: tuple[tuple[str, str], ...] = ()
    # Start the killed instance again at once (same --instance-id and state dir).
    restart: bool = False
    # Standby variants: how long the copies get to catch up with the filled stores before the
    # kill (their owners' changelogs, read as they are written).
    catch_up_s: float = 0.0


VARIANTS: dict[str, Variant] = {
    v.name: v
    for v in (
        Variant(
            "kgen-classic",
            "kgen",
            "kgen app, classic group protocol, its defaults (session 10 s, heartbeat 1 s)",
        ),
        Variant(
            "kgen-consumer",
            "kgen",
            "kgen app, --group-protocol consumer (KIP-848; the app sets its group's session "
            "time-out to 10 s and heartbeat to 1 s, which kgen's local broker allows)",
            app_args=("--group-protocol", "consumer"),
        ),
        Variant(
            "kgen-restart",
            "kgen",
            "kgen app, classic, --instance-id per instance (static membership); the killed "
            "instance is started again at once on its state dir",
            restart=True,
        ),
        Variant(
            "kgen-standby",
            "kgen",
            "kgen app, classic, its defaults, --num-standby-replicas 1 (each partition's store "
            "copied by one other instance; the group's assignor does not know where)",
            app_args=("--num-standby-replicas", "1"),
            catch_up_s=20.0,
        ),
        Variant(
            "kgen-standby-6s",
            "kgen",
            "kgen-standby with --session-timeout-ms 6000 (the broker's least; the app's "
            "transaction time-out follows it)",
            app_args=("--num-standby-replicas", "1", "--session-timeout-ms", "6000"),
            catch_up_s=20.0,
        ),
        Variant(
            "kafka-streams",
            "kafka-streams",
            f"Kafka Streams {kafka_streams.KAFKA_STREAMS_VERSION}, exactly_once_v2, its defaults "
            "(session 45 s, heartbeat 3 s, no standbys)",
        ),
        Variant(
            "kafka-streams-txn",
            "kafka-streams",
            "the same with enable.transactional.statestores=true",
            streams_config=(("enable.transactional.statestores", "true"),),
        ),
        Variant(
            "kafka-streams-10s",
            "kafka-streams",
            "Kafka Streams tuned as kgen's defaults: session.timeout.ms=10000, "
            "heartbeat.interval.ms=1000",
            streams_config=(("session.timeout.ms", "10000"), ("heartbeat.interval.ms", "1000")),
        ),
        Variant(
            "kafka-streams-standby",
            "kafka-streams",
            "Kafka Streams with num.standby.replicas=1 and kgen's session (10 s, heartbeat 1 s)",
            streams_config=(
                ("num.standby.replicas", "1"),
                ("session.timeout.ms", "10000"),
                ("heartbeat.interval.ms", "1000"),
            ),
            catch_up_s=20.0,
        ),
        Variant(
            "kafka-streams-standby-6s",
            "kafka-streams",
            "Kafka Streams tuned as kgen-standby-6s: num.standby.replicas=1, "
            "session.timeout.ms=6000, heartbeat.interval.ms=1000, "
            "producer.transaction.timeout.ms=6000",
            streams_config=(
                ("num.standby.replicas", "1"),
                ("session.timeout.ms", "6000"),
                ("heartbeat.interval.ms", "1000"),
                ("producer.transaction.timeout.ms", "6000"),
            ),
            catch_up_s=20.0,
        ),
    )
}


@dataclass(frozen=True)
class FailoverConfig:
    keys: int = 1_000_000
    variants: tuple[str, ...] = tuple(VARIANTS)
    repeat: int = 1
    rate: int = 1_000
    bootstrap: str | None = None
    results_dir: Path | None = None
    json_path: Path | None = None
    # Bound on the failover itself (kill to the last dead partition's output).
    timeout_s: float = 180.0
    command: str = "python -m bench failover"


@dataclass
class Phase:
    """One observed step after the kill: seconds since it, and what happened."""

    seconds: float
    what: str


@dataclass
class FailoverResult:
    variant: str
    round: int
    keys: int
    dead_partitions: list[int]
    # Kill to the first new committed output of each dead partition (None: none in time).
    outputs: dict[int, float | None]
    seconds: float | None  # the last of them: the failover time
    detected_s: float | None  # the rebalance reached a surviving (or restarted) instance
    assigned_s: float | None  # the last dead partition assigned (kgen)
    offsets_wait_s: float  # waiting for committed offsets (a previous owner's transaction)
    open_s: float | None  # opening the stores (kgen: the instance that took most)
    restore_s: float | None  # restoring them
    restored: int  # changelog records read by the instances that took the dead partitions
    ready_s: float | None  # stores ready (kgen) / back to RUNNING (Kafka Streams)
    load: tuple[float, float, float]  # the load average at the kill
    phases: list[Phase] = field(default_factory=list)
    note: str = ""  # why the round failed
    caveat: str = ""  # what makes it not quite the failover asked for
    preload_s: float | None = None  # counting the keys into the stores

    @property
    def ok(self) -> bool:
        return self.seconds is not None and not self.note


class Instance:
    """One app process; its output lines, time-stamped as they are read."""

    def __init__(self, argv: list[str], cwd: Path, env: dict[str, str], log: IO[str]) -> None:
        self.argv, self.cwd, self.env, self.log = argv, cwd, env, log
        self.lines: list[tuple[float, str]] = []
        self.proc = self._start()

    def _start(self) -> subprocess.Popen[str]:
        self.log.write(f"\n=== {time.monotonic():.3f} start: {' '.join(self.argv)}\n")
        proc = subprocess.Popen(
            self.argv,
            cwd=self.cwd,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
        )
        threading.Thread(target=self._read, args=(proc,), daemon=True).start()
        return proc

    def _read(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            now = time.monotonic()
            self.lines.append((now, line.rstrip("\n")))
            self.log.write(f"{now:.3f} {line}")

    def restart(self) -> None:
        self.proc = self._start()

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(STOP_TIMEOUT_S)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)

    def wait_stopped(self) -> None:
        try:
            self.proc.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(STOP_TIMEOUT_S)


class Deployment:
    """What differs between the systems: names, and the command of instance i."""

    def __init__(self, variant: Variant, workdir: Path, app: BuiltApp | None, jar: Path | None):
        self.variant = variant
        self.workdir = workdir
        self.app, self.jar = app, jar
        if variant.system == "kgen":
            assert app is not None
            self.group = app.app_id
            self.output = WORKLOADS["count"].output_topic
            self.repartition = app.internal_sources[0]
            self.changelog = next(t for t in app.internal_topics if t.endswith("-changelog"))
            self.internal = app.internal_topics
        else:
            self.group = STREAMS_APP_ID
            self.output = STREAMS_OUTPUT
            self.repartition = kafka_streams.internal_topics("count", STREAMS_APP_ID)[0]
            self.changelog = kafka_streams.changelog_topics("count", STREAMS_APP_ID)[0]
            self.internal = (self.repartition, self.changelog)

    def state_dir(self, i: int) -> Path:
        return self.workdir / f"state-{self.variant.system}-{i}"

    def command(self, i: int, bootstrap: str) -> tuple[list[str], Path, dict[str, str]]:
        client_id = f"failover-{i}"
        if self.variant.system == "kgen":
            assert self.app is not None
            argv = [sys.executable, "-m", self.app.package, "--bootstrap-servers", bootstrap]
            argv += ["--state-dir", str(self.state_dir(i)), "-X", f"client.id={client_id}"]
            argv += ["--stop-when-idle", str(IDLE_STOP_S), *self.variant.app_args]
            if self.variant.restart:
                argv += ["--instance-id", str(i)]
            env = {**os.environ, "PYTHONPATH": str(self.app.root)}
            return argv, self.app.root, env
        assert self.jar is not None
        argv = kafka_streams.command(
            self.jar,
            "count",
            bootstrap,
            INPUT_TOPIC,
            self.output,
            STREAMS_APP_ID,
            self.state_dir(i),
            stop_when_idle=IDLE_STOP_S,
            config={"client.id": client_id, **dict(self.variant.streams_config)},
            jvm_options=[f"-Dorg.slf4j.simpleLogger.log.{name}=info" for name in STREAMS_LOGGERS],
        )
        return argv, self.workdir, dict(os.environ)


class Feeder:
    """Input at a steady rate: JSON values {"id", "user"} keyed by the user, users in turn."""

    def __init__(self, bootstrap: str, rate: int) -> None:
        self.producer = Producer(
            {"bootstrap.servers": bootstrap, "linger.ms": 5, "partitioner": "murmur2_random"}
        )
        self.rate = rate
        self.sent = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        start = time.monotonic()
        while not self._stop.is_set():
            due = int((time.monotonic() - start) * self.rate)
            while self.sent < due:
                user = f"user-{self.sent % USERS:05d}"
                value = json.dumps({"id": self.sent, "user": user}, separators=(",", ":"))
                try:
                    self.producer.produce(INPUT_TOPIC, value.encode(), user.encode())
                except BufferError:
                    break
                self.sent += 1
            self.producer.poll(0)
            self._stop.wait(0.02)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)
        self.producer.flush(30)


class OutputWatch:
    """A read_committed consumer of every output partition, from its end: when each partition
    last got a record, and, once `mark` is set, its first record at or past the mark."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": "bench-failover-watch",
                "isolation.level": "read_committed",
                "enable.auto.commit": False,
                "fetch.wait.max.ms": 20,
            }
        )
        self.topic = topic
        self.consumer.assign(
            [TopicPartition(topic, p, OFFSET_END) for p in range(INPUT_PARTITIONS)]
        )
        self.last: dict[int, float] = {}
        self.marks: dict[int, int] = {}
        self.first: dict[int, float] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            for msg in self.consumer.consume(1000, timeout=0.05):
                if msg.error() is not None:
                    continue
                now, p, offset = time.monotonic(), int(msg.partition() or 0), int(msg.offset() or 0)
                with self._lock:
                    self.last[p] = now
                    mark = self.marks.get(p)
                    if mark is not None and offset >= mark and p not in self.first:
                        self.first[p] = now

    def mark(self, offsets: Mapping[int, int]) -> None:
        with self._lock:
            self.marks.update(offsets)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(10)
        self.consumer.close()


def _members(b: Broker, group: str, repartition: str) -> dict[int, list[int]]:
    """Instance number -> the repartition partitions it owns, from the group's description
    (empty while the group cannot be described)."""
    try:
        description = b.admin.describe_consumer_groups([group], request_timeout=10)[group].result(
            15
        )
    except KafkaException:
        return {}
    owned: dict[int, list[int]] = {}
    for member in description.members:
        found = CLIENT_ID.search(member.client_id or "")
        if found is None or member.assignment is None:
            continue
        parts = [
            tp.partition for tp in member.assignment.topic_partitions if tp.topic == repartition
        ]
        owned[int(found.group(1))] = sorted(parts)
    return owned


# The group must keep one balanced assignment this long before the kill (and every output
# partition get new output at its end): the instances' start-up rebalances and restores are over.
SETTLED_S = 5.0


def _balanced(owned: Mapping[int, list[int]]) -> bool:
    """Three members with two repartition partitions each."""
    shares = sorted(len(p) for p in owned.values())
    return shares == [INPUT_PARTITIONS // INSTANCES] * INSTANCES


def _fresh(last_output: Mapping[int, float], since: float) -> bool:
    """New output on every partition after `since`."""
    return all(last_output.get(p, -1e9) > since for p in range(INPUT_PARTITIONS))


_KGEN_ASSIGNED = re.compile(r"assigned: (.*)")
_KGEN_WAITED = re.compile(r"waited ([\d.]+) s for the committed offsets")
_KGEN_READY = re.compile(
    r"(\d+) store partitions ready in ([\d.]+) s: opened in ([\d.]+) s, (\d+) changelog "
    r"records restored in ([\d.]+) s"
)
_STREAMS_RESTORED = re.compile(
    r"Finished restoring changelog (\S+) to store \S+ with a total number of (\d+) records"
)


@dataclass
class Observed:
    """The phases read from the instances' lines after the kill."""

    phases: list[Phase] = field(default_factory=list)
    detected_s: float | None = None
    assigned_s: float | None = None
    offsets_wait_s: float = 0.0
    open_s: float | None = None
    restore_s: float | None = None
    restored: int = 0
    ready_s: float | None = None


def observe(
    system: str,
    lines: Iterable[tuple[int, float, str]],
    killed_at: float,
    dead: Iterable[int],
    *,
    repartition: str,
    changelog: str,
) -> Observed:
    """The phases of a failover from (instance, time, line) of the instances that live on (a
    restarted one included), after `killed_at`."""
    dead_names = {f"{repartition}-{p}" for p in dead}
    dead_changelogs = {f"{changelog}-{p}" for p in dead}
    seen = Observed()
    took: set[int] = set()  # instances that were given dead partitions

    def note(at: float, what: str) -> float:
        seconds = at - killed_at
        seen.phases.append(Phase(round(seconds, 2), what))
        return seconds

    for instance, at, line in sorted(lines, key=lambda x: x[1]):
        if at < killed_at:
            continue
        if system == "kgen":
            assigned = _KGEN_ASSIGNED.search(line)
            if assigned is not None or "revoked: " in line:
                if seen.detected_s is None:
                    seen.detected_s = note(at, f"instance {instance}: rebalance")
            if assigned is not None and dead_names & set(assigned.group(1).split(", ")):
                took.add(instance)
                seen.assigned_s = note(at, f"instance {instance}: dead partitions assigned")
            waited = _KGEN_WAITED.search(line)
            if waited is not None and instance in took:
                seen.offsets_wait_s = max(seen.offsets_wait_s, float(waited.group(1)))
                note(at, f"instance {instance}: waited {waited.group(1)} s for committed offsets")
            ready = _KGEN_READY.search(line)
            if ready is not None and instance in took:
                seen.ready_s = note(at, f"instance {instance}: {ready.group(0)}")
                seen.open_s = max(seen.open_s or 0.0, float(ready.group(3)))
                seen.restore_s = max(seen.restore_s or 0.0, float(ready.group(5)))
                seen.restored += int(ready.group(4))
        else:
            if "State transition from RUNNING to REBALANCING" in line and seen.detected_s is None:
                seen.detected_s = note(at, f"instance {instance}: REBALANCING")
            restored = _STREAMS_RESTORED.search(line)
            if restored is not None and restored.group(1) in dead_changelogs:
                seen.restored += int(restored.group(2))
                seen.restore_s = note(at, f"instance {instance}: restored {restored.group(1)}")
            if "State transition from REBALANCING to RUNNING" in line:
                seen.ready_s = note(at, f"instance {instance}: RUNNING")
    return seen


def _wait(what: str, done: Callable[[], bool], timeout_s: float, alive: Callable[[], str]) -> None:
    """Until `done()`, bounded; `alive()` names an instance that exited, if one did."""
    deadline = time.monotonic() + timeout_s
    while not done():
        dead = alive()
        if dead:
            raise RuntimeError(f"{what}: {dead}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout_s:.0f} s")
        time.sleep(0.2)


def _preload(b: Broker, d: Deployment, keys: int, exited: Callable[[], str]) -> float:
    """Count `keys` distinct keys into the stores: one input record per key (its `user`), then
    wait until the group has committed the input and the repartition topic to their ends."""
    start = time.monotonic()
    data.produce_keys(b.bootstrap, INPUT_TOPIC, keys, 1, 120)
    limit = 120 + keys / 1_000
    parts = range(INPUT_PARTITIONS)

    def input_done() -> bool:
        return sum(b.committed_offsets(d.group, {INPUT_TOPIC: parts}).values()) >= keys

    _wait("the preload was not processed", input_done, limit, exited)
    targets: dict[tuple[str, int], int] | None = None

    def counted() -> bool:
        nonlocal targets
        if targets is None:
            targets = _internal_ends(b, (d.repartition,))
            return False
        seen = b.committed_offsets(d.group, {d.repartition: parts})
        return all(seen[tp] >= end for tp, end in targets.items())

    _wait("the preload was not counted", counted, limit, exited)
    return time.monotonic() - start


def one_round(
    b: Broker, deployment: Deployment, config: FailoverConfig, round_no: int, log: IO[str]
) -> FailoverResult:
    d, variant = deployment, deployment.variant
    # Cold: topics, group, internal topics (the apps create them), local state.
    b.reset(
        {INPUT_TOPIC: INPUT_PARTITIONS, d.output: INPUT_PARTITIONS}, [d.group], delete=d.internal
    )
    for i in range(INSTANCES):
        shutil.rmtree(d.state_dir(i), ignore_errors=True)

    watch = OutputWatch(b.bootstrap, d.output)
    instances = [Instance(*d.command(i, b.bootstrap), log) for i in range(INSTANCES)]
    feeder = Feeder(b.bootstrap, config.rate)
    killed = False

    def exited() -> str:
        gone = [
            f"instance {i} exited with {inst.proc.returncode}"
            for i, inst in enumerate(instances)
            if inst.proc.poll() is not None and (i != VICTIM or not killed)
        ]
        return "; ".join(gone)

    try:
        started = time.monotonic()
        owned: dict[int, list[int]] = {}
        since = started

        def settled(fresh: bool) -> bool:
            """One balanced assignment for SETTLED_S (and, with `fresh`, new output on every
            partition in the last 2 s)."""
            nonlocal owned, since
            now, current = time.monotonic(), _members(b, d.group, d.repartition)
            if current != owned or not _balanced(current):
                owned, since = current, now
                return False
            return now - since >= SETTLED_S and (not fresh or _fresh(dict(watch.last), now - 2.0))

        # The stores are filled only once the partitions have settled: no instance holds a
        # copy of a store it does not own (no standby, not even a stale one).
        _wait("the group never settled", lambda: settled(False), 120, exited)
        before = dict(owned)
        say(f"  settled after {time.monotonic() - started:.1f} s: {owned}")
        preload_s = _preload(b, d, config.keys, exited)
        say(f"  {config.keys:,} keys counted into the stores in {preload_s:.1f} s")
        feeder.start()
        _wait("the group never settled", lambda: settled(True), 120, exited)
        if variant.catch_up_s:
            say(f"  {variant.catch_up_s:.0f} s for the standby copies to catch up")
            time.sleep(variant.catch_up_s)
        caveat = (
            ""
            if owned == before
            else f"partitions moved after the stores were filled ({before} -> {owned}): "
            "an instance may hold a copy of a dead partition's store"
        )
        dead = owned[VICTIM]
        load = os.getloadavg()
        killed_at = time.monotonic()
        instances[VICTIM].kill()
        killed = True
        if variant.restart:
            instances[VICTIM].restart()
        # Past what the dead instance committed: the last stable offsets a second later.
        time.sleep(1.0)
        ends = b.end_offsets(d.output, stable=True)
        watch.mark({p: ends[p] for p in dead})
        try:
            _wait(
                "no new output for every dead partition",
                lambda: all(p in watch.first for p in dead),
                config.timeout_s,
                exited,
            )
            note = ""
        except (TimeoutError, RuntimeError) as exc:
            note = str(exc)
        outputs = {p: (watch.first[p] - killed_at if p in watch.first else None) for p in dead}
    finally:
        feeder.stop()
        for inst in instances:
            inst.stop()
        for inst in instances:
            inst.wait_stopped()
        watch.close()
    lines = [
        (i, at, line)
        for i, inst in enumerate(instances)
        for at, line in inst.lines
        if i != VICTIM or variant.restart
    ]
    seen = observe(
        variant.system, lines, killed_at, dead, repartition=d.repartition, changelog=d.changelog
    )
    done = [s for s in outputs.values() if s is not None]
    for p, s in sorted(outputs.items()):
        if s is not None:
            seen.phases.append(Phase(round(s, 2), f"output partition {p}: new committed output"))
    return FailoverResult(
        variant=variant.name,
        round=round_no,
        keys=config.keys,
        dead_partitions=dead,
        outputs=outputs,
        seconds=max(done) if done and len(done) == len(dead) else None,
        detected_s=seen.detected_s,
        assigned_s=seen.assigned_s,
        offsets_wait_s=seen.offsets_wait_s,
        open_s=seen.open_s,
        restore_s=seen.restore_s,
        restored=seen.restored,
        ready_s=seen.ready_s,
        load=load,
        phases=sorted(seen.phases, key=lambda ph: ph.seconds),
        note=note,
        caveat=caveat,
        preload_s=preload_s,
    )


def run(config: FailoverConfig) -> list[FailoverResult]:
    unknown = [v for v in config.variants if v not in VARIANTS]
    if unknown:
        raise ValueError(f"unknown variants {unknown}: of {', '.join(VARIANTS)}")
    started = time.perf_counter()
    results: list[FailoverResult] = []
    with (
        tempfile.TemporaryDirectory(prefix="kgen-bench-failover-") as tmp,
        Broker(config.bootstrap) as b,
    ):
        workdir = Path(tmp)
        say(f"broker {b.bootstrap}; work dir {workdir}")
        variants = [VARIANTS[name] for name in config.variants]
        app = None
        if any(v.system == "kgen" for v in variants):
            app = build_app(WORKLOADS["count"].spec, workdir / "app")
        jar = None
        if any(v.system == "kafka-streams" for v in variants):
            jar = kafka_streams.build()
        b.warm_up()
        log_path = workdir / "instances.log"
        with log_path.open("w") as log:
            for round_no in range(1, config.repeat + 1):
                for variant in variants:
                    say(f"round {round_no}, {variant.name}:")
                    deployment = Deployment(variant, workdir, app, jar)
                    try:
                        result = one_round(b, deployment, config, round_no, log)
                    except (TimeoutError, RuntimeError, KafkaException) as exc:
                        result = FailoverResult(
                            variant.name,
                            round_no,
                            config.keys,
                            [],
                            {},
                            None,
                            None,
                            None,
                            0.0,
                            None,
                            None,
                            0,
                            None,
                            os.getloadavg(),
                            note=str(exc),
                        )
                    results.append(result)
                    say(f"  {summary_line(result)}")
        info = {
            "keys": f"{config.keys:,} in the store before the kill (a third per instance), "
            "counted from as many input records once the group had settled",
            "input": f"{config.rate:,} records/s during the whole round, {USERS:,} users",
            "broker": b.description,
            **report.machine(),
            "kgen app (sha256 of the package files)": "-"
            if app is None
            else package_digest(app.root / app.package),
            "kafka streams": f"{kafka_streams.KAFKA_STREAMS_VERSION}, exactly_once_v2, one thread",
        }
        wall = time.perf_counter() - started
        text = markdown(results, info, config, wall, log_path.read_text()[-12_000:])
    print(table(results))
    if config.results_dir is not None:
        say(f"results: {report.write_results(text, config.results_dir)}")
    if config.json_path is not None:
        config.json_path.write_text(
            json.dumps({"machine": info, "runs": [asdict(r) for r in results]}, indent=2)
        )
    say(f"whole run: {wall:.0f} s")
    return results


def _s(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def summary_line(r: FailoverResult) -> str:
    if not r.ok:
        return f"FAILED: {r.note or 'no output'}; outputs {r.outputs}"
    return (
        f"failover {r.seconds:.1f} s (rebalance seen {_s(r.detected_s)} s, assigned "
        f"{_s(r.assigned_s)} s, offsets wait {r.offsets_wait_s:.1f} s, stores open "
        f"{_s(r.open_s)} s, restore {_s(r.restore_s)} s of {r.restored:,} records); "
        f"load {r.load[0]:.1f}" + (f"; CAVEAT: {r.caveat}" if r.caveat else "")
    )


def table(results: list[FailoverResult]) -> str:
    """Per variant: the median failover time and its phases, over the rounds that worked."""
    rows = [
        "| variant | failover s (median) | min .. max | rebalance seen s | dead partitions "
        "assigned s | offsets wait s | stores open s | restore s | records restored | rounds |",
        "|" + " --- |" * 10,
    ]
    for name in dict.fromkeys(r.variant for r in results):
        tried = [r for r in results if r.variant == name]
        runs = [r for r in tried if r.ok]
        if not runs:
            rows.append(f"| {name} | failed | | | | | | | | 0/{len(tried)} |")
            continue

        def med(values: Iterable[float | None]) -> str:
            got = [v for v in values if v is not None]
            return _s(statistics.median(got)) if got else "-"

        times = [r.seconds for r in runs if r.seconds is not None]
        rows.append(
            f"| {name} | **{statistics.median(times):.1f}** | {min(times):.1f} .. "
            f"{max(times):.1f} | {med(r.detected_s for r in runs)} | "
            f"{med(r.assigned_s for r in runs)} | {med(r.offsets_wait_s for r in runs)} | "
            f"{med(r.open_s for r in runs)} | {med(r.restore_s for r in runs)} | "
            f"{statistics.median(r.restored for r in runs):,.0f} | {len(runs)}/{len(tried)} |"
        )
    return "\n".join(rows)


def markdown(
    results: list[FailoverResult],
    info: Mapping[str, str],
    config: FailoverConfig,
    wall_s: float,
    log_tail: str,
) -> str:
    variants = [VARIANTS[name] for name in config.variants]
    rounds: list[str] = []
    for r in results:
        rounds += [
            "",
            f"### {r.variant}, round {r.round}: "
            + (f"{r.seconds:.1f} s" if r.ok else f"FAILED ({r.note})"),
            "",
            f"Dead partitions {r.dead_partitions}; load average at the kill "
            f"{r.load[0]:.2f} {r.load[1]:.2f} {r.load[2]:.2f}; keys counted into the stores in "
            f"{_s(r.preload_s)} s." + (f" Caveat: {r.caveat}." if r.caveat else ""),
            "",
            "| s after the kill | what |",
            "| --- | --- |",
            *(f"| {ph.seconds:.2f} | {ph.what} |" for ph in r.phases),
        ]
    return "\n".join(
        [
            f"# Failover benchmark results, {dt.date.today().isoformat()}",
            "",
            f"`{config.command}` (whole run: {wall_s:.0f} s)",
            "",
            *(f"- {k}: {v}" for k, v in info.items()),
            *(f"- `{v.name}`: {v.description}" for v in variants),
            "",
            "## Summary",
            "",
            table(results),
            "",
            "## Rounds",
            *rounds,
            "",
            "## The instances' last log lines",
            "",
            "```",
            log_tail,
            "```",
            "",
        ]
    )
