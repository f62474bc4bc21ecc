"""Kafka Streams (Java) as a benchmark system: the Maven project in bench/kafka-streams/,
built on demand into one fat jar, and the command that runs a workload with it.

The jar is `bench/kafka-streams/target/kafka-streams-bench.jar` (kafka-streams 4.4.0, Java 17).
`build()` runs `mvn -q -B package` there only when the jar is missing or older than the pom or a
source file: offline (`-o`) first, and online again when Maven says offline mode lacks something
(the first build fetches the dependencies, ~60 MB, from Maven Central: under a minute). Concurrent
callers wait on a file lock.

    from bench import kafka_streams
    jar = kafka_streams.build()
    argv = kafka_streams.command(jar, "count", "127.0.0.1:9092", "in", "out", "app", state_dir,
                                 stop_when_idle=60)

For `count`, the app's group also reads back `internal_topics("count", app_id)` (its repartition
topic): "all input offsets committed" is not yet "all counts written" there, so a harness must
wait for the group's offsets on that topic too, as for kgen's count app.

The process exits 0 by itself after `--stop-when-idle` seconds RUNNING without a record, or on
SIGTERM after closing cleanly, and prints `processed N records` (input records) to stdout; 1 when
the Kafka Streams instance fails, 2 on bad arguments.
"""

from __future__ import annotations

import fcntl
import re
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

PROJECT = Path(__file__).resolve().parent / "kafka-streams"
JAR = PROJECT / "target" / "kafka-streams-bench.jar"
KAFKA_STREAMS_VERSION = "4.4.0"
WORKLOADS = ("filter", "transform", "count", "windowed-count", "enrich")
MVN_TIMEOUT_S = 900
_ANSI = re.compile(r"\x1b\[[0-9;]*m")  # Maven colours even its -q -B output


class KafkaStreamsBuildError(RuntimeError):
    """Maven is missing or could not build the jar."""


def _sources() -> list[Path]:
    files = [PROJECT / "pom.xml"]
    files.extend(p for p in (PROJECT / "src").rglob("*") if p.is_file())
    return files


def _stale(jar: Path) -> bool:
    if not jar.is_file():
        return True
    built = jar.stat().st_mtime
    return any(p.stat().st_mtime > built for p in _sources())


def _mvn(args: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args,
        cwd=PROJECT,
        capture_output=True,
        text=True,
        timeout=MVN_TIMEOUT_S,
        check=False,
    )


def build(force: bool = False) -> Path:
    """The fat jar, built with Maven first when it is missing or older than its sources.

    Raises KafkaStreamsBuildError, naming the command and with Maven's output, when Maven is
    not installed or the build fails.
    """
    if not force and not _stale(JAR):
        return JAR
    mvn = shutil.which("mvn")
    if mvn is None:
        raise KafkaStreamsBuildError(
            f"Maven (mvn) is not on PATH: it builds {JAR.name} with `mvn -q -B package` in "
            f"{PROJECT} (needs Java 17+)"
        )
    lock_path = JAR.parent / ".build.lock"  # under target/: ignored by git
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another process may be building it right now
        if not force and not _stale(JAR):
            return JAR
        # Offline when the local repository has everything (no network round trips); online
        # when it does not, e.g. on the first build.
        result = _mvn([mvn, "-o", "-q", "-B", "package"])
        if result.returncode != 0 and "offline" in (result.stdout + result.stderr).lower():
            result = _mvn([mvn, "-q", "-B", "package"])
        if result.returncode != 0 or not JAR.is_file():
            output = _ANSI.sub("", result.stdout + result.stderr).strip()
            raise KafkaStreamsBuildError(
                f"`mvn -q -B package` in {PROJECT} failed "
                f"(exit {result.returncode}); its output:\n{output[-6000:]}"
            )
        JAR.touch()  # newer than every source even when Maven found nothing to redo
    return JAR


def command(  # noqa: PLR0917 - the positional signature the harness calls
    jar: Path | str,
    workload: str,
    bootstrap: str,
    input: str,
    output: str,
    app_id: str,
    state_dir: Path | str,
    commit_interval_ms: int | None = None,
    stop_when_idle: float | None = None,
    table: str | None = None,
    config: Mapping[str, str] | None = None,
    jvm_options: Sequence[str] = (),
) -> list[str]:
    """The argv that runs `workload` (filter, transform, count, windowed-count, enrich) with
    the jar; `table` is the topic `enrich` reads as its table (required there, nowhere else).

    Exactly-once (v2), one stream thread, auto.offset.reset=earliest; Kafka Streams' own
    commit interval (100 ms under exactly-once) unless `commit_interval_ms` is given. `config`:
    more Kafka Streams (or client) settings, e.g. enable.transactional.statestores=true;
    `jvm_options` go before `-jar` (e.g. -D settings of the slf4j-simple logger).
    """
    if workload not in WORKLOADS:
        raise ValueError(f"unknown workload {workload!r}: one of {', '.join(WORKLOADS)}")
    if (table is None) != (workload != "enrich"):
        raise ValueError(f"workload {workload!r}: a table topic is for enrich, and needed there")
    argv = [
        "java",
        *jvm_options,
        "-jar",
        str(jar),
        "--workload",
        workload,
        "--bootstrap",
        bootstrap,
        "--input",
        input,
        "--output",
        output,
        "--application-id",
        app_id,
        "--state-dir",
        str(state_dir),
    ]
    if commit_interval_ms is not None:
        argv += ["--commit-interval-ms", str(int(commit_interval_ms))]
    if stop_when_idle is not None:
        argv += ["--stop-when-idle", f"{stop_when_idle:g}"]
    if table is not None:
        argv += ["--table", table]
    for key, value in (config or {}).items():
        argv += ["--config", f"{key}={value}"]
    return argv


def internal_topics(workload: str, app_id: str) -> tuple[str, ...]:
    """The topics the app writes and reads back (its group commits offsets on them): `count`'s
    repartition topic, named after the application id and the store ("counts").
    `windowed-count` groups by the input's key: no repartition topic."""
    if workload not in WORKLOADS:
        raise ValueError(f"unknown workload {workload!r}: one of {', '.join(WORKLOADS)}")
    return (f"{app_id}-counts-repartition",) if workload == "count" else ()


def changelog_topics(workload: str, app_id: str) -> tuple[str, ...]:
    """The changelog of the app's store: "counts" of `count` (key-value) and `windowed-count`
    (window store), "users" of `enrich` (the table, materialized as a key-value store: without
    topology optimization Kafka Streams gives it a changelog, as kgen does)."""
    if workload not in WORKLOADS:
        raise ValueError(f"unknown workload {workload!r}: one of {', '.join(WORKLOADS)}")
    if workload == "enrich":
        return (f"{app_id}-users-changelog",)
    return (f"{app_id}-counts-changelog",) if workload in {"count", "windowed-count"} else ()
