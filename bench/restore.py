"""`python -m bench restore`: how fast a generated app restores a state store from its changelog.

The count workload's app (bench/specs/count.toml) keeps its counts in the RocksDB store
`counts`, backed by the compacted changelog `bench-count-counts-changelog`. This fills that
changelog with N records (N distinct keys, 8-byte long values, written transactionally in
transactions of TXN_RECORDS as an app's commits write them), then imports the generated app
and calls its own restore path, `state.Stores(state_dir, send, restore_config).assign(...)`:
the call the app's run loop makes when it is given partitions, before it processes any of
their records. Each round restores twice:

- cold: into an empty state dir, so every changelog record is read and written to RocksDB;
- warm: again into the same state dir, after closing the stores, so only the changelog's tail
  past the offset the store reflects is read (here: nothing).

The time is the `assign` call (opening the RocksDB stores, the restore consumer, the reads and
writes); the app's own log lines ("restored <topic>-<p>: read N changelog records ... in T s")
give the restore loop's share. Outside the time, the store is checked: every key, every value.
"""

from __future__ import annotations

import datetime as dt
import gc
import importlib
import json
import logging
import re
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from confluent_kafka import KafkaError, Producer

from bench import report
from bench.broker import TIMEOUT_S, Broker
from bench.systems import apply_patch, build_app, package_digest
from bench.workloads import INPUT_PARTITIONS, WORKLOADS

WORKLOAD = "count"
STORE = "counts"
# Records per transaction while filling the changelog (an app commits every 100 ms).
TXN_RECORDS = 50_000
# The app's own restore log line (templates/app/package/state.py.j2).
RESTORED = re.compile(
    r"restored (?P<topic>\S+)-(?P<partition>\d+): read (?P<records>\d+) changelog records "
    r"from offset (?P<start>\d+) in (?P<seconds>[\d.]+) s"
)


@dataclass
class RestoreResult:
    round: int
    kind: str  # "cold" or "warm"
    records: int  # changelog records the restore read (the app's own count)
    seconds: float  # the assign() call: open, restore, write
    loop_s: float | None  # the restore loop alone, from the app's log (None: nothing read)
    rate: float  # records / seconds
    store_keys: int  # keys in the store afterwards
    store_mib: float  # the state dir on disk afterwards
    verified: bool
    # This process's RSS before the assign() call, and its peak during it (VmHWM, reset just
    # before): what the restore holds at its height (fetched records, memtables, the store's
    # Python objects). None where /proc/self/clear_refs cannot reset the peak.
    rss_before_mib: float | None = None
    rss_peak_mib: float | None = None
    note: str = ""
    log: list[str] = field(default_factory=list)  # the app's restore log lines


@dataclass(frozen=True)
class RestoreConfig:
    records: int = 1_000_000
    repeat: int = 3
    bootstrap: str | None = None
    results_dir: Path | None = None
    json_path: Path | None = None
    client_config: tuple[str, ...] = ()
    # Unified diffs applied to the generated app (paths a/bench_count/...): a proposed
    # template change, measured before it is made (bench/proposals/).
    kgen_patches: tuple[Path, ...] = ()
    command: str = "python -m bench restore"


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _key(i: int) -> bytes:
    return b"key-%07d" % i


def _records(n: int) -> Iterator[tuple[bytes, bytes]]:
    """Key i holds the count i: the store's content is known without keeping it."""
    for i in range(n):
        yield _key(i), i.to_bytes(8, "big", signed=True)


def fill(bootstrap: str, topic: str, n: int) -> float:
    """Write n records to `topic` in transactions of TXN_RECORDS; returns the seconds taken."""
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "transactional.id": "bench-restore-fill",
            "linger.ms": 20,
            "partitioner": "murmur2_random",  # the Java client's, as the apps use
            "queue.buffering.max.messages": 1_000_000,
        }
    )
    failures: list[KafkaError] = []

    def on_delivery(err: KafkaError | None, _msg: object) -> None:
        if err is not None:
            failures.append(err)

    start = time.perf_counter()
    producer.init_transactions(TIMEOUT_S)
    in_txn = 0
    for key, value in _records(n):
        if in_txn == 0:
            producer.begin_transaction()
        while True:
            try:
                producer.produce(topic, value, key, on_delivery=on_delivery)
                break
            except BufferError:
                producer.poll(0.05)
        in_txn += 1
        if in_txn == TXN_RECORDS:
            producer.commit_transaction(120)
            in_txn = 0
    if in_txn:
        producer.commit_transaction(120)
    if producer.flush(120) or failures:
        raise RuntimeError(f"filling {topic}: {len(failures)} failed, e.g. {failures[:1]}")
    return time.perf_counter() - start


