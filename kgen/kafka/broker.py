"""`LocalKafka`: a real single-node KRaft Kafka broker on 127.0.0.1, run from the cached jars."""

import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Self

from kgen.kafka.config import HOST, log4j2_config, new_cluster_id, server_properties
from kgen.kafka.constants import BROKER_MAIN, KAFKA_VERSION, STORAGE_TOOL_MAIN
from kgen.kafka.errors import BrokerStartError, LocalKafkaError
from kgen.kafka.fetch import fetch
from kgen.kafka.net import free_ports, port_accepts
from kgen.kafka.probe import MetadataProbe
from kgen.kafka.process import die_with_parent, signal_group, tail
from kgen.kafka.tools import require_java

# Small enough for a 2-core CI box next to the apps under test; G1 as in Kafka's own scripts.
JVM_OPTIONS = (
    "-Xmx1g",
    "-XX:+UseG1GC",
    "-XX:MaxGCPauseMillis=20",
    "-XX:+ExplicitGCInvokesConcurrent",
    "-Djava.awt.headless=true",
)
_AUTO_PORT_ATTEMPTS = 3
_POLL_INTERVAL_S = 0.2


class LocalKafka:
    """A Kafka broker+controller JVM with its config, storage and logs under `data_dir`.

    Without `data_dir` a temporary directory is used and removed by `stop()`. A given
    `data_dir` is kept, and a later `start()` on it reuses the formatted storage (topics
    survive). With `stop_with_parent` (Linux) the JVM is terminated when the process that
    started it dies, so it must be started from a thread that lives as long as the broker.
    """

    def __init__(
        self,
        data_dir: Path | None = None,
        port: int | None = None,
        *,
        stop_with_parent: bool = True,
    ) -> None:
        self._owns_data_dir = data_dir is None
        self._data_dir = None if data_dir is None else Path(data_dir)
        self._requested_port = port
        self._stop_with_parent = stop_with_parent
        self._port: int | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._log_offset = 0  # where server.log stood when the current JVM was launched

    @property
    def data_dir(self) -> Path:
        """Config, KRaft storage (`kraft/`) and logs (`logs/`) of this broker.

        A temporary one is created on first use, so an unused `LocalKafka()` leaves nothing.
        """
        if self._data_dir is None:
            self._data_dir = Path(tempfile.mkdtemp(prefix="kgen-kafka-"))
        return self._data_dir

    @property
    def server_log(self) -> Path:
        """The broker's log4j output."""
        return self.data_dir / "logs" / "server.log"

    @property
    def console_log(self) -> Path:
        """The JVM's stdout and stderr (crashes, JVM errors)."""
        return self.data_dir / "logs" / "broker.out"

    @property
    def port(self) -> int:
        """The client (PLAINTEXT) port; only known once started."""
        if self._port is None:
            raise LocalKafkaError("LocalKafka has not been started")
        return self._port

    @property
    def bootstrap_servers(self) -> str:
        """`127.0.0.1:PORT`, for `bootstrap.servers`."""
        return f"{HOST}:{self.port}"

    @property
    def pid(self) -> int | None:
        """The broker JVM's pid while it runs."""
        return self._process.pid if self.is_running() and self._process is not None else None

    def is_running(self) -> bool:
        """True while the broker process is alive."""
        return self._process is not None and self._process.poll() is None

    def start(self, timeout: float = 90.0) -> str:
        """Fetch the jars if needed, start the broker, wait until it serves metadata.

        Returns the bootstrap servers. `timeout` bounds the wait for the broker, not the
        one-time Maven download. Raises `BrokerStartError` with the broker log's tail.
        """
        if self.is_running():
            return self.bootstrap_servers
        libs = fetch()
        java = require_java()
        deadline = time.monotonic() + timeout
        if self._requested_port is not None and port_accepts(self._requested_port):
            raise BrokerStartError(f"port {HOST}:{self._requested_port} is already in use")
        # A random port can be taken between picking and binding it; only then is a retry useful.
        attempts = 1 if self._requested_port is not None else _AUTO_PORT_ATTEMPTS
        for attempt in range(1, attempts + 1):
            self._prepare(java, libs)
            self._launch(java, libs)
            try:
                self._wait_ready(deadline, timeout)
            except BrokerStartError:
                self._kill()
                if attempt < attempts and self._lost_port_race():
                    continue
                raise
            break
        return self.bootstrap_servers

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM the broker (a clean shutdown takes a few seconds), SIGKILL after `timeout`."""
        process, self._process = self._process, None
        if process is not None:
            _terminate_child(process, timeout)
        if self._owns_data_dir and self._data_dir is not None:
            shutil.rmtree(self._data_dir, ignore_errors=True)
            self._data_dir = None

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

    def _prepare(self, java: Path, libs: Path) -> None:
        broker_port, controller_port = free_ports(2)
        if self._requested_port is not None:
            broker_port = self._requested_port
            if controller_port == broker_port:
                controller_port = next(p for p in free_ports(2) if p != broker_port)
        self._port = broker_port
        (self.data_dir / "logs").mkdir(parents=True, exist_ok=True)
        storage = self.data_dir / "kraft"
        self._properties_file.write_text(
            server_properties(broker_port, controller_port, storage), encoding="utf-8"
        )
        self._log4j_file.write_text(log4j2_config(self.server_log), encoding="utf-8")
        # A restart on the same data_dir keeps its storage; the dynamic quorum then accepts
        # the new controller port because the node is its only voter.
        if not (storage / "meta.properties").is_file():
            self._format(java, libs)

    def _format(self, java: Path, libs: Path) -> None:
        command = [
            *self._java_command(java, libs, STORAGE_TOOL_MAIN),
            "format",
            "--config",
            str(self._properties_file),
            "--cluster-id",
            new_cluster_id(),
            "--standalone",
            # Share groups (KIP-932) are on by default in 4.x; kgen apps do not use them.
            "--feature",
            "share.version=0",
        ]
        try:
            result = subprocess.run(
                command,
                cwd=self.data_dir,
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
                f"formatting Kafka storage in {self.data_dir} failed (exit {result.returncode})",
                (result.stdout + result.stderr).strip(),
            )

    def _launch(self, java: Path, libs: Path) -> None:
        command = [*self._java_command(java, libs, BROKER_MAIN), str(self._properties_file)]
        self._log_offset = self.server_log.stat().st_size if self.server_log.exists() else 0
        preexec = die_with_parent() if self._stop_with_parent else None
        with self.console_log.open("ab") as console:
            # Own session: Ctrl-C in the terminal does not reach the broker and a detached
            # broker outlives its starter; stop() signals the whole group.
            self._process = subprocess.Popen(
                command,
                cwd=self.data_dir,
                stdin=subprocess.DEVNULL,
                stdout=console,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=preexec,  # noqa: PLW1509 - it only calls prctl(2), no locks
            )

    def _wait_ready(self, deadline: float, timeout: float) -> None:
        probe: MetadataProbe | None = None
        while True:
            process = self._process
            if process is None or process.poll() is not None:
                code = None if process is None else process.returncode
                raise BrokerStartError(
                    f"Kafka {KAFKA_VERSION} broker exited with code {code} while starting "
                    f"(logs in {self.server_log.parent})",
                    self._log_tail(),
                )
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise BrokerStartError(
                    f"Kafka {KAFKA_VERSION} broker did not answer on {self.bootstrap_servers} "
                    f"within {timeout:g}s (logs in {self.server_log.parent})",
                    self._log_tail(),
                )
            # Plain TCP first: the AdminClient is only built once something listens.
            if port_accepts(self.port):
                probe = probe or MetadataProbe(self.bootstrap_servers)
                if probe.answers(min(5.0, remaining)):
                    return
            time.sleep(_POLL_INTERVAL_S)

    def _kill(self) -> None:
        process, self._process = self._process, None
        if process is not None:
            _terminate_child(process, 10.0)

    def _lost_port_race(self) -> bool:
        """True if this launch failed to bind a port (the bind error sits above a long trace)."""
        try:
            with self.server_log.open("rb") as log:
                log.seek(self._log_offset)
                return b"Address already in use" in log.read()
        except OSError:
            return False

    def _log_tail(self) -> str:
        parts = []
        for path in (self.console_log, self.server_log):
            text = tail(path, 30)
            if text:
                parts.append(f"--- {path} (last lines) ---\n{text}")
        return "\n".join(parts)

    def _java_command(self, java: Path, libs: Path, main_class: str) -> list[str]:
        return [
            str(java),
            *JVM_OPTIONS,
            f"-Dlog4j2.configurationFile={self._log4j_file}",
            f"-Dkafka.logs.dir={self.server_log.parent}",
            "-cp",
            # The JVM expands `dir/*` to every jar in dir; no shell is involved.
            str(libs / "*"),
            main_class,
        ]

    @property
    def _properties_file(self) -> Path:
        return self.data_dir / "server.properties"

    @property
    def _log4j_file(self) -> Path:
        return self.data_dir / "log4j2.xml"


def _terminate_child(process: subprocess.Popen[bytes], timeout: float) -> None:
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
