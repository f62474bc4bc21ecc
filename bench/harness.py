"""A benchmark run: broker, input, every (workload, system) round, the report."""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from bench import report
from bench.broker import Broker
from bench.data import SEED, Digest, Expected, Output, records
from bench.measure import Pinning, RunFailed, RunResult, affinity, run_once
from bench.systems import Kgen, System, make_systems
from bench.workloads import INPUT_PARTITIONS, INPUT_TOPIC, WORKLOADS, TableInput, Workload
from kgen import topics

RESULTS_DIR = Path(__file__).resolve().parent / "results"


@dataclass(frozen=True)
class Config:
    records: int = 1_000_000
    repeat: int = 3
    systems: tuple[str, ...] = ("kgen", "copy")
    workloads: tuple[str, ...] = ("filter",)
    bootstrap: str | None = None
    results_dir: Path | None = RESULTS_DIR
    json_path: Path | None = None
    seed: int = SEED
    app_args: str = ""
    # librdkafka KEY=VALUE settings for every system's clients (kgen apps: -X).
    client_config: tuple[str, ...] = ()
    # Unified diffs applied to the generated kgen apps (proposed template changes).
    kgen_patches: tuple[Path, ...] = ()
    # Unmeasured rounds first (reported as round 0): the broker JVM warms up on them.
    warmup: int = 1
    # Per run, from launch to done; None: scaled with the record count.
    timeout_s: float | None = None
    command: str = "python -m bench run"
    # One variant per entry: None runs every system with its own default commit interval, N
    # runs every system with a commit every N ms.
    commit_intervals: tuple[int | None, ...] = (None,)
    # The broker (started here) and the harness on one CPU, each system on the others.
    pin: bool = False


def say(text: str) -> None:
    """Progress goes to stderr; the table alone goes to stdout."""
    print(text, file=sys.stderr, flush=True)


def run(config: Config) -> list[RunResult]:
    """Run every round and report; returns the results (verified or not)."""
    started = time.perf_counter()
    workloads = [_workload(name) for name in config.workloads]
    systems = make_systems(
        config.systems, config.client_config, config.app_args, config.kgen_patches
    )
    skipped = _skipped(systems, workloads)
    results: list[RunResult] = []
    pinning = None
    if config.pin:
        if config.bootstrap is not None:
            raise RunFailed("--pin needs the harness's own broker (no --bootstrap-servers)")
        pinning = Pinning.split(os.sched_getaffinity(0))
    # The broker's JVM, started below, and every client of the harness inherit this.
    with (
        affinity(None if pinning is None else pinning.broker),
        tempfile.TemporaryDirectory(prefix="kgen-bench-") as tmp,
        Broker(config.bootstrap) as b,
    ):
        workdir = Path(tmp)
        say(f"broker {b.bootstrap}; work dir {workdir}")
        b.warm_up()
        for workload in workloads:
            for system in _running(systems, workload, skipped):
                system.prepare(workload, workdir)
        expected = _preload(b, config, systems, workloads, skipped)
        rounds = [0] * config.warmup + list(range(1, config.repeat + 1))
        for interval in config.commit_intervals:
            label = interval_label(interval)
            for system in systems:
                system.commit_interval_ms = interval
            for workload in workloads:
                _rounds(
                    b,
                    config,
                    _running(systems, workload, skipped),
                    workload,
                    rounds=rounds,
                    expected=expected,
                    label=label,
                    workdir=workdir,
                    results=results,
                    cpus=None if pinning is None else pinning.system,
                )
        info = {
            "records": f"{config.records:,} (seed {config.seed})",
            "input": f"{INPUT_TOPIC}, {INPUT_PARTITIONS} partitions, "
            f"{expected['input'].size / max(expected['input'].count, 1):.0f} bytes/value avg",
            "broker": b.description,
            **report.machine(),
            "systems": "; ".join(f"{s.name}: {s.description}" for s in systems),
            "client config (all systems)": " ".join(config.client_config)
            or "librdkafka defaults (plus each system's own settings)",
            "kgen app arguments": config.app_args or "none",
            "kgen apps (sha256 of the package files)": ", ".join(
                f"{s.name}/{w.name} {s.fingerprint(w)}"
                for s in systems
                if isinstance(s, Kgen)
                for w in workloads
                if (s.name, w.name) not in skipped
            )
            or "none",
            "kgen app patches": ", ".join(p.as_posix() for p in config.kgen_patches)
            or "none (the app exactly as kgen generates it)",
            "commit intervals": ", ".join(
                "default (" + ", ".join(f"{s.name} {s.default_commit}" for s in systems) + ")"
                if i is None
                else f"{i} ms for every system"
                for i in config.commit_intervals
            ),
            "versions of the other systems": _versions(systems),
            "rounds": f"{config.warmup} warm-up (not counted), {config.repeat} measured; "
            "the systems alternate within a round in the order given",
            "pinned": "no (every process may run on every CPU)"
            if pinning is None
            else pinning.describe(),
        }
        for w in workloads:
            for t in w.tables:
                info[f"table of {w.name}"] = (
                    f"{t.topic}, {t.partitions} partitions, "
                    + ", ".join(f"{k}={v}" for k, v in t.config.items())
                    + f", {expected[t.topic].count:,} rows preloaded before the input, "
                    f"every row's timestamp {t.timestamp_ms} (earlier than every input record)"
                )
        if skipped:
            info["not run"] = "; ".join(
                f"{system} on {workload}: {why}" for (system, workload), why in skipped.items()
            )
    wall = time.perf_counter() - started
    print(report.table(report.summarize([r for r in results if r.round > 0])))
    text = report.markdown(results, info, config.command, wall)
    if config.results_dir is not None:
        say(f"results: {report.write_results(text, config.results_dir)}")
    if config.json_path is not None:
        config.json_path.write_text(
            json.dumps({"machine": info, "runs": [r.to_json() for r in results]}, indent=2)
        )
    say(f"whole run: {wall:.0f} s")
    return results


