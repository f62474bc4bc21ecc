"""The machine, the summary per system (median and spread over rounds), and the results file."""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import os
import platform
import statistics
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import confluent_kafka

from bench.measure import RunResult

BASELINE = "copy"
# The system every other one is compared with, round by round.
REFERENCE = "kgen"


def machine() -> dict[str, str]:
    """What the numbers depend on: cores, CPU model, memory, Python, client, Java."""
    cpu = "unknown"
    for line in _read("/proc/cpuinfo").splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem_kib = 0
    for line in _read("/proc/meminfo").splitlines():
        if line.startswith("MemTotal:"):
            mem_kib = int(line.split()[1])
    try:
        java = subprocess.run(
            ["java", "-version"], capture_output=True, text=True, timeout=30, check=False
        ).stderr.splitlines()[0]
    except (OSError, IndexError, subprocess.TimeoutExpired):
        java = "unknown"
    return {
        "cpus (nproc)": str(os.cpu_count()),
        "cpu": cpu,
        "memory": f"{mem_kib / 1024 / 1024:.1f} GiB",
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "confluent-kafka": (
            f"{confluent_kafka.__version__} (librdkafka {confluent_kafka.libversion()[0]})"
        ),
        "orjson (the generated apps' JSON)": _version("orjson"),
        "java (broker)": java,
    }


def _version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


@dataclass(frozen=True)
class Summary:
    system: str
    workload: str
    commit_interval: str
    runs: int
    verified: int
    rate_median: float
    rate_min: float
    rate_max: float
    seconds_median: float
    startup_median: float
    rss_median_mib: float
    cpu_median_s: float
    broker_cpu_median_s: float | None
    busy_median: float
    # This system's rate over kgen's in the same round, for each round where both verified,
    # and their median (None for kgen itself, or without kgen).
    vs_kgen_rounds: tuple[float, ...] = ()
    vs_kgen_median: float | None = None
    # Warm (from the third of the input on; see measure.WARM_SHARE): median rate, its ratio
    # to kgen's per round, and CPU seconds per million records, cold (the whole run) and warm.
    warm_rate_median: float | None = None
    warm_vs_kgen_median: float | None = None
    cpu_per_m_median: float | None = None
    warm_cpu_per_m_median: float | None = None


def summarize(results: Sequence[RunResult]) -> list[Summary]:
    """One summary per (commit interval, workload, system) with a verified run, in the order
    they first ran. Only verified runs count: a run whose output was wrong has no meaningful
    time."""
    keys = list(dict.fromkeys((r.commit_interval, r.workload, r.system) for r in results))
    out = []
    for interval, workload, system in keys:
        tried = [
            r
            for r in results
            if (r.commit_interval, r.workload, r.system) == (interval, workload, system)
        ]
        runs = [r for r in tried if r.verified]
        if not runs:
            continue
        rates = [r.rate for r in runs]
        reference = {
            r.round: r.rate
            for r in results
            if (r.commit_interval, r.workload, r.system) == (interval, workload, REFERENCE)
            and r.verified
        }
        per_round = tuple(
            r.rate / reference[r.round]
            for r in runs
            if r.round in reference and system != REFERENCE
        )
        warm = [r for r in runs if r.warm_rate is not None]
        warm_reference = {
            r.round: r.warm_rate
            for r in results
            if (r.commit_interval, r.workload, r.system) == (interval, workload, REFERENCE)
            and r.verified
            and r.warm_rate
        }
        warm_per_round = [
            (r.warm_rate or 0.0) / warm_reference[r.round]
            for r in warm
            if r.round in warm_reference and system != REFERENCE
        ]
        out.append(
            Summary(
                system=system,
                workload=workload,
                commit_interval=interval,
                vs_kgen_rounds=per_round,
                vs_kgen_median=statistics.median(per_round) if per_round else None,
                runs=len(tried),
                verified=len(runs),
                rate_median=statistics.median(rates),
                rate_min=min(rates),
                rate_max=max(rates),
                seconds_median=statistics.median(r.seconds for r in runs),
                startup_median=statistics.median(r.startup_s for r in runs),
                rss_median_mib=statistics.median(r.peak_rss_mib for r in runs),
                cpu_median_s=statistics.median(r.cpu_s for r in runs),
                broker_cpu_median_s=(
                    None
                    if any(r.broker_cpu_s is None for r in runs)
                    else statistics.median(r.broker_cpu_s or 0.0 for r in runs)
                ),
                busy_median=statistics.median(r.machine_busy for r in runs),
                warm_rate_median=_median([r.warm_rate or 0.0 for r in warm]),
                warm_vs_kgen_median=_median(warm_per_round),
                cpu_per_m_median=statistics.median(r.cpu_s / r.records * 1e6 for r in runs),
                warm_cpu_per_m_median=_median(
                    [(r.warm_cpu_s or 0.0) / (r.warm_records or 1) * 1e6 for r in warm]
                ),
            )
        )
    return out


