"""One measured run: launch a system cold, wait until its group has committed the whole input
(and, for an app with repartition topics, those too), stop it, and check what it wrote."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from bench.broker import Broker
from bench.data import CountTable, Output, empty_like, matches
from bench.systems import System, child_env
from bench.workloads import INPUT_TOPIC, Workload
from kgen import topics

# How often the harness asks for the group's committed offsets: the end time is known to
# within this, next to runs of seconds.
POLL_S = 0.05
STOP_TIMEOUT_S = 60.0
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
# The warm window starts once this share of the input is committed: the start-up, the JIT's
# warm-up and the first fetches are behind every system by then.
WARM_SHARE = 1 / 3


@dataclass
class RunResult:
    system: str
    workload: str
    round: int
    records: int
    seconds: float  # from launch to the last input offset committed
    startup_s: float  # from launch to the first offset committed
    rate: float  # input records per second, end to end
    peak_rss_mib: float  # VmHWM of the process (plus its children's), just before it was stopped
    cpu_s: float  # user + system CPU time of the process (all its threads) and its children
    broker_cpu_s: float | None  # the broker JVM's CPU time over the same interval, if known
    machine_busy: float  # share of all cores busy over the interval (0..1)
    exit_code: int
    expected: int  # records the output must hold; for a table of counts, its keys
    written: int  # records read from the output
    verified: bool
    note: str = ""
    keys: int | None = None  # for a table of counts: the keys of the table read
    # Warm: from the first poll at which the group had committed a third of the input
    # (WARM_SHARE) to the end; the rate of that window and the process's CPU time in it.
    # None when the run was too short to see that moment before its end.
    warm_rate: float | None = None
    warm_cpu_s: float | None = None
    warm_records: int | None = None
    # "default" (each system's own) or the common interval given to every system, e.g. "100 ms"
    commit_interval: str = "default"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class RunFailed(Exception):
    pass


def process_cpu_s(pid: int | None) -> float | None:
    """User + system CPU seconds of a live process (all threads) and of its live descendants
    (a `--workers` supervisor's workers), from /proc/<pid>/stat; None if `pid` is gone."""
    if pid is None:
        return None
    own = _cpu_s(pid)
    if own is None:
        return None
    return own + sum(_cpu_s(child) or 0.0 for child in descendants(pid))


def _cpu_s(pid: int) -> float | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name may hold spaces: count fields after its closing parenthesis.
    # utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS


def descendants(pid: int) -> list[int]:
    """The live descendants of `pid` (children of every thread, recursively)."""
    found: list[int] = []
    pending = [pid]
    while pending:
        parent = pending.pop()
        try:
            # A process that exits while its threads are listed: glob's scandir fails too.
            lists = list(Path(f"/proc/{parent}/task").glob("*/children"))
        except OSError:
            continue
        for children in lists:
            try:
                pids = [int(child) for child in children.read_text().split()]
            except OSError:
                continue
            found += pids
            pending += pids
    return found


def peak_rss_kib(pid: int) -> int | None:
    """VmHWM (peak resident set) of a live process plus those of its live descendants: for a
    process tree (a `--workers` app) an upper bound of its peak, as the peaks may not meet."""
    own = _peak_rss_kib(pid)
    if own is None:
        return None
    return own + sum(_peak_rss_kib(child) or 0 for child in descendants(pid))


def _peak_rss_kib(pid: int) -> int | None:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return None


def machine_ticks() -> tuple[int, int]:
    """(busy, total) CPU ticks of the whole machine since boot, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    idle = values[3] + values[4]  # idle + iowait
    return sum(values) - idle, sum(values)


@dataclass
class _Progress:
    startup: float | None = None
    elapsed: float | None = None
    rss_kib: int = 0
    cpu_s: float = 0.0
    # When the warm window began: seconds from launch, input records committed, CPU seconds.
    warm_at: float | None = None
    warm_done: int = 0
    warm_cpu_s: float = 0.0

    def per_million(self, total: int) -> tuple[float | None, float | None, int | None]:
        """(warm rate, warm CPU seconds, warm records), or Nones without a warm window."""
        if self.warm_at is None or self.elapsed is None or self.elapsed <= self.warm_at:
            return None, None, None
        records = total - self.warm_done
        return records / (self.elapsed - self.warm_at), self.cpu_s - self.warm_cpu_s, records


@dataclass(frozen=True)
class Pinning:
    """`--pin`: the broker, the harness and its clients on `broker` CPUs, each system under
    test on `system` CPUs, so that they do not take each other's cores."""

    broker: frozenset[int]
    system: frozenset[int]

    @classmethod
    def split(cls, cpus: set[int]) -> Pinning:
        """The first CPU this process may use for the broker, the others for the system."""
        if len(cpus) < 2:
            raise RunFailed(f"--pin needs two CPUs at least; this process may use {sorted(cpus)}")
        first = min(cpus)
        return cls(frozenset({first}), frozenset(cpus - {first}))

    def describe(self) -> str:
        return (
            f"broker, harness and its clients on CPU {_cpu_list(self.broker)}; "
            f"each system under test on CPU {_cpu_list(self.system)} (taskset-style affinity)"
        )


def _cpu_list(cpus: frozenset[int]) -> str:
    return ",".join(str(c) for c in sorted(cpus))


@contextmanager
def affinity(cpus: frozenset[int] | None) -> Iterator[None]:
    """Processes started inside run on `cpus`, with every thread they make: a child inherits
    the affinity of the thread that forks it (this one), not the whole process's."""
    if cpus is None:
        yield
        return
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, cpus)
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


