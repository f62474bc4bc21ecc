"""Systems under test: how each one is built, launched, and what it must write.

`kgen` (the generated app), `kafka-streams` (the same workloads in Kafka Streams 4.4.0, Java),
`quix` (Quix Streams 3.28.1 in its own venv), `copy` (a plain copy loop: the physical
reference) and `kgen-alo` (the kgen app under at-least-once).
"""

from __future__ import annotations

import hashlib
import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.data import Counts, Expectation
from bench.workloads import INPUT_TOPIC, Workload

COPY_SCRIPT = Path(__file__).resolve().parent / "copy_loop.py"
# Safety net for a harness that dies without stopping what it launched: the app stops by itself
# after this long without input (it gets SIGTERM long before in a normal run).
IDLE_STOP_S = 60


@dataclass(frozen=True)
class BuiltApp:
    """A generated app on disk, and what the harness must know of it."""

    root: Path
    package: str
    app_id: str
    # Repartition and changelog topics the app creates at start (none for a stateless app).
    internal_topics: tuple[str, ...] = ()
    # Of those, the repartition topics it reads back: its group commits offsets on them too.
    internal_sources: tuple[str, ...] = ()
    has_stores: bool = False


@dataclass(frozen=True)
class Launch:
    argv: list[str]
    cwd: Path
    env: dict[str, str] = field(default_factory=dict)


class System:
    """One way of running a workload: built once per workload, launched once per round.

    `client_config` (librdkafka KEY=VALUE settings) goes to every system's clients alike.
    """

    name = ""
    description = ""
    # The commit interval the system uses when it is not given one (for the report).
    default_commit = ""

    def __init__(self, client_config: Iterable[str] = ()) -> None:
        self.client_args = [arg for item in client_config for arg in ("-X", item)]
        # None: the system's own default commit interval; else every system commits this often.
        self.commit_interval_ms: int | None = None

    def commit_args(self) -> list[str]:
        """`--commit-interval-ms N` when a common interval is set (every system here takes it)."""
        if self.commit_interval_ms is None:
            return []
        return ["--commit-interval-ms", str(self.commit_interval_ms)]

    def unsupported(self, workload: Workload) -> str | None:
        """Why the system does not run `workload` (the harness skips the pair and says so),
        or None when it does."""
        return None

    def prepare(self, workload: Workload, workdir: Path) -> None:
        """Build what the system needs for `workload` (not timed)."""

    def launch(self, workload: Workload, bootstrap: str) -> Launch:
        raise NotImplementedError

    def group(self, workload: Workload) -> str:
        """The consumer group whose committed offsets tell the system's progress."""
        raise NotImplementedError

    def output_topic(self, workload: Workload) -> str:
        raise NotImplementedError

    def internal_topics(self, workload: Workload) -> tuple[str, ...]:
        """Topics the system creates for itself, deleted before each run (a cold start)."""
        return ()

    def internal_sources(self, workload: Workload) -> tuple[str, ...]:
        """Topics besides the input that the system writes and reads back under its group: a
        run is done when the group has committed them to their end too."""
        return ()

    def clean(self, workload: Workload) -> None:
        """Forget local state before a run (its topics are reset by the harness)."""

    def expectation(self, workload: Workload) -> tuple[str, Expectation | Counts]:
        """A name (systems with the same one expect the same output) and the expectation."""
        return workload.name, workload.expect


class Kgen(System):
    """The app kgen generates from the workload's spec, as users run it (exactly-once)."""

    name = "kgen"
    description = "kgen-generated app, exactly-once (default settings)"
    default_commit = "100 ms"
    extra_args: tuple[str, ...] = ()

    def __init__(
        self,
        client_config: Iterable[str] = (),
        app_args: Iterable[str] = (),
        patches: Iterable[Path] = (),
    ) -> None:
        super().__init__(client_config)
        self.app_args = tuple(app_args)
        self.patches = tuple(patches)
        self.apps: dict[str, BuiltApp] = {}

    def prepare(self, workload: Workload, workdir: Path) -> None:
        if workload.name in self.apps:
            return
        root = workdir / f"{self.name}-{workload.name}"
        self.apps[workload.name] = build_app(workload.spec, root)
        for patch in self.patches:
            apply_patch(patch, root)

    def state_dir(self, workload: Workload) -> Path:
        """The app's --state-dir: in the harness's temporary folder, emptied before each run."""
        return self.apps[workload.name].root / "state"

    def launch(self, workload: Workload, bootstrap: str) -> Launch:
        app = self.apps[workload.name]
        argv = [sys.executable, "-m", app.package, "--bootstrap-servers", bootstrap]
        argv += ["--stop-when-idle", str(IDLE_STOP_S), *self.extra_args, *self.commit_args()]
        if app.has_stores:
            argv += ["--state-dir", str(self.state_dir(workload))]
        argv += [*self.client_args, *self.app_args]
        return Launch(argv, app.root, {"PYTHONPATH": str(app.root)})

    def group(self, workload: Workload) -> str:
        return self.apps[workload.name].app_id

    def internal_topics(self, workload: Workload) -> tuple[str, ...]:
        return self.apps[workload.name].internal_topics

    def internal_sources(self, workload: Workload) -> tuple[str, ...]:
        return self.apps[workload.name].internal_sources

    def clean(self, workload: Workload) -> None:
        # No store survives a run: each one starts cold, restoring nothing.
        shutil.rmtree(self.state_dir(workload), ignore_errors=True)

    def fingerprint(self, workload: Workload) -> str:
        """What exactly ran: kgen's templates change, so results name the app's code by the
        sha256 of its package files (12 hex digits)."""
        app = self.apps[workload.name]
        return package_digest(app.root / app.package)

    def output_topic(self, workload: Workload) -> str:
        return workload.output_topic


