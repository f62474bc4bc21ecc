"""`MirrorMaker`: MirrorMaker 2 in dedicated mode (`org.apache.kafka.connect.mirror.MirrorMaker`
on Connect's classpath), given the settings of an `mm2.properties`.

    properties = mirror_properties("A", a_bootstrap, "B", b_bootstrap, topics="orders.*")
    with MirrorMaker(properties, clusters=["B"]) as mirror:
        ...   # A's topics appear on B as `A.<topic>`, A's groups' offsets are translated

`mirror_properties()` writes a one-way flow with test-friendly intervals (a second, not a
minute) and one replica for every topic MirrorMaker creates; any key can be overridden.
"""

import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from kgen.kafka.config import escape_key, escape_value
from kgen.kafka.connect_jars import fetch_connect
from kgen.kafka.constants import CONNECT_VERSION, MIRROR_MAKER_MAIN
from kgen.kafka.errors import ServiceStartError
from kgen.kafka.jvm import JavaComponent
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


class MirrorMaker(JavaComponent):
    """A dedicated MirrorMaker 2 JVM with `mm2.properties` and logs under `work_dir` (a
    temporary directory removed by `stop()` when not given). `clusters` limits it to the
    flows into those target aliases (`--clusters`); by default it runs every enabled flow."""

    MAIN_CLASS = MIRROR_MAKER_MAIN
    WORK_DIR_PREFIX = "kgen-mirror-"

    def __init__(
        self,
        properties: Mapping[str, str],
        work_dir: Path | None = None,
        *,
        clusters: Sequence[str] = (),
        stop_with_parent: bool = True,
    ) -> None:
        super().__init__(work_dir, JVM_OPTIONS, stop_with_parent)
        self.properties = dict(properties)
        self._clusters = tuple(clusters)

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

    def _start_error(self, problem: str) -> ServiceStartError:
        return ServiceStartError(
            f"MirrorMaker 2 (Kafka Connect {CONNECT_VERSION}) {problem} "
            f"(logs in {self.log_file.parent})",
            self._java.log_tail(),
        )


def _render(properties: Mapping[str, str]) -> str:
    lines = ["# Written by kgen for MirrorMaker 2 (dedicated mode)."]
    lines += [f"{escape_key(key)}={escape_value(value)}" for key, value in properties.items()]
    return "\n".join(lines) + "\n"
