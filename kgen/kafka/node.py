"""`KafkaNode`: one Kafka JVM (broker and controller) and its files, for LocalKafka and clusters."""

import json
import re
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from kgen.kafka.config import HOST, log4j2_config
from kgen.kafka.constants import BROKER_MAIN, KAFKA_VERSION, STORAGE_TOOL_MAIN
from kgen.kafka.errors import BrokerStartError
from kgen.kafka.net import port_accepts
from kgen.kafka.probe import MetadataProbe
from kgen.kafka.process import die_with_parent, signal_group, tail

POLL_INTERVAL_S = 0.2


@dataclass(frozen=True)
class NodePorts:
    """The two loopback ports of a node: clients' (PLAINTEXT) and the controllers' quorum."""

    client: int
    controller: int


def jvm_options(heap: str) -> tuple[str, ...]:
    """Options of a broker JVM; G1 as in Kafka's own scripts."""
    return (
        f"-Xmx{heap}",
        "-XX:+UseG1GC",
        "-XX:MaxGCPauseMillis=20",
        "-XX:+ExplicitGCInvokesConcurrent",
        "-Djava.awt.headless=true",
    )


# The storage tool runs for a second: the quick compiler and the simple collector start
# fastest, which counts when a cluster formats all its nodes at once on two cores.
TOOL_JVM_OPTIONS = ("-Xmx256m", "-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC")


