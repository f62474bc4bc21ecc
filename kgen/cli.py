"""The `kgen` command. Exit codes: 0 ok, 1 user error (bad spec, stale output), 2 usage."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from kgen import __version__
from kgen.codegen import emit, render
from kgen.evolution import guard, lock, report
from kgen.plan import describe
from kgen.plan.models import AppPlan
from kgen.plan.planner import plan as make_plan
from kgen.spec.errors import SpecInvalid
from kgen.spec.load import LoadedSpec, load_spec

EXIT_OK, EXIT_USER, EXIT_USAGE = 0, 1, 2
# `kgen diff`: the change needs a reset of the app's state.
EXIT_RESET = 3


def _load(spec: str, args: argparse.Namespace) -> tuple[LoadedSpec, AppPlan]:
    loaded = load_spec(Path(spec), look_up_modules=args.import_check)
    for warning in loaded.warnings:
        print(warning.format(), file=sys.stderr)
    return loaded, make_plan(loaded)


def _specs(args_specs: list[str], specs_dir: str) -> list[str]:
    if args_specs:
        return args_specs
    return sorted(str(p) for p in Path(specs_dir).glob("*.toml"))


def cmd_build(args: argparse.Namespace) -> int:
    if args.out and len(args.specs) > 1:
        print("kgen build: --out takes one spec", file=sys.stderr)
        return EXIT_USAGE
    accepted = frozenset(args.accept_reset)
    used: set[str] = set()
    for spec in args.specs:
        loaded, plan = _load(spec, args)
        root = Path(args.out) if args.out else Path(args.generated) / plan.package
        generated = None if args.out else Path(args.generated)
        try:
            previous = guard.previous_lock(root, generated, loaded.display_path)
            evolved = guard.evolve(previous, loaded, plan, accepted)
        except lock.LockError as exc:
            print(f"kgen build: {exc}: restore it from version control", file=sys.stderr)
            return EXIT_USER
        files = render.render(plan)
        files[lock.FILE] = lock.dumps(evolved.new)
        changed = emit.write(files, root)
        print(f"{spec} -> {root}/ ({len(changed)} file{'s' if len(changed) != 1 else ''} changed)")
        for reset in evolved.accepted:
            used.add(reset.accepted)
            print(f"  reset accepted ({reset.accepted}): {reset.change}")
        if evolved.accepted:
            print(
                f"  before deploying it: stop every instance of {plan.app_id}, then run "
                f"`python -m {plan.package} reset --yes` (see `reset --help`)"
            )
        if previous is not None and previous.parent != root:
            print(f"  {previous.parent}/ is the app under its old id: delete it once reset")
    for unused in sorted(accepted - used):
        print(
            f"kgen build: warning: --accept-reset {unused}: no change needs that reset",
            file=sys.stderr,
        )
    return EXIT_OK


def cmd_check(args: argparse.Namespace) -> int:
    specs = _specs(args.specs, args.specs_dir)
    if not specs:
        print(f"kgen check: no specs in {args.specs_dir}/", file=sys.stderr)
        return EXIT_USER
    generated = Path(args.generated)
    stale = 0
    packages = set()
    for spec in specs:
        _, plan = _load(spec, args)
        packages.add(plan.package)
        root = generated / plan.package
        files = render.render(plan)
        # The lock keeps the resets accepted so far: they are history, not output.
        files[lock.FILE] = lock.dumps(lock.from_plan(plan, guard.current_resets(root)))
        lines = emit.diff(files, root, root.as_posix())
        if lines:
            stale += 1
            sys.stdout.writelines(lines)
            print(f"{root}/ is stale: run `kgen build {spec}`", file=sys.stderr)
    if not args.specs and generated.is_dir():
        for orphan in sorted(
            p for p in generated.iterdir() if p.is_dir() and p.name not in packages
        ):
            if orphan.name.startswith((".", "__")):
                continue
            stale += 1
            print(
                f"{orphan}/ has no spec in {args.specs_dir}/: delete it or restore its spec",
                file=sys.stderr,
            )
    if stale:
        return EXIT_USER
    print(f"{len(specs)} spec{'s' if len(specs) != 1 else ''}: {generated}/ is up to date")
    return EXIT_OK


def cmd_validate(args: argparse.Namespace) -> int:
    code = EXIT_OK
    for spec in args.specs:
        try:
            _load(spec, args)
        except SpecInvalid as exc:
            print(exc.format(), file=sys.stderr)
            code = EXIT_USER
            continue
        print(f"{spec}: ok")
    return code


def cmd_diff(args: argparse.Namespace) -> int:
    _, old = _load(args.old, args)
    _, new = _load(args.new, args)
    text, unsafe = report.diff(old, new)
    sys.stdout.write(text)
    return EXIT_RESET if unsafe else EXIT_OK


def cmd_describe(args: argparse.Namespace) -> int:
    _, plan = _load(args.spec, args)
    sys.stdout.write(describe.text(plan))
    return EXIT_OK


def cmd_graph(args: argparse.Namespace) -> int:
    _, plan = _load(args.spec, args)
    sys.stdout.write(describe.mermaid(plan) if args.format == "mermaid" else describe.dot(plan))
    return EXIT_OK


def cmd_init(args: argparse.Namespace) -> int:
    from kgen.starter import starter_spec

    path = Path(args.path or f"specs/{args.name}.toml")
    if path.exists():
        print(f"kgen init: {path} exists; not overwriting it", file=sys.stderr)
        return EXIT_USER
    try:
        text = starter_spec(args.name)
    except ValueError as exc:
        print(f"kgen init: {exc}", file=sys.stderr)
        return EXIT_USER
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    print(f"wrote {path}; next: kgen build {path}")
    return EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    if args.cdc:
        from kgen.demo_cdc import run_cdc_demo

        return run_cdc_demo(Path(args.spec or "specs/cdc.toml"), Path(args.generated))
    from kgen.demo import run_demo

    return run_demo(Path(args.spec or "specs/payments.toml"), Path(args.generated))


def cmd_kafka(args: argparse.Namespace) -> int:
    from kgen.kafka import cli as kafka_cli

    if args.kafka_command == "fetch":
        code = kafka_cli.cmd_fetch()
        if code != 0 or not args.connect:
            return code
        from kgen.kafka import connect_cli

        return connect_cli.cmd_fetch_connect()
    if args.kafka_command == "start":
        return kafka_cli.cmd_start(
            args.port, args.brokers, secure=args.secure, cluster=args.cluster
        )
    if args.kafka_command == "stop":
        return kafka_cli.cmd_stop(args.cluster)
    return kafka_cli.cmd_status(args.cluster)


def cmd_mirror(args: argparse.Namespace) -> int:
    from kgen import mirrors

    return mirrors.run(Path(args.file), args.clusters)


def cmd_connect(args: argparse.Namespace) -> int:
    from kgen.kafka import connect_cli

    if args.connect_command == "start":
        return connect_cli.cmd_start(args.bootstrap_server, args.port)
    if args.connect_command == "stop":
        return connect_cli.cmd_stop()
    return connect_cli.cmd_status()


def _import_check_flag(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--no-import-check",
        dest="import_check",
        action="store_false",
        help="do not look up the modules of imports and function references (for modules that "
        "exist only where the app runs; see also the spec's runtime_only_modules)",
    )


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="kgen",
        description="Typed TOML topology specs -> standalone, exactly-once Kafka stream apps.",
    )
    p.add_argument("--version", action="version", version=f"kgen {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    b = sub.add_parser(
        "build", help="generate apps from specs", description="Generate an app per spec."
    )
    b.add_argument("specs", nargs="+", metavar="SPEC")
    b.add_argument("--out", help="the app's folder (default: GENERATED/<app>)")
    b.add_argument("--generated", default="generated", help="where apps go (default: %(default)s)")
    b.add_argument(
        "--accept-reset",
        action="append",
        default=[],
        metavar="WHAT",
        help="go ahead with a change that loses state (store:NAME, topic:NAME, source:NAME or "
        "app, as the error names it); the lock records it, and the app must be reset before "
        "it is deployed",
    )
    _import_check_flag(b)
    b.set_defaults(func=cmd_build)

    c = sub.add_parser(
        "check",
        help="fail with a diff when generated/ is stale",
        description="Regenerate in memory and compare with generated/: exit 1 with a unified diff "
        "when anything differs, is missing or is extra.",
    )
    c.add_argument("specs", nargs="*", metavar="SPEC", help="default: every SPECS_DIR/*.toml")
    c.add_argument("--specs-dir", default="specs")
    c.add_argument("--generated", default="generated")
    _import_check_flag(c)
    c.set_defaults(func=cmd_check)

    v = sub.add_parser(
        "validate", help="check specs, print every error", description="Check specs only."
    )
    v.add_argument("specs", nargs="+", metavar="SPEC")
    _import_check_flag(v)
    v.set_defaults(func=cmd_validate)

    f = sub.add_parser(
        "diff",
        help="explain a spec change in topology terms",
        description="Compare two versions of a spec: processors added and removed, stores and "
        "internal topics affected, and whether the app's state must be reset. Exit 0: safe; "
        "3: a reset is needed; 1: a spec has errors.",
    )
    f.add_argument("old", metavar="OLD_SPEC")
    f.add_argument("new", metavar="NEW_SPEC")
    _import_check_flag(f)
    f.set_defaults(func=cmd_diff)

    d = sub.add_parser(
        "describe", help="print the topology as text", description="Print the topology."
    )
    d.add_argument("spec", metavar="SPEC")
    _import_check_flag(d)
    d.set_defaults(func=cmd_describe)

    g = sub.add_parser(
        "graph", help="print the topology as Mermaid or dot", description="Draw the topology."
    )
    g.add_argument("spec", metavar="SPEC")
    g.add_argument("--format", choices=("mermaid", "dot"), default="mermaid")
    _import_check_flag(g)
    g.set_defaults(func=cmd_graph)

    i = sub.add_parser(
        "init", help="write a commented starter spec", description="Write a starter spec."
    )
    i.add_argument("name", help="the app name (lower case, letters, digits, '_' and '-')")
    i.add_argument("--path", help="where to write it (default: specs/NAME.toml)")
    i.set_defaults(func=cmd_init)

    m = sub.add_parser(
        "demo",
        help="build the example, run it on sample data against a local broker",
        description="Start a local Kafka (or use $KGEN_BOOTSTRAP_SERVERS), build the spec, feed "
        "sample records, run the app and print what it wrote.",
    )
    m.add_argument(
        "spec", nargs="?", help="the spec (default: specs/payments.toml; with --cdc specs/cdc.toml)"
    )
    m.add_argument("--generated", default="generated")
    m.add_argument(
        "--cdc",
        action="store_true",
        help="change data capture instead: PostgreSQL -> Debezium on a Kafka Connect worker -> "
        "the cdc app -> its compacted table, beside the database's",
    )
    m.set_defaults(func=cmd_demo)

    k = sub.add_parser(
        "kafka", help="a local Kafka broker or cluster for development", description="Local Kafka."
    )
    ksub = k.add_subparsers(dest="kafka_command", required=True, metavar="ACTION")
    kf = ksub.add_parser("fetch", help="download the broker jars with Maven into the cache")
    kf.add_argument(
        "--connect",
        action="store_true",
        help="also Kafka Connect's jars (worker, MirrorMaker 2) and its plugins (Debezium "
        "PostgreSQL)",
    )
    ks = ksub.add_parser("start", help="start a broker in the background; prints its address")
    ks.add_argument(
        "--port", type=int, default=None, help="the broker's port (default: the last one if free)"
    )
    ks.add_argument(
        "--brokers",
        type=int,
        default=1,
        help="start a cluster of this many broker+controller nodes (default: %(default)s)",
    )
    ks.add_argument(
        "--secure",
        action="store_true",
        help="a single broker with TLS (its own CA), SASL/SCRAM-SHA-512 and ACLs (no access "
        "without one, admin a super user); prints the admin's client settings",
    )
    kstop = ksub.add_parser("stop", help="stop the broker or cluster started by `kgen kafka start`")
    kstatus = ksub.add_parser("status", help="exit 0 and print the address if it runs")
    for command in (ks, kstop, kstatus):
        command.add_argument(
            "--cluster",
            default="",
            metavar="NAME",
            help="a named broker or cluster apart from the default one, with its own storage "
            "and port (e.g. a second cluster to mirror to)",
        )
    k.set_defaults(func=cmd_kafka)

    mm = sub.add_parser(
        "mirror",
        help="run a generated app's MirrorMaker 2 config",
        description="MirrorMaker 2 from kgen's jar cache.",
    )
    mmsub = mm.add_subparsers(dest="mirror_command", required=True, metavar="ACTION")
    mr = mmsub.add_parser(
        "run",
        help="run MirrorMaker 2 (dedicated mode) with FILE until Ctrl-C or SIGTERM",
        description="Run MirrorMaker 2 in dedicated mode with a properties file (a generated "
        "app's mm2.properties), in the foreground, until Ctrl-C or SIGTERM.",
    )
    mr.add_argument("file", metavar="FILE", help="e.g. generated/cdc/mm2.properties")
    mr.add_argument(
        "--clusters",
        nargs="+",
        default=[],
        metavar="ALIAS",
        help="run only the flows into these target clusters (default: every enabled flow)",
    )
    mm.set_defaults(func=cmd_mirror)

    c = sub.add_parser(
        "connect",
        help="a local Kafka Connect worker (distributed mode) for development",
        description="A local Kafka Connect worker with the Debezium PostgreSQL plugin.",
    )
    csub = c.add_subparsers(dest="connect_command", required=True, metavar="ACTION")
    cs = csub.add_parser("start", help="start a worker in the background; prints its REST URL")
    cs.add_argument(
        "--bootstrap-server",
        default=None,
        help="its Kafka (default: $KGEN_BOOTSTRAP_SERVERS, else the `kgen kafka start` broker)",
    )
    cs.add_argument("--port", type=int, default=None, help="the REST port (default: a free one)")
    csub.add_parser("stop", help="stop the worker started by `kgen connect start`")
    csub.add_parser("status", help="exit 0 and print the URL if it runs")
    c.set_defaults(func=cmd_connect)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        code: int = args.func(args)
    except SpecInvalid as exc:
        print(exc.format(), file=sys.stderr)
        return EXIT_USER
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