class KgenAtLeastOnce(Kgen):
    """The same app under at-least-once with the same 100 ms commits: what the transactions
    cost, next to `kgen`."""

    name = "kgen-alo"
    description = "the same app, --guarantee at_least_once, commits every 100 ms"
    extra_args = ("--guarantee", "at_least_once", "--commit-interval-ms", "100")


class KgenWorkers2(Kgen):
    """The same app in two processes (`--workers 2`): what a second core buys, next to `kgen`.
    CPU and peak RSS are the process tree's: the supervisor's and its workers'."""

    name = "kgen-workers-2"
    description = (
        "the same app, --workers 2 (two processes, one group); cpu and rss: supervisor and workers"
    )
    extra_args = ("--workers", "2")


class Copy(System):
    """The baseline: bench/copy_loop.py, a plain consume -> produce loop without transactions."""

    name = "copy"
    description = "plain confluent-kafka consume->produce copy loop, no transactions"
    default_commit = "100 ms"

    def launch(self, workload: Workload, bootstrap: str) -> Launch:
        argv = [sys.executable, str(COPY_SCRIPT), "--bootstrap-servers", bootstrap]
        argv += ["--input", INPUT_TOPIC, "--output", self.output_topic(workload)]
        # librdkafka waits fetch.queue.backoff.ms (1 s) before fetching again once its queue is
        # full; 10 ms keeps the baseline at the client's limit (a -X given wins: it comes last).
        argv += ["--group", self.group(workload), "--max-seconds", "3600"]
        argv += ["-X", "fetch.queue.backoff.ms=10", *self.client_args]
        argv += self.commit_args()
        return Launch(argv, COPY_SCRIPT.parent)

    def group(self, workload: Workload) -> str:
        return "bench-copy"

    def output_topic(self, workload: Workload) -> str:
        return "bench-copy-out"

    def expectation(self, workload: Workload) -> tuple[str, Expectation | Counts]:
        # Whatever the workload: the baseline copies every record, decoding nothing.
        return "copy", _everything


class OtherProcessor(System):
    """A workload app of another stream processor, run as a process of its own: its own app
    id (and group), state dir and output topic per workload. Subclasses say how to get its
    runtime (a jar, a venv's python) and the command line (`kafka_streams.command`,
    `quix.command` take the same arguments)."""

    id_prefix = ""

    def __init__(self, client_config: Iterable[str] = ()) -> None:
        super().__init__(client_config)
        self.runtime: Path | None = None
        self.workdir: Path | None = None

    def get_runtime(self) -> Path:
        raise NotImplementedError

    def command(self, runtime: Path, *args: Any, **kwargs: Any) -> list[str]:
        raise NotImplementedError

    def command_options(self, workload: Workload) -> dict[str, Any]:
        """Keyword arguments of `command` that only some workloads take."""
        return {}

    def prepare(self, workload: Workload, workdir: Path) -> None:
        self.workdir = workdir
        if self.runtime is None:
            self.runtime = self.get_runtime()

    def app_id(self, workload: Workload) -> str:
        return f"{self.id_prefix}-{workload.name}"

    def state_dir(self, workload: Workload) -> Path:
        assert self.workdir is not None
        return self.workdir / f"{self.name}-{workload.name}-state"

    def launch(self, workload: Workload, bootstrap: str) -> Launch:
        assert self.runtime is not None, "prepare() first"
        argv = self.command(
            self.runtime,
            workload.name,
            bootstrap,
            INPUT_TOPIC,
            self.output_topic(workload),
            self.app_id(workload),
            self.state_dir(workload),
            commit_interval_ms=self.commit_interval_ms,
            stop_when_idle=IDLE_STOP_S,
            **self.command_options(workload),
        )
        return Launch(argv, self.state_dir(workload).parent)

    def group(self, workload: Workload) -> str:
        return self.app_id(workload)

    def output_topic(self, workload: Workload) -> str:
        return f"{self.app_id(workload)}-out"

    def clean(self, workload: Workload) -> None:
        shutil.rmtree(self.state_dir(workload), ignore_errors=True)