class _Lines(logging.Handler):
    """Collects the app's log lines."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@dataclass
class App:
    """The generated count app, imported."""

    package_dir: Path
    state: ModuleType
    errors: ModuleType
    topology: ModuleType
    settings: ModuleType

    @property
    def spec(self) -> Any:
        return self.state.STORES[STORE]

    @classmethod
    def build(cls, workdir: Path, patches: tuple[Path, ...] = ()) -> App:
        built = build_app(WORKLOADS[WORKLOAD].spec, workdir / "app")
        for patch in patches:
            apply_patch(patch, built.root)
        sys.path.insert(0, str(built.root))
        mods = {
            name: importlib.import_module(f"{built.package}.{name}")
            for name in ("state", "errors", "topology", "settings")
        }
        return cls(built.root / built.package, **mods)


@dataclass
class Restored:
    records: int  # changelog records read
    seconds: float
    loop_s: float | None
    stores: Any  # the app's open Stores
    rss_before_mib: float
    rss_peak_mib: float | None


def restore_once(
    app: App, state_dir: Path, restore_config: dict[str, Any], lines: _Lines
) -> Restored:
    """One `Stores.assign` of every store partition; `lines` holds the app's log lines of it."""

    def send(*_args: Any) -> None:
        raise AssertionError("a restore writes nothing to the changelog")

    def produce(*_args: Any, **_kwargs: Any) -> None:
        raise AssertionError("a restore produces nothing")

    stores = app.state.Stores(str(state_dir), send, restore_config)
    ctx = app.state.Context(app.errors.ErrorPolicy(produce), stores)
    stores.bind(ctx, app.topology.EMITTERS)
    # As the run loop does: the partitions of the store's sub-topology's source topic.
    source = app.spec.source_topics[0]
    del lines.lines[:]
    gc.collect()
    before = _status_mib("VmRSS")
    peak_known = _reset_peak()
    start = time.perf_counter()
    stores.assign([(source, p) for p in range(INPUT_PARTITIONS)])
    seconds = time.perf_counter() - start
    peak = _status_mib("VmHWM") if peak_known else None
    found = [m for m in map(RESTORED.search, lines.lines) if m is not None]
    loop_s = max((float(m["seconds"]) for m in found), default=None)
    return Restored(int(stores.restored), seconds, loop_s, stores, before, peak)


def check_store(stores: Any, n: int) -> tuple[int, str]:
    """Every key i in the store with the count i: (keys, what is wrong or '')."""
    keys = 0
    wrong: list[str] = []
    for store in stores.by_name[STORE].values():
        for key, entry in store.read_all().items():
            keys += 1
            if entry is None or not key.startswith(b"key-") or int(key[4:]) != entry[0]:
                if len(wrong) < 3:
                    wrong.append(f"{key!r}: {entry!r}")
    problems = [] if keys == n else [f"{keys:,} keys, not {n:,}"]
    if wrong:
        problems.append("wrong values, e.g. " + ", ".join(wrong))
    return keys, "; ".join(problems)


def _settled_ends(b: Broker, topic: str, records: int) -> dict[int, int]:
    """The topic's end offsets once they count at least `records` (records and markers): a
    freshly recreated topic once answered 0 for half of its partitions."""
    deadline = time.monotonic() + 30
    while True:
        ends = b.end_offsets(topic)
        if sum(ends.values()) >= records or time.monotonic() > deadline:
            return ends
        time.sleep(0.2)


def _status_mib(field: str) -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise LookupError(field)


