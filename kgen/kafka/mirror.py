"""`MirrorMaker`: MirrorMaker 2 in dedicated mode (`org.apache.kafka.connect.mirror.MirrorMaker`
on Connect's classpath), given the settings of an `mm2.properties`.

    properties = mirror_properties("A", a_bootstrap, "B", b_bootstrap, topics="orders.*")
    with MirrorMaker(properties, clusters=["B"]) as mirror:
        ...   # A's topics appear on B as `A.<topic>`, A's groups' offsets are translated

`mirror_properties()` writes a one-way flow with test-friendly intervals (a second, not a
minute) and one replica for every topic MirrorMaker creates; any key can be overridden.
"""

import shutil
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Self

from kgen.kafka.config import escape_value
from kgen.kafka.connect_jars import fetch_connect
from kgen.kafka.constants import CONNECT_VERSION, MIRROR_MAKER_MAIN
from kgen.kafka.errors import ServiceStartError
from kgen.kafka.jvm import JavaService
from kgen.kafka.node import jvm_options
from kgen.kafka.tools import require_java

JVM_OPTIONS = jvm_options(heap="512m")
POLL_INTERVAL_S = 0.25
# Logged by MirrorMaker.start() once every herder has been started.
_STARTED = "Kafka MirrorMaker started"


def mirror_properties(
    source: str,
    source_bootstrap: str,
    target: str,
    target_bootstrap: str,
    *,
    topics: str = ".*",
    groups: str = ".*",
    replication_factor: int = 1,
    overrides: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The settings of a one-way `source->target` flow of the topics and consumer groups
    matching the `topics` and `groups` regexes, with group offsets synced to `target`."""
    replicas = str(replication_factor)
    return {
        "clusters": f"{source}, {target}",
        f"{source}.bootstrap.servers": source_bootstrap,
        f"{target}.bootstrap.servers": target_bootstrap,
        f"{source}->{target}.enabled": "true",
        f"{source}->{target}.topics": topics,
        f"{source}->{target}.groups": groups,
        f"{target}->{source}.enabled": "false",
        # Every topic MirrorMaker creates: the mirrored ones, its own, and the internal topics
        # of the Connect herder it runs per flow.
        "replication.factor": replicas,
        "checkpoints.topic.replication.factor": replicas,
        "heartbeats.topic.replication.factor": replicas,
        "offset-syncs.topic.replication.factor": replicas,
        "config.storage.replication.factor": replicas,
        "offset.storage.replication.factor": replicas,
        "status.storage.replication.factor": replicas,
        # 25 and 5 partitions by default, for a herder that stores a few offsets.
        "offset.storage.partitions": "1",
        "status.storage.partitions": "1",
        # Translated offsets land in the target's groups (for groups idle there).
        "sync.group.offsets.enabled": "true",
        # Seconds, not minutes: new topics and groups are found, checkpoints emitted and
        # offsets synced while a test waits.
        "refresh.topics.interval.seconds": "2",
        "refresh.groups.interval.seconds": "2",
        "sync.topic.configs.interval.seconds": "2",
        "emit.checkpoints.interval.seconds": "1",
        "sync.group.offsets.interval.seconds": "1",
        # Offset syncs are written when the source task commits (KAFKA-16798): every second,
        # not every minute. A worker setting: MirrorMaker gives the herder of a flow into
        # `target` only the target cluster's settings. And one sync per record.
        f"{target}.offset.flush.interval.ms": "1000",
        # Plugins found through their service manifests only: the reflective scan of the
        # classpath (by MirrorMaker, then again by the herder) takes seconds each.
        "plugin.discovery": "service_load",
        f"{target}.plugin.discovery": "service_load",
        "offset.lag.max": "0",
        **(overrides or {}),
    }


class MirrorMaker:
    """A dedicated MirrorMaker 2 JVM with `mm2.properties` and logs under `work_dir` (a
    temporary directory removed by `stop()` when not given). `clusters` limits it to the
    flows into those target aliases (`--clusters`); by default it runs every enabled flow."""

    def __init__(
        self,
        properties: Mapping[str, str],
        work_dir: Path | None = None,
        *,
        clusters: Sequence[str] = (),
        stop_with_parent: bool = True,
    ) -> None:
        self.properties = dict(properties)
        self._clusters = tuple(clusters)
        self._owns_work_dir = work_dir is None
        self._work_dir = None if work_dir is None else Path(work_dir)
        self._stop_with_parent = stop_with_parent
        self._service: JavaService | None = None

    @property
    def work_dir(self) -> Path:
        """`mm2.properties`, `log4j2.xml` and `logs/`; a temporary one made on first use."""
        if self._work_dir is None:
            self._work_dir = Path(tempfile.mkdtemp(prefix="kgen-mirror-"))
        return self._work_dir

    @property
    def log_file(self) -> Path:
        """MirrorMaker's log4j output (every herder and connector of it)."""
        return self._java.log_file

    @property
    def pid(self) -> int | None:
        return self._java.pid

    def is_running(self) -> bool:
        return self._service is not None and self._service.is_running()

    def start(self, timeout: float = 90.0) -> None:
        """Fetch Connect's jars if needed, start MirrorMaker and wait until it has started
        its herders (replication then begins within the refresh intervals). Raises
        `ServiceStartError` with the tail of its log."""
        if self.is_running():
            return
        libs = fetch_connect()
        java = require_java()
        self.work_dir.mkdir(parents=True, exist_ok=True)
        config = self.work_dir / "mm2.properties"
        config.write_text(_render(self.properties), encoding="utf-8")
        args = [str(config)]
        if self._clusters:
            args += ["--clusters", *self._clusters]
        self._java.launch(java, libs, args)
        deadline = time.monotonic() + timeout
        while _STARTED not in self._java.log_since_launch():
            if not self._java.is_running():
                raise self._start_error(f"exited with code {self._java.exit_code()}")
            if time.monotonic() >= deadline:
                self._java.stop(10.0)
                raise self._start_error(f"did not start within {timeout:g}s")
            time.sleep(POLL_INTERVAL_S)

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM MirrorMaker (it stops its herders cleanly), SIGKILL after `timeout`."""
        if self._service is not None:
            self._service.stop(timeout)
        if self._owns_work_dir and self._work_dir is not None:
            shutil.rmtree(self._work_dir, ignore_errors=True)
            self._work_dir = None
            self._service = None

    def log_tail(self, lines: int = 30) -> str:
        return self._java.log_tail(lines)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def _java(self) -> JavaService:
        if self._service is None:
            self._service = JavaService(
                self.work_dir,
                main_class=MIRROR_MAKER_MAIN,
                jvm=JVM_OPTIONS,
                stop_with_parent=self._stop_with_parent,
            )
        return self._service

    def _start_error(self, problem: str) -> ServiceStartError:
        return ServiceStartError(
            f"MirrorMaker 2 (Kafka Connect {CONNECT_VERSION}) {problem} "
            f"(logs in {self.log_file.parent})",
            self._java.log_tail(),
        )


def _render(properties: Mapping[str, str]) -> str:
    lines = ["# Written by kgen for MirrorMaker 2 (dedicated mode)."]
    lines += [f"{key}={escape_value(value)}" for key, value in properties.items()]
    return "\n".join(lines) + "\n"