class KafkaStreams(OtherProcessor):
    """The workloads in Kafka Streams 4.4.0 (bench/kafka-streams/, a fat jar run with `java
    -jar`): exactly-once v2, one stream thread, its default commit interval (100 ms under
    exactly-once). The jar is built once with Maven and kept in the cache dir by the digest
    of its sources, so a fresh checkout reuses it. librdkafka settings (-X) do not apply."""

    name = "kafka-streams"
    description = "Kafka Streams 4.4.0 (Java 17, 1 stream thread), exactly-once v2"
    default_commit = "100 ms"
    id_prefix = "bench-ks"

    def get_runtime(self) -> Path:
        return cached_jar()

    def command(self, runtime: Path, *args: Any, **kwargs: Any) -> list[str]:
        from bench import kafka_streams

        return kafka_streams.command(runtime, *args, **kwargs)

    def command_options(self, workload: Workload) -> dict[str, Any]:
        # enrich: the topic read as the table (the app's --table).
        return {"table": workload.tables[0].topic} if workload.tables else {}

    def internal_topics(self, workload: Workload) -> tuple[str, ...]:
        from bench import kafka_streams

        app = self.app_id(workload)
        return (
            *kafka_streams.internal_topics(workload.name, app),
            *kafka_streams.changelog_topics(workload.name, app),
        )

    def internal_sources(self, workload: Workload) -> tuple[str, ...]:
        from bench import kafka_streams

        return kafka_streams.internal_topics(workload.name, self.app_id(workload))


class KafkaStreamsTuned(KafkaStreams):
    """Kafka Streams as a Java user would tune it for throughput on this machine: two stream
    threads, the producer's batches up to 1 MiB with 10 ms of linger, a 1 GiB heap."""

    name = "kafka-streams-tuned"
    description = (
        "Kafka Streams 4.4.0, exactly-once v2, num.stream.threads=2, producer batch.size "
        "1 MiB, linger.ms 10, -Xmx1g"
    )
    id_prefix = "bench-kst"

    def command_options(self, workload: Workload) -> dict[str, Any]:
        return {
            **super().command_options(workload),
            "config": {
                "num.stream.threads": "2",
                "producer.batch.size": str(1 << 20),
                "producer.linger.ms": "10",
            },
            "jvm_options": ("-Xmx1g",),
        }


def cached_jar() -> Path:
    """The Kafka Streams app's jar: from the cache dir when one was built from the same
    sources, else built with Maven (bench/kafka_streams.build) and copied there."""
    from bench import kafka_streams, quix

    digest = hashlib.sha256()
    for path in sorted(kafka_streams._sources()):
        digest.update(path.relative_to(kafka_streams.PROJECT).as_posix().encode() + b"\0")
        digest.update(path.read_bytes())
    cached = quix.cache_root() / "bench" / f"kafka-streams-bench-{digest.hexdigest()[:16]}.jar"
    if cached.is_file():
        return cached
    jar = kafka_streams.build()
    cached.parent.mkdir(parents=True, exist_ok=True)
    tmp = cached.with_suffix(f".{os.getpid()}.tmp")
    shutil.copyfile(jar, tmp)
    tmp.replace(cached)
    return cached


class Quix(OtherProcessor):
    """The workloads in Quix Streams 3.28.1 (bench/quix_app.py in the venv of bench/quix.py):
    exactly-once, Quix's default commit interval (5 s). librdkafka settings (-X) do not
    apply. Quix would create a missing topic with 1 partition: the harness creates the input
    and output topics first; it creates its own repartition and changelog topics."""

    name = "quix"
    description = "Quix Streams 3.28.1, exactly-once"
    default_commit = "5 s"
    id_prefix = "bench-quix"

    def unsupported(self, workload: Workload) -> str | None:
        if workload.tables:
            return (
                "Quix Streams has no KTable stream-table join (Kafka Streams' KStream#join with "
                "a KTable); its nearest, StreamingDataFrame.join_asof (the other topic's latest "
                "record at or before each record's timestamp, from a store of versions), has no "
                "twin in this harness: quix is left out of this workload"
            )
        return None

    def get_runtime(self) -> Path:
        from bench import quix

        return quix.ensure_venv()

    def command(self, runtime: Path, *args: Any, **kwargs: Any) -> list[str]:
        from bench import quix

        return quix.command(runtime, *args, **kwargs)

    def internal_topics(self, workload: Workload) -> tuple[str, ...]:
        app = self.app_id(workload)
        if workload.name == "windowed-count":
            # The window's store, named after its definition: no repartition (no group_by).
            return (f"changelog__{app}--{INPUT_TOPIC}--tumbling_window_60000_count",)
        if workload.name != "count":
            return ()
        return (
            *self.internal_sources(workload),
            f"changelog__{app}--repartition.{INPUT_TOPIC}.user--default",
        )

    def internal_sources(self, workload: Workload) -> tuple[str, ...]:
        # Its group commits offsets on the repartition topic too.
        if workload.name != "count":
            return ()
        return (f"repartition__{self.app_id(workload)}--{INPUT_TOPIC}--user",)