def run_once(
    broker: Broker,
    system: System,
    *,
    workload: Workload,
    expected: Output,
    total: int,
    partitions: list[int],
    round_no: int,
    log: Path,
    timeout_s: float,
    cpus: frozenset[int] | None = None,
) -> RunResult:
    """Measure one cold run of `system` on `workload`; the input topic holds `total` records.
    `cpus`: the CPUs the system runs on (None: any)."""
    group, output = system.group(workload), system.output_topic(workload)
    # Cold: an empty output topic, no committed offsets, no internal topics, no local state.
    broker.reset({output: len(partitions)}, [group], delete=system.internal_topics(workload))
    system.clean(workload)
    launch = system.launch(workload, broker.bootstrap)
    with log.open("ab") as out:
        out.write(f"\n=== round {round_no}: {' '.join(launch.argv)}\n".encode())
        out.flush()
        broker_cpu0 = process_cpu_s(broker.pid)
        busy0, total0 = machine_ticks()
        start = time.perf_counter()
        with affinity(cpus):
            proc = subprocess.Popen(
                launch.argv, cwd=launch.cwd, env=child_env(launch), stdout=out, stderr=out
            )
        try:
            progress = _wait_done(
                broker,
                proc,
                group=group,
                partitions=partitions,
                internal=system.internal_sources(workload),
                total=total,
                start=start,
                timeout_s=timeout_s,
            )
            busy1, total1 = machine_ticks()
            broker_cpu1 = process_cpu_s(broker.pid)
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(STOP_TIMEOUT_S)
        except (RunFailed, subprocess.TimeoutExpired) as exc:
            raise RunFailed(f"{system.name}: {exc}; log {log}:\n{_tail(log)}") from exc
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(STOP_TIMEOUT_S)
    assert progress.elapsed is not None
    warm_rate, warm_cpu_s, warm_records = progress.per_million(total)
    # Read in offset order per partition: a table's latest value per key is its last update.
    got = empty_like(expected)
    for rec in topics.read_committed(broker.bootstrap, output, timeout_s=60 + total / 5000):
        got.add(rec.key, rec.value)
    verified = code == 0 and matches(got, expected)
    if verified:
        note = ""
    elif isinstance(got, CountTable) and isinstance(expected, CountTable):
        note = f"exit {code}; {got.differences(expected)}"
    else:
        note = f"exit {code}; expected {expected}, got {got}"
    return RunResult(
        system=system.name,
        workload=workload.name,
        round=round_no,
        records=total,
        seconds=progress.elapsed,
        startup_s=progress.startup or progress.elapsed,
        rate=total / progress.elapsed,
        peak_rss_mib=progress.rss_kib / 1024,
        cpu_s=progress.cpu_s,
        broker_cpu_s=(
            None if broker_cpu0 is None or broker_cpu1 is None else broker_cpu1 - broker_cpu0
        ),
        machine_busy=(busy1 - busy0) / max(total1 - total0, 1),
        exit_code=code,
        expected=len(expected.counts) if isinstance(expected, CountTable) else expected.count,
        written=got.count,
        verified=verified,
        note=note,
        keys=len(got.counts) if isinstance(got, CountTable) else None,
        warm_rate=warm_rate,
        warm_cpu_s=warm_cpu_s,
        warm_records=warm_records,
    )