def interval_label(interval: int | None) -> str:
    return "default" if interval is None else f"{interval} ms"


def _rounds(
    b: Broker,
    config: Config,
    systems: list[System],
    workload: Workload,
    *,
    rounds: list[int],
    expected: dict[str, Output],
    label: str,
    workdir: Path,
    results: list[RunResult],
    cpus: frozenset[int] | None = None,
) -> None:
    """Every round of one workload under one commit interval."""
    partitions = list(range(INPUT_PARTITIONS))
    timeout = config.timeout_s or 120 + config.records / 2000
    for round_no in rounds:
        # Systems alternate within each round (A B C D A B C D ...): drift hits all alike.
        for system in systems:
            key, _ = system.expectation(workload)
            log = workdir / f"{system.name}-{workload.name}.log"
            t0 = time.perf_counter()
            result = run_once(
                b,
                system,
                workload=workload,
                expected=expected[key],
                total=config.records,
                partitions=partitions,
                round_no=round_no,
                log=log,
                timeout_s=timeout,
                cpus=cpus,
            )
            result.commit_interval = label
            results.append(result)
            say(
                f"  {'warm-up' if round_no == 0 else f'round {round_no}':8} "
                f"{label:8} {workload.name:9} {system.name:13} "
                f"{result.rate:>10,.0f} records/s  {result.seconds:6.2f} s  "
                f"rss {result.peak_rss_mib:4.0f} MiB  "
                f"{'verified' if result.verified else 'NOT VERIFIED: ' + result.note}"
                f"  ({time.perf_counter() - t0:.0f} s with reset and check)"
            )


def _versions(systems: list[System]) -> str:
    out = []
    names = {s.name for s in systems}
    if "kafka-streams" in names:
        from bench import kafka_streams

        out.append(f"kafka-streams {kafka_streams.KAFKA_STREAMS_VERSION}")
    if "quix" in names:
        from bench import quix

        got = quix.installed()
        out.append(
            f"quixstreams {got.get('quixstreams', '?')} (confluent-kafka "
            f"{got.get('confluent-kafka', '?')}, orjson {got.get('orjson', '?')})"
        )
    return "; ".join(out) or "none"


