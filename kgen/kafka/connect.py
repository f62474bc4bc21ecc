"""`ConnectWorker`: a real Kafka Connect worker, distributed mode, on 127.0.0.1.

The API other code relies on (kept stable):

    worker = ConnectWorker(bootstrap_servers, work_dir=None, plugins=("debezium-postgres",))
    url = worker.start()         # fetch jars and plugins if needed, start, wait until ready
    worker.url                   # "http://127.0.0.1:PORT", the REST API
    worker.bootstrap_servers     # the Kafka cluster holding its config/offset/status topics
    worker.client                # a ConnectClient (kgen.kafka.connect_rest) for the REST API
    worker.log_file              # its log4j output; its tail is in every start error
    worker.stop()                # clean shutdown; also a context manager

Ready means: the REST API answers `GET /health` (the worker joined its group) and
`GET /connector-plugins` lists Connect's own file connectors and every requested plugin's
connectors. Records are JSON without the schema envelope by default (`schemas.enable=false`);
a connector's config may set its own converters.

`plugins` names plugins kgen fetches with Maven (`kgen.kafka.connect_jars.PLUGINS`:
`debezium-postgres`); `plugin_path` adds directories of your own to `plugin.path`. Plugins are
discovered through their ServiceLoader manifests only (`plugin.discovery=service_load`: seconds
faster than scanning every class); for a plugin without them pass
`worker_config={"plugin.discovery": "hybrid_warn"}`.

Connect runs at CONNECT_VERSION (4.3.1), not the broker's 4.4.0: see kgen.kafka.constants.
"""

import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from kgen.kafka.config import HOST, escape_key, escape_value
from kgen.kafka.connect_jars import fetch_connect, fetch_plugins, find_plugin
from kgen.kafka.connect_rest import ConnectClient
from kgen.kafka.constants import CONNECT_MAIN, CONNECT_VERSION
from kgen.kafka.errors import ConnectError, LocalKafkaError, ServiceStartError
from kgen.kafka.jvm import JavaComponent
from kgen.kafka.net import free_ports, port_accepts
from kgen.kafka.node import jvm_options
from kgen.kafka.tools import require_java

JVM_OPTIONS = jvm_options(heap="512m")
POLL_INTERVAL_S = 0.25
_AUTO_PORT_ATTEMPTS = 3

# Connect's own connectors (connect-file): a worker that lists them has scanned its classpath.
FILE_SOURCE = "org.apache.kafka.connect.file.FileStreamSourceConnector"
FILE_SINK = "org.apache.kafka.connect.file.FileStreamSinkConnector"


def worker_properties(  # noqa: PLR0917 - every setting is named at its call site
    bootstrap_servers: str,
    port: int,
    group_id: str,
    plugin_path: Sequence[Path],
    replication_factor: int = 1,
    overrides: Mapping[str, str] | None = None,
) -> str:
    """A distributed worker's config: REST on 127.0.0.1:`port`, its three internal topics
    named after `group_id` with `replication_factor` replicas."""
    settings = {
        "bootstrap.servers": bootstrap_servers,
        "group.id": group_id,
        "config.storage.topic": f"{group_id}-configs",
        "offset.storage.topic": f"{group_id}-offsets",
        "status.storage.topic": f"{group_id}-status",
        "config.storage.replication.factor": str(replication_factor),
        "offset.storage.replication.factor": str(replication_factor),
        "status.storage.replication.factor": str(replication_factor),
        # 25 and 5 partitions by default: creating them is most of a first start's wait.
        "offset.storage.partitions": "1",
        "status.storage.partitions": "1",
        "key.converter": "org.apache.kafka.connect.json.JsonConverter",
        "value.converter": "org.apache.kafka.connect.json.JsonConverter",
        "key.converter.schemas.enable": "false",
        "value.converter.schemas.enable": "false",
        "listeners": f"http://{HOST}:{port}",
        "rest.advertised.host.name": HOST,
        "rest.advertised.port": str(port),
        "rest.advertised.listener": "http",
        # Connect refuses an empty plugin.path: none when only its own connectors are wanted.
        **({"plugin.path": ",".join(str(path) for path in plugin_path)} if plugin_path else {}),
        # Source offsets committed every second, not every minute: a restarted worker (or a
        # test reading the offsets topic) sees where the source stood a moment ago.
        "offset.flush.interval.ms": "1000",
        # A worker that restarts gets its connectors back at once, not after 5 minutes.
        "scheduled.rebalance.max.delay.ms": "0",
        # Manifests only, no reflective scan of every jar (see the module docstring).
        "plugin.discovery": "service_load",
        **(overrides or {}),
    }
    lines = [f"# Written by kgen for a Kafka Connect {CONNECT_VERSION} worker."]
    lines += [f"{escape_key(key)}={escape_value(value)}" for key, value in settings.items()]
    return "\n".join(lines) + "\n"


