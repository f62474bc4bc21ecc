"""`python -m bench run --records N --repeat R --systems kgen,kafka-streams,quix,copy
--workloads filter,transform,count,windowed-count,enrich [--commit-intervals default,100]`
(quix does not run enrich); `python -m bench restore --records N`; `python -m bench failover
--keys N`; `python -m bench memory --partitions 6,24 --keys 10000,1000000`; `python -m bench mirror
--records N`."""

from __future__ import annotations

import argparse
import shlex
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from bench.failover import VARIANTS as FAILOVER_VARIANTS
from bench.harness import RESULTS_DIR, Config, run
from bench.measure import RunFailed
from bench.systems import SYSTEMS
from bench.workloads import WORKLOADS


def _names(text: str) -> tuple[str, ...]:
    return tuple(n.strip() for n in text.split(",") if n.strip())


def _intervals(text: str) -> tuple[int | None, ...]:
    """`default,100` -> (None, 100): None is each system's own default commit interval."""
    out: list[int | None] = []
    for name in _names(text):
        if name == "default":
            out.append(None)
            continue
        try:
            ms = int(name)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not 'default' or milliseconds: {name!r}") from None
        if ms < 1:
            raise argparse.ArgumentTypeError(f"a commit interval must be >= 1 ms, got {ms}")
        out.append(ms)
    if not out:
        raise argparse.ArgumentTypeError("no commit interval given")
    return tuple(dict.fromkeys(out))


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="preload the input, run every system, report")
    r.add_argument("--records", type=int, default=1_000_000, help="input records (%(default)s)")
    r.add_argument("--repeat", type=int, default=3, help="rounds per system (%(default)s)")
    r.add_argument(
        "--systems",
        type=_names,
        default=("kgen", "copy"),
        help=f"comma-separated, run in this order each round; of: {', '.join(SYSTEMS)}",
    )
    r.add_argument(
        "--workloads",
        type=_names,
        default=("filter",),
        help=f"comma-separated; of: {', '.join(WORKLOADS)}",
    )
    r.add_argument(
        "--bootstrap-servers",
        help="a loopback broker to use (default: start kgen's local broker for the run)",
    )
    r.add_argument(
        "--results-dir",
        type=Path,
        default=RESULTS_DIR,
        help="where <date>.md goes (default bench/results)",
    )
    r.add_argument("--no-results", action="store_true", help="write no results file")
    r.add_argument("--json", type=Path, help="also write every run as JSON here")
    r.add_argument(
        "--app-args",
        default="",
        help="extra command-line arguments for the kgen apps, e.g. '--batch-size 5000'",
    )
    r.add_argument(
        "-X",
        "--client-config",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a librdkafka setting for every system's clients, e.g. fetch.queue.backoff.ms=10",
    )
    r.add_argument(
        "--kgen-patch",
        type=Path,
        action="append",
        default=[],
        metavar="DIFF",
        help="apply this unified diff to the generated kgen apps (e.g. bench/proposals/*.patch)",
    )
    intervals = r.add_mutually_exclusive_group()
    intervals.add_argument(
        "--commit-interval-ms",
        type=int,
        metavar="N",
        help="every system commits every N ms (default: each system's own interval)",
    )
    intervals.add_argument(
        "--commit-intervals",
        type=_intervals,
        metavar="LIST",
        help="run every variant in one invocation, e.g. 'default,100'",
    )
    r.add_argument("--warmup", type=int, default=1, help="unmeasured rounds first (%(default)s)")
    r.add_argument("--timeout", type=float, help="seconds per run (default: scaled with N)")
    r.add_argument(
        "--pin",
        action="store_true",
        help="the broker (started here) and the harness on the first CPU, each system under "
        "test on the others: a per-core comparison",
    )

    s = sub.add_parser(
        "restore",
        help="fill the count app's changelog, time its store restore (cold, then warm)",
    )
    s.add_argument("--records", type=int, default=1_000_000, help="changelog records (%(default)s)")
    s.add_argument(
        "--repeat", type=int, default=3, help="rounds of a cold and a warm restore (%(default)s)"
    )
    s.add_argument(
        "--bootstrap-servers",
        help="a loopback broker to use (default: start kgen's local broker for the run)",
    )
    s.add_argument("--results-dir", type=Path, default=RESULTS_DIR, help="(default bench/results)")
    s.add_argument("--no-results", action="store_true", help="write no results file")
    s.add_argument("--json", type=Path, help="also write every restore as JSON here")
    s.add_argument(
        "-X",
        "--client-config",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a librdkafka setting for the restore consumer",
    )
    s.add_argument(
        "--kgen-patch",
        type=Path,
        action="append",
        default=[],
        metavar="DIFF",
        help="apply this unified diff to the generated count app (paths a/bench_count/...)",
    )
    f = sub.add_parser(
        "failover",
        help="3 instances of the count app, SIGKILL one: time until its partitions have new output",
    )
    f.add_argument("--keys", type=int, default=1_000_000, help="keys in the store (%(default)s)")
    f.add_argument(
        "--variants",
        type=_names,
        default=tuple(FAILOVER_VARIANTS),
        help=f"comma-separated, run in this order each round; of: {', '.join(FAILOVER_VARIANTS)}",
    )
    f.add_argument("--repeat", type=int, default=1, help="rounds (%(default)s)")
    f.add_argument("--rate", type=int, default=1_000, help="input records per second (%(default)s)")
    f.add_argument(
        "--bootstrap-servers",
        help="a loopback broker to use (default: start kgen's local broker for the run)",
    )
    f.add_argument("--results-dir", type=Path, default=RESULTS_DIR, help="(default bench/results)")
    f.add_argument("--no-results", action="store_true", help="write no results file")
    f.add_argument("--json", type=Path, help="also write every round as JSON here")
    f.add_argument(
        "--timeout",
        type=float,
        default=180.0,
        help="seconds from the kill to the last dead partition's output (%(default)s)",
    )
    return p