def _everything(_key: bytes, value: bytes, _obj: dict[str, Any]) -> Iterable[bytes]:
    return (value,)


def build_app(spec: Path, root: Path) -> BuiltApp:
    """Generate the app of `spec` into `root` with kgen's API."""
    # Imported here: only the kgen systems (and the restore benchmark) need the generator.
    from kgen.codegen import emit, render
    from kgen.plan.planner import plan
    from kgen.spec.load import load_spec

    loaded = load_spec(spec, display_path=f"bench/specs/{spec.name}")
    app = plan(loaded)
    emit.write(render.render(app), root)
    return BuiltApp(
        root=root,
        package=app.package,
        app_id=app.app_id,
        internal_topics=tuple(t.name for t in app.internal_topics),
        internal_sources=tuple(app.internal_source_topics),
        has_stores=bool(app.stores),
    )


def package_digest(package_dir: Path) -> str:
    """The sha256 of a package's Python files (12 hex digits)."""
    digest = hashlib.sha256()
    for path in sorted(package_dir.glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


def apply_patch(patch: Path, root: Path) -> None:
    """Apply a unified diff (paths like a/<package>/runtime.py) to a generated app: how a
    proposed change of the templates is measured before it is made (bench/proposals/)."""
    result = subprocess.run(
        ["patch", "-p1", "--batch", "--forward", "-d", str(root), "-i", str(patch.resolve())],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if result.returncode != 0:
        raise ValueError(f"{patch} does not apply to the generated app:\n{result.stdout}")


class Quix100(Quix):
    """Quix Streams committing every 100 ms, as kgen and Kafka Streams do under exactly-once:
    the comparison at equal commit intervals (`quix` keeps Quix's own 5 s)."""

    name = "quix-100ms"
    description = "Quix Streams 3.28.1, exactly-once, commit interval 100 ms"
    default_commit = "100 ms"
    id_prefix = "bench-quix100"

    def launch(self, workload: Workload, bootstrap: str) -> Launch:
        if self.commit_interval_ms is None:
            self.commit_interval_ms = 100
            try:
                return super().launch(workload, bootstrap)
            finally:
                self.commit_interval_ms = None
        return super().launch(workload, bootstrap)


class KgenPatched(Kgen):
    """The same app with the `--kgen-patch` diffs applied: a proposed change of the templates,
    run beside the unpatched `kgen` in the same rounds (alternating, same broker), so the
    ratio to kgen is the change's effect."""

    name = "kgen-patched"
    description = "the same app with --kgen-patch applied (a proposed template change)"


SYSTEMS: dict[str, type[System]] = {
    s.name: s
    for s in (
        Kgen,
        KafkaStreams,
        KafkaStreamsTuned,
        Quix,
        Quix100,
        Copy,
        KgenAtLeastOnce,
        KgenWorkers2,
        KgenPatched,
    )
}


def make_systems(
    names: Iterable[str],
    client_config: Iterable[str] = (),
    app_args: str = "",
    patches: Iterable[Path] = (),
) -> list[System]:
    """Systems by name, in the order given; `app_args` go to the kgen apps' command line and
    `patches` are applied to the kgen apps after they are generated: to `kgen-patched` alone
    when it runs (the others are the baseline), else to every kgen app."""
    names = list(names)
    patches = tuple(patches)
    if KgenPatched.name in names and not patches:
        raise ValueError(f"{KgenPatched.name} needs --kgen-patch: the change to measure")
    out: list[System] = []
    for name in names:
        if name not in SYSTEMS:
            raise ValueError(f"unknown system {name!r}; known: {', '.join(SYSTEMS)}")
        cls = SYSTEMS[name]
        if issubclass(cls, Kgen):
            patched = cls is KgenPatched or KgenPatched.name not in names
            out.append(cls(client_config, shlex.split(app_args), patches if patched else ()))
        else:
            out.append(cls(client_config))
    return out


def child_env(launch: Launch) -> dict[str, str]:
    """The environment of a launched system: ours, plus what the launch adds."""
    return {**os.environ, **launch.env}