def _wait_done(
    broker: Broker,
    proc: subprocess.Popen[bytes],
    *,
    group: str,
    partitions: list[int],
    internal: tuple[str, ...],
    total: int,
    start: float,
    timeout_s: float,
) -> _Progress:
    """Poll the group's committed offsets until they cover the input, and then the `internal`
    topics (repartition topics the system reads back) to their end; sample the process's
    peak RSS and CPU time on the way (the last sample is taken after the end is seen, while
    the process still runs)."""
    progress = _Progress()
    deadline = start + timeout_s
    # The partitions of the internal topics (the app creates them before its first commit).
    internal_parts: dict[str, list[int]] | None = None
    # Once the input is done: where the group must get on each internal partition, worked out
    # in a thread while the polls go on, and the polls' snapshots (time, offsets) till then.
    ends: Future[dict[tuple[str, int], int] | None] | None = None
    snapshots: list[tuple[float, dict[tuple[str, int], int]]] = []
    with ThreadPoolExecutor(max_workers=1) as pool:
        while progress.elapsed is None:
            if time.perf_counter() > deadline:
                raise RunFailed(f"not done within {timeout_s:.0f} s")
            if proc.poll() is not None:
                raise RunFailed(f"exited early with {proc.returncode}")
            if internal and internal_parts is None and progress.startup is not None:
                internal_parts = {t: sorted(broker.end_offsets(t)) for t in internal}
            # One request for the input and the internal topics: a snapshot of one moment.
            offsets = broker.committed_offsets(
                group, {INPUT_TOPIC: partitions, **(internal_parts or {})}
            )
            now = time.perf_counter()
            done = sum(offsets[INPUT_TOPIC, p] for p in partitions)
            if progress.startup is None and done > 0:
                progress.startup = now - start
            if progress.warm_at is None and done >= total * WARM_SHARE:
                progress.warm_at, progress.warm_done = now - start, done
                progress.warm_cpu_s = process_cpu_s(proc.pid) or progress.cpu_s
            if done >= total and not internal:
                progress.elapsed = now - start
            elif done >= total and internal_parts is not None:
                snapshots.append((now, offsets))
                if ends is None:
                    ends = pool.submit(_internal_ends, broker, internal)
                elif ends.done():
                    targets = ends.result()
                    if targets is None:  # a transaction was still open: ask again
                        ends = pool.submit(_internal_ends, broker, internal)
                    else:
                        # Committed offsets only grow: the first snapshot past every end.
                        for moment, seen in snapshots:
                            if all(seen[tp] >= end for tp, end in targets.items()):
                                progress.elapsed = moment - start
                                break
                        snapshots.clear()
            progress.rss_kib = max(progress.rss_kib, peak_rss_kib(proc.pid) or 0)
            progress.cpu_s = process_cpu_s(proc.pid) or progress.cpu_s
            if progress.elapsed is None:
                time.sleep(POLL_S)
    return progress


def _internal_ends(broker: Broker, internal: tuple[str, ...]) -> dict[tuple[str, int], int] | None:
    """`_ends_once` twice, the same both times: one answer of a freshly recreated topic's
    offsets (0 for a few partitions, once, in the restore benchmark) must not end a run."""
    first = _ends_once(broker, internal)
    if first is None or _ends_once(broker, internal) != first:
        return None
    return first


def _ends_once(broker: Broker, internal: tuple[str, ...]) -> dict[tuple[str, int], int] | None:
    """Once the input is committed: the offset just past the last data record of each
    partition of the `internal` topics, which the group commits when it has processed them all
    (the system writes them from the input only, so nothing is added any more).

    None while a transaction on them is still open (its commit markers are written after the
    transaction commits): the next poll asks again. Under exactly-once the last record of a
    partition is the commit marker of its last transaction, which the group's committed offset
    need not pass; under at-least-once there are no markers."""
    ends: dict[tuple[str, int], int] = {}
    probe = {"bootstrap.servers": broker.bootstrap, "group.id": "bench-probe"}
    latest = Consumer(probe)
    stable = Consumer({**probe, "isolation.level": "read_committed"})
    reader = Consumer(
        {
            **probe,
            "enable.partition.eof": True,
            "enable.auto.commit": False,
            "fetch.wait.max.ms": 10,
        }
    )
    try:
        for topic in internal:
            meta = latest.list_topics(topic, timeout=30).topics[topic]
            for p in sorted(meta.partitions):
                high = latest.get_watermark_offsets(TopicPartition(topic, p), 30, cached=False)[1]
                lso = stable.get_watermark_offsets(TopicPartition(topic, p), 30, cached=False)[1]
                if lso != high:
                    return None
                ends[topic, p] = high
        # A consumer skips control records: one that starts at the last offset of a partition
        # gets a record there only when it is data.
        last = [TopicPartition(t, p, end - 1) for (t, p), end in ends.items() if end > 0]
        data = _data_at(reader, last)
        return {
            (t, p): end if end == 0 or (t, p) in data else end - 1 for (t, p), end in ends.items()
        }
    finally:
        for consumer in (latest, stable, reader):
            consumer.close()


def _data_at(consumer: Consumer, positions: list[TopicPartition]) -> set[tuple[str, int]]:
    """Which of the (topic, partition, offset) positions hold a data record."""
    found: set[tuple[str, int]] = set()
    if not positions:
        return found
    consumer.assign(positions)
    wanted = {(tp.topic, tp.partition): tp.offset for tp in positions}
    pending = set(wanted)
    deadline = time.monotonic() + 30
    while pending:
        if time.monotonic() > deadline:
            raise RunFailed(f"cannot read the last records of {sorted(pending)}")
        for msg in consumer.consume(100, timeout=0.1):
            tp = (str(msg.topic()), int(msg.partition() or 0))
            err = msg.error()
            if err is not None and err.code() != KafkaError._PARTITION_EOF:
                raise KafkaException(err)
            if err is None and msg.offset() == wanted[tp]:
                found.add(tp)
            pending.discard(tp)
    return found


def _tail(path: Path, chars: int = 3000) -> str:
    return path.read_text(errors="replace")[-chars:]