def _median(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None


def ratio(
    summaries: Sequence[Summary], system: str, workload: str, interval: str = "default"
) -> float | None:
    """Median rate of `system` over the baseline's, on the same workload and interval."""
    by = {(s.commit_interval, s.workload, s.system): s for s in summaries}
    if (interval, workload, system) not in by or (interval, workload, BASELINE) not in by:
        return None
    return by[interval, workload, system].rate_median / by[interval, workload, BASELINE].rate_median


def table(summaries: Sequence[Summary]) -> str:
    """The summary as a Markdown table (readable as plain text too). `vs kgen`: the median of
    the per-round ratios of this system's rate to kgen's (each round listed after it)."""
    head = (
        "| commit interval | workload | system | cold records/s (median) | min .. max | "
        "vs kgen (per round) | vs copy | warm records/s | warm vs kgen | "
        "CPU s / M records, cold | CPU s / M, warm | time s | "
        "startup s | peak RSS MiB | CPU s | broker CPU s | machine busy | verified |"
    )
    rows = [head, "|" + " --- |" * 18]
    for s in summaries:
        r = ratio(summaries, s.system, s.workload, s.commit_interval)
        warm_vs = "1.00" if s.system == REFERENCE else _opt(s.warm_vs_kgen_median, ".2f")
        rows.append(
            f"| {s.commit_interval} | {s.workload} | {s.system} | {s.rate_median:,.0f} | "
            f"{s.rate_min:,.0f} .. {s.rate_max:,.0f} | {_vs_kgen(s)} | "
            f"{'' if r is None else f'{r:.2f}'} | {_opt(s.warm_rate_median, ',.0f')} | "
            f"{warm_vs} | {_opt(s.cpu_per_m_median)} | {_opt(s.warm_cpu_per_m_median)} | "
            f"{s.seconds_median:.2f} | "
            f"{s.startup_median:.2f} | {s.rss_median_mib:.0f} | {s.cpu_median_s:.1f} | "
            f"{_opt(s.broker_cpu_median_s)} | {s.busy_median:.0%} | {s.verified}/{s.runs} |"
        )
    return "\n".join(rows)


def _vs_kgen(s: Summary) -> str:
    if s.system == REFERENCE:
        return "1.00"
    if s.vs_kgen_median is None:
        return ""
    rounds = ", ".join(f"{r:.2f}" for r in s.vs_kgen_rounds)
    return f"**{s.vs_kgen_median:.2f}** ({rounds})"


def runs_table(results: Sequence[RunResult]) -> str:
    """Every run, in the order it ran."""
    rows = [
        "| round | commit interval | workload | system | records/s | warm records/s "
        "| time s | startup s "
        "| peak RSS MiB | CPU s | broker CPU s | machine busy | written | verified |",
        "|" + " --- |" * 14,
    ]
    for r in results:
        rows.append(
            f"| {r.round or 'warm-up'} | {r.commit_interval} | {r.workload} | {r.system} | "
            f"{r.rate:,.0f} | {_opt(r.warm_rate, ',.0f')} | {r.seconds:.2f} | "
            f"{r.startup_s:.2f} | {r.peak_rss_mib:.0f} | {r.cpu_s:.1f} | "
            f"{_opt(r.broker_cpu_s)} | {r.machine_busy:.0%} | {_written(r)} | "
            f"{'yes' if r.verified else 'NO: ' + r.note} |"
        )
    return "\n".join(rows)


def _written(r: RunResult) -> str:
    """Records written; for a table of counts, also the keys of the table they make."""
    return f"{r.written:,}" + ("" if r.keys is None else f" ({r.keys:,} keys)")


def _opt(value: float | None, spec: str = ".1f") -> str:
    return "n/a" if value is None else format(value, spec)


def markdown(
    results: Sequence[RunResult],
    info: dict[str, str],
    command: str,
    wall_s: float,
) -> str:
    """The results file: what ran, where, the summary and every run."""
    lines = [
        f"# Benchmark results, {dt.date.today().isoformat()}",
        "",
        f"`{command}` (whole run: {wall_s:.0f} s, preloading and verifying included)",
        "",
        *(f"- {k}: {v}" for k, v in info.items()),
        "",
        "## Summary",
        "",
        table(summarize([r for r in results if r.round > 0])),
        "",
        "## Runs",
        "",
        runs_table(results),
        "",
    ]
    return "\n".join(lines)


def write_results(text: str, directory: Path) -> Path:
    """bench/results/<date>.md, or <date>-2.md, ... when that day already has results;
    written to a .tmp file first so a crash leaves no half file under the final name."""
    directory.mkdir(parents=True, exist_ok=True)
    day = dt.date.today().isoformat()
    path = directory / f"{day}.md"
    n = 2
    while path.exists():
        path = directory / f"{day}-{n}.md"
        n += 1
    tmp = path.with_suffix(".md.tmp")
    tmp.write_text(text)
    tmp.replace(path)
    return path