def _skipped(systems: list[System], workloads: list[Workload]) -> dict[tuple[str, str], str]:
    """The (system, workload) pairs asked for that a system cannot run, with the reason; said
    on stderr (and written to the results file). ValueError when that leaves nothing to run."""
    skipped: dict[tuple[str, str], str] = {}
    for workload in workloads:
        for system in systems:
            why = system.unsupported(workload)
            if why is not None:
                skipped[system.name, workload.name] = why
    if len(skipped) == len(systems) * len(workloads):
        raise ValueError(
            "nothing to run: "
            + "; ".join(f"{s} does not run {w}: {why}" for (s, w), why in skipped.items())
        )
    for (system_name, workload_name), why in skipped.items():
        say(f"not running {system_name} on {workload_name}: {why}")
    return skipped


def _running(
    systems: list[System], workload: Workload, skipped: dict[tuple[str, str], str]
) -> list[System]:
    return [s for s in systems if (s.name, workload.name) not in skipped]


def _workload(name: str) -> Workload:
    if name not in WORKLOADS:
        raise ValueError(f"unknown workload {name!r}; known: {', '.join(WORKLOADS)}")
    return WORKLOADS[name]


def _preload(
    b: Broker,
    config: Config,
    systems: list[System],
    workloads: list[Workload],
    skipped: dict[tuple[str, str], str],
) -> dict[str, Output]:
    """Fill the workloads' table topics, then the input topic, once for every round; return
    the digest of the input ('input'), of each table (by topic) and of each expected output."""
    pairs = [(s, w) for w in workloads for s in _running(systems, w, skipped)]
    expectations = dict(s.expectation(w) for s, w in pairs)
    # A system may use one group for every workload (the copy loop does).
    groups = dict.fromkeys(s.group(w) for s, w in pairs)
    tables = {t.topic: t for w in workloads for t in w.tables}
    table_digests: dict[str, Output] = {}
    for table in tables.values():
        table_digests[table.topic] = _preload_table(b, table)
    b.reset({INPUT_TOPIC: INPUT_PARTITIONS}, groups)
    say(f"preloading {config.records:,} records into {INPUT_TOPIC} ...")
    t0 = time.perf_counter()
    expected = Expected(expectations)
    source = expected.feed(records(config.records, config.seed))
    topics.produce_all(b.bootstrap, INPUT_TOPIC, source)
    ends = b.end_offsets(INPUT_TOPIC)
    if sum(ends.values()) != config.records:
        got = sum(ends.values())
        raise RuntimeError(f"{INPUT_TOPIC} holds {got} records, not {config.records}")
    say(f"preloaded in {time.perf_counter() - t0:.1f} s: {ends}")
    return {"input": expected.input, **table_digests, **expected.outputs}


def _preload_table(b: Broker, table: TableInput) -> Digest:
    """Fill a table topic (emptied first), every row with the table's timestamp; the digest
    of its rows."""
    if table.timestamp_ms >= time.time() * 1000:
        raise ValueError(
            f"{table.topic}: its rows' timestamp {table.timestamp_ms} is not earlier than now: "
            "the input records (stamped now) would not all come after the table"
        )
    b.reset({table.topic: table.partitions}, [], config=dict(table.config))
    digest = Digest()

    def rows() -> Iterator[tuple[bytes, bytes]]:
        for key, value in table.rows():
            digest.add(key, value)
            yield key, value

    topics.produce_all(b.bootstrap, table.topic, rows(), timestamp=table.timestamp_ms)
    ends = b.end_offsets(table.topic)
    if sum(ends.values()) != digest.count:
        raise RuntimeError(f"{table.topic} holds {sum(ends.values())} rows, not {digest.count}")
    say(f"preloaded the table {table.topic}: {digest.count:,} rows, {ends}")
    return digest