class KafkaNode:
    """A broker+controller JVM with everything under `directory`: `server.properties`,
    `log4j2.xml`, `ports.json` (the ports of its last start), KRaft storage in `kraft/` and
    logs in `logs/`. `name` says which node in errors ("broker", "node 2"); `jvm` are the
    broker JVM's options (`jvm_options()`)."""

    def __init__(
        self,
        directory: Path,
        *,
        name: str,
        jvm: Sequence[str],
        stop_with_parent: bool,
        client_config: Mapping[str, str] | None = None,
    ) -> None:
        self.directory = directory
        self.name = name
        self._jvm = tuple(jvm)
        self._stop_with_parent = stop_with_parent
        # How the readiness probe logs in (a secured broker's admin), besides the address.
        self._client_config = dict(client_config or {})
        self._process: subprocess.Popen[bytes] | None = None
        self._probe: MetadataProbe | None = None
        self._ports: NodePorts | None = None
        self._log_offset = 0  # where server.log stood when the current JVM was launched

    @property
    def server_log(self) -> Path:
        """The broker's log4j output."""
        return self.directory / "logs" / "server.log"

    @property
    def console_log(self) -> Path:
        """The JVM's stdout and stderr (crashes, JVM errors)."""
        return self.directory / "logs" / "broker.out"

    @property
    def storage_dir(self) -> Path:
        """KRaft metadata and topic data (`log.dirs`)."""
        return self.directory / "kraft"

    @property
    def ports(self) -> NodePorts | None:
        """The ports of the current (or last) configuration."""
        return self._ports

    @property
    def pid(self) -> int | None:
        """The JVM's pid while it runs."""
        return self._process.pid if self.is_running() and self._process is not None else None

    def is_running(self) -> bool:
        """True while the JVM is alive."""
        return self._process is not None and self._process.poll() is None

    def recorded_ports(self) -> NodePorts | None:
        """The ports this directory's node last ran on, if it ran before."""
        try:
            raw = json.loads(self._ports_file.read_text(encoding="utf-8"))
            return NodePorts(client=int(raw["client"]), controller=int(raw["controller"]))
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def configure(self, ports: NodePorts, properties: str) -> None:
        """Write the node's config files; `properties` must listen on `ports`."""
        self._ports = ports
        (self.directory / "logs").mkdir(parents=True, exist_ok=True)
        self._properties_file.write_text(properties, encoding="utf-8")
        self._log4j_file.write_text(log4j2_config(self.server_log), encoding="utf-8")
        self._ports_file.write_text(
            json.dumps({"client": ports.client, "controller": ports.controller}) + "\n",
            encoding="utf-8",
        )

    def is_formatted(self) -> bool:
        """True once `kafka-storage format` has run on the storage directory."""
        return (self.storage_dir / "meta.properties").is_file()

    def cluster_id(self) -> str | None:
        """The cluster id the storage was formatted with."""
        try:
            text = (self.storage_dir / "meta.properties").read_text(encoding="utf-8")
        except OSError:
            return None
        match = re.search(r"^cluster\.id=(\S+)$", text, re.MULTILINE)
        return match.group(1) if match else None

    def format(self, java: Path, libs: Path, cluster_id: str, *options: str) -> None:
        """Format the storage (the `kafka-storage format` tool) for cluster `cluster_id`."""
        command = [
            *self._java_command(java, libs, STORAGE_TOOL_MAIN, TOOL_JVM_OPTIONS),
            "format",
            "--config",
            str(self._properties_file),
            "--cluster-id",
            cluster_id,
            *options,
            # Share groups (KIP-932) are on by default in 4.x; kgen apps do not use them.
            "--feature",
            "share.version=0",
        ]
        try:
            result = subprocess.run(
                command,
                cwd=self.directory,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise BrokerStartError(f"formatting Kafka storage failed: {exc}") from exc
        if result.returncode != 0:
            raise BrokerStartError(
                f"formatting Kafka storage in {self.directory} failed (exit {result.returncode})",
                (result.stdout + result.stderr).strip(),
            )

    def launch(self, java: Path, libs: Path) -> None:
        """Start the JVM and return at once; `wait_ready` or `is_ready` tell when it serves.

        With `stop_with_parent` the JVM dies with the *thread* calling this (prctl), so call it
        from a thread that outlives the node.
        """
        command = [
            *self._java_command(java, libs, BROKER_MAIN, self._jvm),
            str(self._properties_file),
        ]
        self._log_offset = self.server_log.stat().st_size if self.server_log.exists() else 0
        self._probe = None
        preexec = die_with_parent() if self._stop_with_parent else None
        with self.console_log.open("ab") as console:
            # Own session: Ctrl-C in the terminal does not reach the broker and a detached
            # broker outlives its starter; stop() signals the whole group.
            self._process = subprocess.Popen(
                command,
                cwd=self.directory,
                stdin=subprocess.DEVNULL,
                stdout=console,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=preexec,  # noqa: PLW1509 - it only calls prctl(2), no locks
            )

    def is_ready(self, timeout: float) -> bool:
        """True once the launched broker serves metadata; raises if the JVM has exited."""
        process = self._process
        if process is None or process.poll() is not None:
            code = None if process is None else process.returncode
            raise self.start_error(f"exited with code {code} while starting")
        # Plain TCP first: the AdminClient is only built once something listens.
        if self._ports is None or not port_accepts(self._ports.client):
            return False
        self._probe = self._probe or MetadataProbe(
            f"{HOST}:{self._ports.client}", self._client_config
        )
        if self._probe.answers(timeout):
            self._probe = None  # its connections and threads are not needed any more
            return True
        return False

    def stop(self, timeout: float) -> None:
        """SIGTERM the JVM (a clean shutdown), SIGKILL it after `timeout`; waits until gone."""
        process, self._process = self._process, None
        self._probe = None
        if process is not None:
            terminate_child(process, timeout)

    def kill(self) -> None:
        """SIGKILL the JVM, as a crash or a power cut would end it; waits until gone."""
        process, self._process = self._process, None
        self._probe = None
        if process is not None and process.poll() is None:
            signal_group(process.pid, signal.SIGKILL)
            process.wait()

    def lost_port_race(self) -> bool:
        """True if the last launch failed to bind a port (the bind error sits above a trace)."""
        try:
            with self.server_log.open("rb") as log:
                log.seek(self._log_offset)
                return b"Address already in use" in log.read()
        except OSError:
            return False

    def start_error(self, problem: str) -> BrokerStartError:
        """`problem` as a BrokerStartError naming this node, with the tail of its logs."""
        return BrokerStartError(
            f"Kafka {KAFKA_VERSION} {self.name} {problem} (logs in {self.server_log.parent})",
            self.log_tail(),
        )

    def log_tail(self, lines: int = 30) -> str:
        """The last `lines` lines of the JVM's console and of the broker log."""
        parts = []
        for path in (self.console_log, self.server_log):
            text = tail(path, lines)
            if text:
                parts.append(f"--- {path} (last lines) ---\n{text}")
        return "\n".join(parts)

    def _java_command(
        self, java: Path, libs: Path, main_class: str, options: Sequence[str]
    ) -> list[str]:
        return [
            str(java),
            *options,
            f"-Dlog4j2.configurationFile={self._log4j_file}",
            f"-Dkafka.logs.dir={self.server_log.parent}",
            "-cp",
            # The JVM expands `dir/*` to every jar in dir; no shell is involved.
            str(libs / "*"),
            main_class,
        ]

    @property
    def _properties_file(self) -> Path:
        return self.directory / "server.properties"

    @property
    def _log4j_file(self) -> Path:
        return self.directory / "log4j2.xml"

    @property
    def _ports_file(self) -> Path:
        return self.directory / "ports.json"


def wait_ready(nodes: Sequence[KafkaNode], deadline: float, timeout: float) -> None:
    """Wait until every launched node serves metadata, polling them in turn (they start in
    parallel); raise the first exit, or a timeout naming a node that is not ready by `deadline`.
    """
    pending = list(nodes)
    while True:
        for node in list(pending):
            # Short probes: a node that listens but is not ready must not hold up the others.
            if node.is_ready(min(2.0, deadline - time.monotonic())):
                pending.remove(node)
        if not pending:
            return
        if time.monotonic() >= deadline:
            late = pending[0]
            where = f"{HOST}:{late.ports.client}" if late.ports is not None else "its port"
            raise late.start_error(f"did not answer on {where} within {timeout:g}s")
        time.sleep(POLL_INTERVAL_S)


def terminate_child(process: subprocess.Popen[bytes], timeout: float) -> None:
    """SIGTERM the group of our child `process`, SIGKILL it after `timeout`; reap it."""
    # Through Popen, not a bare pid: the child stays unreaped until wait() returns, so its pid
    # (and process group) cannot be recycled under us.
    if process.poll() is not None:
        return
    signal_group(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        signal_group(process.pid, signal.SIGKILL)
        process.wait()