class ConnectWorker(JavaComponent):
    """A Connect worker JVM with its config and logs under `work_dir` (a temporary directory
    removed by `stop()` when not given). See the module docstring."""

    MAIN_CLASS = CONNECT_MAIN
    WORK_DIR_PREFIX = "kgen-connect-"

    def __init__(
        self,
        bootstrap_servers: str,
        work_dir: Path | None = None,
        *,
        plugins: Sequence[str] = ("debezium-postgres",),
        plugin_path: Sequence[Path] = (),
        group_id: str = "kgen-connect",
        port: int | None = None,
        replication_factor: int = 1,
        worker_config: Mapping[str, str] | None = None,
        stop_with_parent: bool = True,
    ) -> None:
        for name in plugins:
            find_plugin(name)  # an unknown name fails here, not after a JVM start
        super().__init__(work_dir, JVM_OPTIONS, stop_with_parent)
        self.bootstrap_servers = bootstrap_servers
        self.group_id = group_id
        self._plugins = tuple(plugins)
        self._plugin_path = tuple(Path(path) for path in plugin_path)
        self._requested_port = port
        self._port: int | None = None
        self._replication_factor = replication_factor
        self._overrides = dict(worker_config or {})

    @property
    def port(self) -> int:
        """The REST port; only known once started."""
        if self._port is None:
            raise LocalKafkaError("ConnectWorker has not been started")
        return self._port

    @property
    def url(self) -> str:
        """`http://127.0.0.1:PORT`, the worker's REST API."""
        return f"http://{HOST}:{self.port}"

    @property
    def client(self) -> ConnectClient:
        """A client of the REST API."""
        return ConnectClient(self.url)

    def required_connectors(self) -> list[str]:
        """The connector classes `start()` waits for: Connect's file connectors and those of
        every requested plugin."""
        classes = [FILE_SINK, FILE_SOURCE]
        for name in self._plugins:
            classes += find_plugin(name).connector_classes
        return sorted(classes)

    def start(self, timeout: float = 90.0) -> str:
        """Fetch Connect's jars and the plugins if needed, start the worker and wait until it
        is ready (see the module docstring); return its URL. `timeout` bounds the wait, not a
        first Maven download. Raises `ServiceStartError` with the tail of the worker's log."""
        if self.is_running():
            return self.url
        libs = fetch_connect()
        plugin_path = [*fetch_plugins(self._plugins), *self._plugin_path]
        java = require_java()
        deadline = time.monotonic() + timeout
        fixed_port = self._requested_port if self._requested_port is not None else self._port
        attempts = 1 if fixed_port is not None else _AUTO_PORT_ATTEMPTS
        for attempt in range(1, attempts + 1):
            port = fixed_port if fixed_port is not None else free_ports(1)[0]
            self._write_config(port, plugin_path)
            self._java.launch(java, libs, [str(self._properties_file)])
            try:
                self._wait_ready(deadline, timeout)
            except ServiceStartError:
                lost_race = "Address already in use" in self._java.log_since_launch()
                self._java.stop(10.0)
                if attempt < attempts and lost_race:
                    continue
                if fixed_port is None:
                    self._port = None
                raise
            break
        return self.url

    @property
    def _properties_file(self) -> Path:
        return self.work_dir / "worker.properties"

    def _write_config(self, port: int, plugin_path: Sequence[Path]) -> None:
        self._port = port
        self.work_dir.mkdir(parents=True, exist_ok=True)
        text = worker_properties(
            self.bootstrap_servers,
            port,
            self.group_id,
            plugin_path,
            self._replication_factor,
            self._overrides,
        )
        self._properties_file.write_text(text, encoding="utf-8")

    def _wait_ready(self, deadline: float, timeout: float) -> None:
        client = ConnectClient(self.url, timeout=5.0)
        required = self.required_connectors()
        missing = required
        while time.monotonic() < deadline:
            if not self._java.is_running():
                raise self._start_error(f"exited with code {self._java.exit_code()} while starting")
            if port_accepts(self.port) and client.healthy():
                try:
                    loaded = set(client.connector_plugins())
                except ConnectError:
                    loaded = set()
                missing = [name for name in required if name not in loaded]
                if not missing:
                    return
            time.sleep(POLL_INTERVAL_S)
        if missing is not required:
            raise self._start_error(
                f"did not load the connectors {missing} within {timeout:g}s "
                f"(plugin.path: {self._plugin_path_text()})"
            )
        raise self._start_error(f"did not answer on {self.url}/health within {timeout:g}s")

    def _plugin_path_text(self) -> str:
        for line in self._properties_file.read_text(encoding="utf-8").splitlines():
            if line.startswith("plugin.path="):
                return line.removeprefix("plugin.path=") or "empty"
        return "empty"

    def _start_error(self, problem: str) -> ServiceStartError:
        return ServiceStartError(
            f"Kafka Connect {CONNECT_VERSION} worker {problem} (logs in {self.log_file.parent})",
            self._java.log_tail(),
        )
