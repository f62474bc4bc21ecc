"""The bench harness's fair-comparison parts without a broker: the warm window (from the third
of the input on) and CPU per million records, the tuned Kafka Streams system, Quix at kgen's
commit interval, the copy baseline without librdkafka's 1 s fetch back-off, and `--pin`'s CPU
affinity."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench import report
from bench.measure import (
    Pinning,
    RunFailed,
    RunResult,
    _Progress,
    affinity,
    descendants,
    peak_rss_kib,
    process_cpu_s,
)
from bench.systems import Copy, KafkaStreamsTuned, Quix100, make_systems
from bench.workloads import WORKLOADS


def test_the_warm_window_runs_from_a_third_of_the_input_to_the_end() -> None:
    progress = _Progress(elapsed=10.0, cpu_s=8.0, warm_at=4.0, warm_done=1_000, warm_cpu_s=3.0)
    assert progress.per_million(3_000) == (2_000 / 6.0, 5.0, 2_000)
    # A run that ended before its warm window began has no warm figures.
    assert _Progress(elapsed=1.0).per_million(3_000) == (None, None, None)


def _run(system: str, round_no: int, rate: float, warm: float | None) -> RunResult:
    return RunResult(
        system=system,
        workload="filter",
        round=round_no,
        records=3_000_000,
        seconds=3_000_000 / rate,
        startup_s=1.0,
        rate=rate,
        peak_rss_mib=100.0,
        cpu_s=6.0,
        broker_cpu_s=None,
        machine_busy=0.5,
        exit_code=0,
        expected=1,
        written=1,
        verified=True,
        warm_rate=warm,
        warm_cpu_s=None if warm is None else 2.0,
        warm_records=None if warm is None else 2_000_000,
    )


def test_the_summary_has_warm_rates_against_kgen_and_cpu_per_million() -> None:
    results = [
        _run("kgen", 1, 100_000.0, 200_000.0),
        _run("kafka-streams", 1, 50_000.0, 300_000.0),
        _run("kgen", 2, 100_000.0, 100_000.0),
        _run("kafka-streams", 2, 50_000.0, 150_000.0),
    ]
    by_system = {s.system: s for s in report.summarize(results)}
    streams = by_system["kafka-streams"]
    assert streams.vs_kgen_median == 0.5  # cold: half kgen's rate
    assert streams.warm_vs_kgen_median == 1.5  # warm: 1.5x kgen's, round by round
    assert streams.cpu_per_m_median == 2.0  # 6 CPU-s over 3M records
    assert streams.warm_cpu_per_m_median == 1.0  # 2 CPU-s over the 2M warm records
    table = report.table(report.summarize(results))
    assert "warm records/s" in table and "CPU s / M, warm" in table


def test_kafka_streams_tuned_runs_two_threads_with_big_batches(tmp_path: Path) -> None:
    system = KafkaStreamsTuned()
    system.runtime, system.workdir = Path("streams.jar"), tmp_path
    argv = system.launch(WORKLOADS["count"], "127.0.0.1:9092").argv
    assert argv[:3] == ["java", "-Xmx1g", "-jar"]
    for setting in ("num.stream.threads=2", "producer.batch.size=1048576", "producer.linger.ms=10"):
        assert argv[argv.index(setting) - 1] == "--config"


def test_quix_at_kgens_commit_interval_unless_a_common_one_is_given(tmp_path: Path) -> None:
    system = Quix100()
    system.runtime, system.workdir = Path("python"), tmp_path
    argv = system.launch(WORKLOADS["filter"], "127.0.0.1:9092").argv
    assert argv[argv.index("--commit-interval-ms") + 1] == "100"
    system.commit_interval_ms = 1000
    argv = system.launch(WORKLOADS["filter"], "127.0.0.1:9092").argv
    assert argv[argv.index("--commit-interval-ms") + 1] == "1000"


def test_the_copy_baseline_fetches_again_after_10_ms_not_1_s() -> None:
    argv = Copy().launch(WORKLOADS["filter"], "127.0.0.1:9092").argv
    assert argv[argv.index("fetch.queue.backoff.ms=10") - 1] == "-X"
    # A setting given on the command line comes after it, so it wins.
    argv = Copy(["fetch.queue.backoff.ms=500"]).launch(WORKLOADS["filter"], "x:1").argv
    assert argv.index("fetch.queue.backoff.ms=500") > argv.index("fetch.queue.backoff.ms=10")


def test_cpu_and_rss_cover_a_supervisors_workers() -> None:
    """A parent that only waits and a child that spins (as `--workers` runs): the CPU measured
    for the parent's pid includes the child's, and so does the peak RSS."""
    spin = (
        "import time\nend = time.process_time() + 1.5\n"
        "while time.process_time() < end: pass\ntime.sleep(30)"
    )
    parent = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import subprocess, sys; subprocess.run([sys.executable, '-c', {spin!r}])",
        ]
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            children = descendants(parent.pid)
            cpu = process_cpu_s(parent.pid)
            assert cpu is not None
            if children and cpu >= 1.5:
                break
            assert time.monotonic() < deadline, (children, cpu)
            time.sleep(0.1)
        assert len(children) == 1
        own = Path(f"/proc/{parent.pid}/status").read_text()
        parent_hwm = int(
            next(line for line in own.splitlines() if line.startswith("VmHWM:")).split()[1]
        )
        total = peak_rss_kib(parent.pid)
        assert total is not None and total > parent_hwm
    finally:
        parent.kill()
        parent.wait()
        for child in children:
            subprocess.run(["kill", "-9", str(child)], check=False)


def test_kgen_patched_runs_the_patch_beside_an_unpatched_kgen(tmp_path: Path) -> None:
    """With `kgen-patched` among the systems only it gets the diffs (kgen is the baseline in
    the same rounds); without it every kgen app does, as before; without a diff it is
    refused."""
    diff = tmp_path / "change.patch"
    both = make_systems(["kgen", "kgen-patched", "kgen-alo"], patches=[diff])
    assert [(s.name, getattr(s, "patches", None)) for s in both] == [
        ("kgen", ()),
        ("kgen-patched", (diff,)),
        ("kgen-alo", ()),
    ]
    alone = make_systems(["kgen", "kgen-alo"], patches=[diff])
    assert [getattr(s, "patches", None) for s in alone] == [(diff,), (diff,)]
    with pytest.raises(ValueError, match="kgen-patched needs --kgen-patch"):
        make_systems(["kgen", "kgen-patched"])


def test_pinning_gives_the_broker_the_first_cpu_and_the_system_the_rest() -> None:
    pinning = Pinning.split({3, 0, 1, 2})
    assert (pinning.broker, pinning.system) == (frozenset({0}), frozenset({1, 2, 3}))
    assert "CPU 0" in pinning.describe() and "CPU 1,2,3" in pinning.describe()
    with pytest.raises(RunFailed, match="two CPUs"):
        Pinning.split({5})


def test_a_process_started_inside_affinity_runs_on_those_cpus_only() -> None:
    mine = os.sched_getaffinity(0)
    one = frozenset({max(mine)})
    show = [sys.executable, "-c", "import os; print(sorted(os.sched_getaffinity(0)))"]
    with affinity(one):
        inside = subprocess.run(show, capture_output=True, text=True, check=True).stdout
    after = subprocess.run(show, capture_output=True, text=True, check=True).stdout
    assert inside.strip() == str(sorted(one))
    # The harness itself goes back to where it was.
    assert os.sched_getaffinity(0) == mine
    assert after.strip() == str(sorted(mine))