def main(argv: Sequence[str] | None = None) -> int:
    given = list(sys.argv[1:] if argv is None else argv)
    if given[:1] == ["memory"]:
        # Its own options (bench/memory.py).
        from bench import memory

        return memory.main(given[1:])
    if given[:1] == ["mirror"]:
        # Its own options (bench/mirror.py).
        from bench import mirror

        return mirror.main(given[1:])
    args = parser().parse_args(argv)
    shown = ["python", "-m", "bench", *(sys.argv[1:] if argv is None else argv)]
    if args.command == "failover":
        return _failover(args, shlex.join(shown))
    if args.records < 1 or args.repeat < 1 or getattr(args, "warmup", 0) < 0:
        parser().error("--records and --repeat must be at least 1, --warmup at least 0")
    bad = [c for c in args.client_config if "=" not in c]
    if bad:
        parser().error(f"-X takes KEY=VALUE, got {bad[0]!r}")
    if args.command == "restore":
        return _restore(args, shlex.join(shown))
    if args.commit_interval_ms is not None and args.commit_interval_ms < 1:
        parser().error("--commit-interval-ms must be at least 1")
    commit_intervals: tuple[int | None, ...] = args.commit_intervals or (
        (args.commit_interval_ms,) if args.commit_interval_ms is not None else (None,)
    )
    config = Config(
        records=args.records,
        repeat=args.repeat,
        systems=args.systems,
        workloads=args.workloads,
        bootstrap=args.bootstrap_servers,
        results_dir=None if args.no_results else args.results_dir,
        json_path=args.json,
        app_args=args.app_args,
        client_config=tuple(args.client_config),
        warmup=args.warmup,
        kgen_patches=tuple(args.kgen_patch),
        timeout_s=args.timeout,
        command=shlex.join(shown),
        commit_intervals=commit_intervals,
        pin=args.pin,
    )
    try:
        results = run(config)
    except ValueError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 2
    except RunFailed as exc:
        # A system crashed or timed out: its log tail is in the message.
        print(f"bench: run failed: {exc}", file=sys.stderr)
        return 1
    return 0 if results and all(r.verified for r in results) else 1


def _restore(args: argparse.Namespace, command: str) -> int:
    from bench import restore

    config = restore.RestoreConfig(
        records=args.records,
        repeat=args.repeat,
        bootstrap=args.bootstrap_servers,
        results_dir=None if args.no_results else args.results_dir,
        json_path=args.json,
        client_config=tuple(args.client_config),
        kgen_patches=tuple(args.kgen_patch),
        command=command,
    )
    try:
        results = restore.run(config)
    except ValueError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 2
    return 0 if results and all(r.verified for r in results) else 1


def _failover(args: argparse.Namespace, command: str) -> int:
    from bench import failover

    if args.keys < 1 or args.repeat < 1 or args.rate < 1:
        parser().error("--keys, --repeat and --rate must be at least 1")
    config = failover.FailoverConfig(
        keys=args.keys,
        variants=args.variants,
        repeat=args.repeat,
        rate=args.rate,
        bootstrap=args.bootstrap_servers,
        results_dir=None if args.no_results else args.results_dir,
        json_path=args.json,
        timeout_s=args.timeout,
        command=command,
    )
    # The harness stops what it started on SIGTERM too (as on Ctrl-C), not only at its end.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        results = failover.run(config)
    except ValueError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 2
    return 0 if results and all(r.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
