"""`python -m bench memory`: the RSS of one instance of the count app against its store
partitions and keys, and how long its stores take to open after a SIGKILL.

Per (partitions P, keys K):

1. Cold: the input and output topics made again with P partitions (the count's repartition
   topic, its store and its changelog then have P partitions too), the app's internal topics
   and group gone, its state dir empty.
2. K distinct keys, each `--updates` times, are written to the input (before the app starts).
3. One instance of the count app (bench/specs/count.toml with P partitions) counts them; its
   RSS (`VmRSS`) is sampled every 0.2 s. Once the group has committed the whole input and the
   whole repartition topic, the harness waits `--settle` s and reads VmRSS ("RSS at the end")
   and VmHWM (the peak).
4. The instance is killed with SIGKILL and started again on its state dir. Its log line
   "N store partitions ready in T s: opened in A s, R changelog records restored in B s" gives
   the open time (A: every RocksDB store partition opened, a write-ahead log replayed if there
   is one) and the changelog tail restore (R records in B s). Then it is stopped (SIGTERM).

Every wait is bounded; every process the harness starts is stopped.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from bench import data, report
from bench.broker import Broker
from bench.failover import Instance, _wait
from bench.measure import _internal_ends
from bench.systems import BuiltApp, build_app, package_digest
from bench.workloads import INPUT_TOPIC, WORKLOADS

READY = re.compile(
    r"(?P<n>\d+) store partitions ready in (?P<total>[\d.]+) s: opened in (?P<open>[\d.]+) s, "
    r"(?P<records>\d+) changelog records restored in (?P<restore>[\d.]+) s"
)


@dataclass
class MemoryResult:
    partitions: int
    keys: int
    records: int  # input records counted
    count_s: float  # app start to the whole input counted and committed
    rss_mib: float  # VmRSS once everything was counted (+ settle)
    peak_mib: float  # VmHWM
    open_s: float | None  # after the SIGKILL: opening the store partitions
    restored: int | None  # changelog records the restart restored
    restore_s: float | None
    state_mib: float  # the state dir on disk at the kill
    note: str = ""


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _status_kib(pid: int, field: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _mib(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 2**20


def _spec(partitions: int, workdir: Path) -> Path:
    text = WORKLOADS["count"].spec.read_text()
    path = workdir / f"count-{partitions}.toml"
    path.write_text(text.replace("partitions = 6", f"partitions = {partitions}"))
    return path


def _produce(bootstrap: str, keys: int, updates: int) -> int:
    return data.produce_keys(bootstrap, INPUT_TOPIC, keys, updates, 180)


def one(
    b: Broker,
    app: BuiltApp,
    partitions: int,
    keys: int,
    *,
    args: argparse.Namespace,
    log_file: IO[str],
) -> MemoryResult:
    output = WORKLOADS["count"].output_topic
    b.reset({INPUT_TOPIC: partitions, output: partitions}, [app.app_id], delete=app.internal_topics)
    state = Path(args.workdir) / f"state-{partitions}-{keys}"
    shutil.rmtree(state, ignore_errors=True)
    records = _produce(b.bootstrap, keys, args.updates)
    argv = [sys.executable, "-m", app.package, "--bootstrap-servers", b.bootstrap]
    argv += ["--state-dir", str(state), "--stop-when-idle", "600", *args.app_args]
    env = {**os.environ, "PYTHONPATH": str(app.root)}
    inst = Instance(argv, app.root, env, log_file)

    def exited() -> str:
        code = inst.proc.poll()
        return "" if code is None else f"the app exited with {code}"

    samples: list[int] = []
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            samples.append(_status_kib(inst.proc.pid, "VmRSS"))
            stop.wait(0.2)

    threading.Thread(target=sample, daemon=True).start()
    started = time.monotonic()
    parts = range(partitions)
    repartition = app.internal_sources[0]
    try:
        _wait(
            "the input was not counted",
            lambda: sum(b.committed_offsets(app.app_id, {INPUT_TOPIC: parts}).values()) >= records,
            600,
            exited,
        )
        found: list[dict[tuple[str, int], int]] = []

        def settled() -> bool:
            ends = _internal_ends(b, (repartition,))
            if ends is not None:
                found.append(ends)
            return ends is not None

        _wait("the repartition topic's end did not settle", settled, 60, exited)
        ends = found[-1]
        _wait(
            "the repartition topic was not counted",
            lambda: all(
                b.committed_offsets(app.app_id, {repartition: parts})[tp] >= end
                for tp, end in ends.items()
            ),
            600,
            exited,
        )
        count_s = time.monotonic() - started
        time.sleep(args.settle)
        rss = _status_kib(inst.proc.pid, "VmRSS") / 1024
        peak = _status_kib(inst.proc.pid, "VmHWM") / 1024
        stop.set()
        inst.kill()
        state_mib = _mib(state)
        inst.lines.clear()
        inst.restart()
        _wait(
            "the restarted app did not open its stores",
            lambda: any(READY.search(line) for _, line in inst.lines),
            300,
            exited,
        )
        m = next(m for _, line in inst.lines if (m := READY.search(line)))
        result = MemoryResult(
            partitions,
            keys,
            records,
            round(count_s, 1),
            round(rss, 1),
            round(peak, 1),
            float(m["open"]),
            int(m["records"]),
            float(m["restore"]),
            round(state_mib, 1),
        )
    except (TimeoutError, RuntimeError) as exc:
        result = MemoryResult(partitions, keys, records, 0, 0, 0, None, None, None, 0, str(exc))
    finally:
        stop.set()
        inst.stop()
        inst.wait_stopped()
    return result


def table(results: list[MemoryResult]) -> str:
    rows = [
        "| partitions | keys | input records | counted in s | records/s | RSS at the end MiB "
        "| peak RSS MiB | after SIGKILL: open s | restored records | restore s | state dir MiB |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        if r.note:
            rows.append(f"| {r.partitions} | {r.keys:,} | failed: {r.note} |")
            continue
        rate = r.records / r.count_s if r.count_s else 0
        rows.append(
            f"| {r.partitions} | {r.keys:,} | {r.records:,} | {r.count_s:.1f} | {rate:,.0f} "
            f"| {r.rss_mib:.0f} | {r.peak_mib:.0f} | {r.open_s:.2f} | {r.restored:,} "
            f"| {r.restore_s:.2f} | {r.state_mib:.0f} |"
        )
    return "\n".join(rows)


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench memory", description=__doc__)
    p.add_argument("--partitions", type=_ints, default=[6, 24], help="(default 6,24)")
    p.add_argument(
        "--keys", type=_ints, default=[10_000, 1_000_000], help="(default 10000,1000000)"
    )
    p.add_argument("--updates", type=int, default=2, help="input records per key (%(default)s)")
    p.add_argument("--settle", type=float, default=3.0, help="s after counting (%(default)s)")
    p.add_argument("--bootstrap-servers", default=None)
    p.add_argument("--json", type=Path, default=None)
    p.add_argument(
        "--app-arg",
        dest="app_args",
        action="append",
        default=[],
        help="an argument for the app, e.g. --app-arg=--rocksdb-memory-mib=128",
    )
    args = p.parse_args(argv)
    results: list[MemoryResult] = []
    with (
        tempfile.TemporaryDirectory(prefix="kgen-bench-memory-") as tmp,
        Broker(args.bootstrap_servers) as b,
    ):
        args.workdir = tmp
        b.warm_up()
        with (Path(tmp) / "app.log").open("w") as log_file:
            for partitions in args.partitions:
                app = build_app(_spec(partitions, Path(tmp)), Path(tmp) / f"app-{partitions}")
                for keys in args.keys:
                    say(f"{partitions} partitions, {keys:,} keys:")
                    r = one(b, app, partitions, keys, args=args, log_file=log_file)
                    say(f"  {r}")
                    results.append(r)
            digest = package_digest(app.root / app.package)
        info = {**report.machine(), "broker": b.description, "kgen app": digest}
    print(table(results))
    print("\n".join(f"- {k}: {v}" for k, v in info.items()))
    if args.json is not None:
        args.json.write_text(json.dumps({"machine": info, "runs": [r.__dict__ for r in results]}))
    ok = all(not r.note for r in results)
    if results:
        say(f"median RSS {statistics.median(r.rss_mib for r in results):.0f} MiB")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
