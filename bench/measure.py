"""One measured run: launch a system cold, wait until its group has committed the whole input,
stop it, and check what it wrote."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench.broker import Broker
from bench.data import Digest
from bench.systems import System, child_env
from bench.workloads import INPUT_TOPIC, Workload
from kgen import topics

# How often the harness asks for the group's committed offsets: the end time is known to
# within this, next to runs of seconds.
POLL_S = 0.05
STOP_TIMEOUT_S = 60.0
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass
class RunResult:
    system: str
    workload: str
    round: int
    records: int
    seconds: float  # from launch to the last input offset committed
    startup_s: float  # from launch to the first offset committed
    rate: float  # input records per second, end to end
    peak_rss_mib: float  # VmHWM of the process, just before it was stopped
    cpu_s: float  # user + system CPU time of the process (all its threads)
    broker_cpu_s: float | None  # the broker JVM's CPU time over the same interval, if known
    machine_busy: float  # share of all cores busy over the interval (0..1)
    exit_code: int
    expected: int
    written: int
    verified: bool
    note: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class RunFailed(Exception):
    pass


def process_cpu_s(pid: int | None) -> float | None:
    """User + system CPU seconds of a live process (all threads), from /proc/<pid>/stat."""
    if pid is None:
        return None
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name may hold spaces: count fields after its closing parenthesis.
    # utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS


def peak_rss_kib(pid: int) -> int | None:
    """VmHWM (peak resident set) of a live process, from /proc/<pid>/status."""
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


def run_once(
    broker: Broker,
    system: System,
    *,
    workload: Workload,
    expected: Digest,
    total: int,
    partitions: list[int],
    round_no: int,
    log: Path,
    timeout_s: float,
) -> RunResult:
    """Measure one cold run of `system` on `workload`; the input topic holds `total` records."""
    group, output = system.group(workload), system.output_topic(workload)
    broker.reset({output: len(partitions)}, [group])
    launch = system.launch(workload, broker.bootstrap)
    with log.open("ab") as out:
        out.write(f"\n=== round {round_no}: {' '.join(launch.argv)}\n".encode())
        out.flush()
        broker_cpu0 = process_cpu_s(broker.pid)
        busy0, total0 = machine_ticks()
        start = time.perf_counter()
        proc = subprocess.Popen(
            launch.argv, cwd=launch.cwd, env=child_env(launch), stdout=out, stderr=out
        )
        try:
            progress = _wait_done(
                broker,
                proc,
                group=group,
                partitions=partitions,
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
    got = Digest()
    for rec in topics.read_committed(broker.bootstrap, output, timeout_s=60 + total / 5000):
        got.add(rec.key, rec.value)
    verified = code == 0 and got == expected
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
        expected=expected.count,
        written=got.count,
        verified=verified,
        note="" if verified else f"exit {code}; expected {expected}, got {got}",
    )


def _wait_done(
    broker: Broker,
    proc: subprocess.Popen[bytes],
    *,
    group: str,
    partitions: list[int],
    total: int,
    start: float,
    timeout_s: float,
) -> _Progress:
    """Poll the group's committed offsets until they cover the input; sample the process's
    peak RSS and CPU time on the way (the last sample is taken after the end is seen, while
    the process still runs)."""
    progress = _Progress()
    deadline = start + timeout_s
    while progress.elapsed is None:
        if time.perf_counter() > deadline:
            raise RunFailed(f"not done within {timeout_s:.0f} s")
        if proc.poll() is not None:
            raise RunFailed(f"exited early with {proc.returncode}")
        done = broker.committed(group, INPUT_TOPIC, partitions)
        now = time.perf_counter()
        if progress.startup is None and done > 0:
            progress.startup = now - start
        if done >= total:
            progress.elapsed = now - start
        progress.rss_kib = max(progress.rss_kib, peak_rss_kib(proc.pid) or 0)
        progress.cpu_s = process_cpu_s(proc.pid) or progress.cpu_s
        if progress.elapsed is None:
            time.sleep(POLL_S)
    return progress


def _tail(path: Path, chars: int = 3000) -> str:
    return path.read_text(errors="replace")[-chars:]