def _reset_peak() -> bool:
    """Make VmHWM start again from the current RSS (Linux: 5 > /proc/PID/clear_refs)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        return False
    return True


def _mib(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 2**20


def run(config: RestoreConfig) -> list[RestoreResult]:
    started = time.perf_counter()
    results: list[RestoreResult] = []
    with (
        tempfile.TemporaryDirectory(prefix="kgen-bench-restore-") as tmp,
        Broker(config.bootstrap) as b,
    ):
        workdir = Path(tmp)
        say(f"broker {b.bootstrap}; work dir {workdir}")
        app = App.build(workdir, config.kgen_patches)
        changelog = app.spec.changelog_topic
        topic_config = dict(app.settings.INTERNAL_TOPICS[changelog].config)
        logger = logging.getLogger(app.state.APP_ID)
        logger.setLevel(logging.INFO)
        lines = _Lines()
        logger.addHandler(lines)

        b.warm_up()
        # As the app creates it: as many partitions as its store's source topic, compacted.
        b.reset({changelog: INPUT_PARTITIONS}, [], config=topic_config)
        say(f"filling {changelog} with {config.records:,} records ...")
        fill_s = fill(b.bootstrap, changelog, config.records)
        ends = _settled_ends(b, changelog, config.records)
        say(
            f"filled in {fill_s:.1f} s ({config.records / fill_s:,.0f} records/s); "
            f"end offsets {ends}"
        )
        kafka_config = dict(item.split("=", 1) for item in config.client_config)
        # The app's fetch bounds, as its runtime gives its restore consumer (apps generated
        # before 2026-11-29 had none: librdkafka's defaults).
        bounds: dict[str, Any] = getattr(app.settings, "fetch_bounds", lambda _c: {})(kafka_config)
        restore_config: dict[str, Any] = {
            "bootstrap.servers": b.bootstrap,
            **bounds,
            **kafka_config,
            "client.id": "bench-restore",
            # The app's restore consumer under exactly-once (its default).
            "isolation.level": "read_committed",
        }
        for round_no in range(1, config.repeat + 1):
            state_dir = workdir / f"state-{round_no}"
            for kind in ("cold", "warm"):
                done = restore_once(app, state_dir, restore_config, lines)
                records, seconds = done.records, done.seconds
                keys, problem = check_store(done.stores, config.records)
                done.stores.close_all()
                want = config.records if kind == "cold" else 0
                if records != want:
                    problem = "; ".join(
                        p for p in (problem, f"read {records:,} records, not {want:,}") if p
                    )
                result = RestoreResult(
                    round=round_no,
                    kind=kind,
                    records=records,
                    seconds=seconds,
                    loop_s=done.loop_s,
                    rate=records / seconds,
                    store_keys=keys,
                    store_mib=_mib(state_dir),
                    verified=not problem,
                    note=problem,
                    log=list(lines.lines),
                    rss_before_mib=done.rss_before_mib,
                    rss_peak_mib=done.rss_peak_mib,
                )
                results.append(result)
                say(
                    f"  round {round_no} {kind}: read {records:,} records in {seconds:.2f} s "
                    f"({result.rate:,.0f} records/s; restore loop "
                    f"{'-' if done.loop_s is None else f'{done.loop_s:.2f} s'}), {keys:,} keys "
                    f"in the store, RSS {_rss_text(result)}, "
                    f"{'verified' if result.verified else 'NOT VERIFIED: ' + problem}"
                )
            shutil.rmtree(state_dir, ignore_errors=True)
        logger.removeHandler(lines)
        info = {
            "records": f"{config.records:,} distinct keys (key-0000000 ..), 8-byte long values",
            "changelog": f"{changelog}, {INPUT_PARTITIONS} partitions, {topic_config}; "
            f"filled transactionally, {TXN_RECORDS:,} records per transaction, in {fill_s:.1f} s "
            f"({config.records / fill_s:,.0f} records/s); end offsets {sum(ends.values()):,} "
            "(records and commit markers)",
            "broker": b.description,
            **report.machine(),
            "restore": f"{app.package_dir.name}.state.Stores.assign() of partitions 0-"
            f"{INPUT_PARTITIONS - 1} with the app's restore consumer settings "
            f"(isolation.level=read_committed{''.join(f', {k}={v}' for k, v in bounds.items())})",
            "client config": " ".join(config.client_config) or "librdkafka defaults",
            "kgen app (sha256 of the package files)": package_digest(app.package_dir),
            "kgen app patches": ", ".join(p.as_posix() for p in config.kgen_patches)
            or "none (the app exactly as kgen generates it)",
            "rounds": f"{config.repeat}, each a cold restore into an empty state dir, then a "
            "warm one into the same dir",
        }
    wall = time.perf_counter() - started
    text = markdown(results, info, config.command, wall)
    print(table(results))
    if config.results_dir is not None:
        say(f"results: {report.write_results(text, config.results_dir)}")
    if config.json_path is not None:
        config.json_path.write_text(
            json.dumps({"machine": info, "runs": [asdict(r) for r in results]}, indent=2)
        )
    say(f"whole run: {wall:.0f} s")
    return results


def _growth(r: RestoreResult) -> float | None:
    """How far the RSS rose above where it stood before the restore, at its peak."""
    return None if r.rss_peak_mib is None else r.rss_peak_mib - (r.rss_before_mib or 0.0)


def _rss_text(r: RestoreResult) -> str:
    growth = _growth(r)
    if growth is None:
        return f"{r.rss_before_mib or 0:.0f} MiB before (peak unknown)"
    return f"{r.rss_before_mib or 0:.0f} -> peak {r.rss_peak_mib:.0f} MiB (+{growth:.0f})"


def table(results: list[RestoreResult]) -> str:
    """Median and spread per kind of restore, over the verified rounds."""
    rows = [
        "| restore | records read | records/s (median) | min .. max | time s | restore loop s "
        "| keys in store | state dir MiB | RSS growth to the peak MiB (max) | verified |",
        "|" + " --- |" * 10,
    ]
    for kind in ("cold", "warm"):
        tried = [r for r in results if r.kind == kind]
        runs = [r for r in tried if r.verified]
        if not runs:
            continue
        rates = [r.rate for r in runs]
        loops = [r.loop_s for r in runs if r.loop_s is not None]
        growths = [g for g in map(_growth, runs) if g is not None]
        rows.append(
            f"| {kind} | {statistics.median(r.records for r in runs):,.0f} | "
            f"{statistics.median(rates):,.0f} | {min(rates):,.0f} .. {max(rates):,.0f} | "
            f"{statistics.median(r.seconds for r in runs):.2f} | "
            f"{f'{statistics.median(loops):.2f}' if loops else '-'} | "
            f"{statistics.median(r.store_keys for r in runs):,.0f} | "
            f"{statistics.median(r.store_mib for r in runs):.0f} | "
            f"{f'{max(growths):.0f}' if growths else '-'} | {len(runs)}/{len(tried)} |"
        )
    return "\n".join(rows)


def markdown(
    results: list[RestoreResult], info: dict[str, str], command: str, wall_s: float
) -> str:
    runs = [
        "| round | restore | records read | time s | records/s | restore loop s | keys in store "
        "| RSS before -> peak MiB | verified |",
        "|" + " --- |" * 9,
    ]
    for r in results:
        runs.append(
            f"| {r.round} | {r.kind} | {r.records:,} | {r.seconds:.2f} | {r.rate:,.0f} | "
            f"{'-' if r.loop_s is None else f'{r.loop_s:.2f}'} | {r.store_keys:,} | "
            f"{_rss_text(r)} | {'yes' if r.verified else 'NO: ' + r.note} |"
        )
    logs: list[str] = []
    for r in results[:2]:
        logs += ["", f"Round {r.round}, {r.kind}:", "", "```", *r.log, "```"]
    return "\n".join(
        [
            f"# Restore benchmark results, {dt.date.today().isoformat()}",
            "",
            f"`{command}` (whole run: {wall_s:.0f} s, filling and checking included)",
            "",
            *(f"- {k}: {v}" for k, v in info.items()),
            "",
            "## Summary",
            "",
            table(results),
            "",
            "## Runs",
            "",
            *runs,
            "",
            "## The app's log of the first round",
            *logs,
            "",
        ]
    )
