"""`LocalKafka`: a real single-node KRaft Kafka broker on 127.0.0.1, run from the cached jars."""

import shutil
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Self

from kgen.kafka.config import HOST, new_cluster_id, server_properties
from kgen.kafka.errors import BrokerStartError, LocalKafkaError
from kgen.kafka.fetch import fetch
from kgen.kafka.net import free_ports, port_free
from kgen.kafka.node import KafkaNode, NodePorts, jvm_options, wait_ready
from kgen.kafka.security import Security
from kgen.kafka.tools import require_java

# Small enough for a 2-core CI box next to the apps under test.
JVM_OPTIONS = jvm_options(heap="1g")
_AUTO_PORT_ATTEMPTS = 3


class LocalKafka:
    """A Kafka broker+controller JVM with its config, storage and logs under `data_dir`.

    Without `data_dir` a temporary directory is used and removed by `stop()`. A given
    `data_dir` is kept, and a later `start()` on it reuses the formatted storage (topics
    survive) and, when it is free, the port it last ran on. Once started, a `LocalKafka`
    keeps its port: `stop()` then `start()` (or `restart()`, or `kill()` then `start()`)
    brings the broker back on the same address. With `stop_with_parent` (Linux) the JVM is
    terminated when the process that started it dies, so it must be started from a thread
    that lives as long as the broker.
    """

    def __init__(
        self,
        data_dir: Path | None = None,
        port: int | None = None,
        *,
        stop_with_parent: bool = True,
        secure: bool = False,
    ) -> None:
        self._secure = secure
        self._owns_data_dir = data_dir is None
        self._data_dir = None if data_dir is None else Path(data_dir)
        self._requested_port = port
        self._stop_with_parent = stop_with_parent
        self._port: int | None = None
        self._node_of: KafkaNode | None = None

    @property
    def data_dir(self) -> Path:
        """Config, KRaft storage (`kraft/`) and logs (`logs/`) of this broker.

        A temporary one is created on first use, so an unused `LocalKafka()` leaves nothing.
        """
        if self._data_dir is None:
            self._data_dir = Path(tempfile.mkdtemp(prefix="kgen-kafka-"))
        return self._data_dir

    @property
    def security(self) -> Security | None:
        """A secured broker's CA, keystore and admin password (see kgen.kafka.security);
        None for a plaintext one. With `secure` clients connect over SASL_SSL with SCRAM and
        need ACLs for everything but the admin (`User:admin`, a super user)."""
        if not self._secure:
            return None
        security = Security(self.data_dir / "security")
        security.ensure()
        return security

    def client_config(
        self, username: str | None = None, password: str | None = None
    ) -> dict[str, str]:
        """librdkafka settings (besides `bootstrap.servers`) of a client of this broker: none
        for a plaintext broker; SASL_SSL as `username` (default: the admin) when secured."""
        security = self.security
        if security is None:
            return {}
        if username is None:
            return security.client_config()
        return security.client_config(username, password)

    def add_user(self, username: str, password: str, timeout: float = 30.0) -> None:
        """Create (or change) the SCRAM-SHA-512 credentials of `username` on a secured broker."""
        from confluent_kafka.admin import AdminClient
        from confluent_kafka.admin._scram import (
            ScramCredentialInfo,
            ScramMechanism,
            UserScramCredentialUpsertion,
        )

        admin = AdminClient({"bootstrap.servers": self.bootstrap_servers, **self.client_config()})
        upsert = UserScramCredentialUpsertion(
            username, ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 8192), password.encode()
        )
        futures = admin.alter_user_scram_credentials([upsert], request_timeout=timeout)
        for future in futures.values():
            future.result()

    @property
    def server_log(self) -> Path:
        """The broker's log4j output."""
        return self._node.server_log

    @property
    def console_log(self) -> Path:
        """The JVM's stdout and stderr (crashes, JVM errors)."""
        return self._node.console_log

    @property
    def port(self) -> int:
        """The client port (PLAINTEXT, or SASL_SSL when secured); only known once started."""
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
        return self._node_of.pid if self._node_of is not None else None

    def is_running(self) -> bool:
        """True while the broker process is alive."""
        return self._node_of is not None and self._node_of.is_running()

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
        # The port asked for, or the one this object already ran on: a restart keeps it.
        fixed_port = self._requested_port if self._requested_port is not None else self._port
        if fixed_port is not None and not port_free(fixed_port):
            raise BrokerStartError(f"port {HOST}:{fixed_port} is already in use")
        # A random port can be taken between picking and binding it; only then is a retry useful.
        attempts = 1 if fixed_port is not None else _AUTO_PORT_ATTEMPTS
        node = self._node
        for attempt in range(1, attempts + 1):
            self._prepare(java, libs, self._choose_ports(fixed_port, first_try=attempt == 1))
            node.launch(java, libs)
            try:
                wait_ready([node], deadline, timeout)
            except BrokerStartError:
                node.stop(10.0)
                if attempt < attempts and node.lost_port_race():
                    continue
                if fixed_port is None:
                    self._port = None  # never ran on it: the next start picks again
                raise
            break
        return self.bootstrap_servers

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM the broker (a clean shutdown takes a few seconds), SIGKILL after `timeout`.

        A given `data_dir` is kept (a later `start()` comes back on the same port with the
        same topics); a temporary one is removed: use `restart()` to keep its data.
        """
        if self._node_of is not None:
            self._node_of.stop(timeout)
        if self._owns_data_dir and self._data_dir is not None:
            shutil.rmtree(self._data_dir, ignore_errors=True)
            self._data_dir = None
            self._node_of = None

    def kill(self) -> None:
        """SIGKILL the broker, as a crash would; its data is kept and `start()` brings it back
        on the same port (recovering its logs, as after a real crash)."""
        if self._node_of is not None:
            self._node_of.kill()

    def restart(self, downtime: float = 0.0, timeout: float = 90.0) -> str:
        """Stop the broker cleanly, wait `downtime` seconds, start it again on the same port
        with the same data (also a temporary `data_dir`); returns the bootstrap servers."""
        if self._node_of is not None:
            self._node_of.stop(30.0)
        time.sleep(downtime)
        return self.start(timeout)

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
    def _node(self) -> KafkaNode:
        if self._node_of is None:
            self._node_of = KafkaNode(
                self.data_dir,
                name="broker",
                jvm=JVM_OPTIONS,
                stop_with_parent=self._stop_with_parent,
                client_config=self.client_config(),
            )
        return self._node_of

    def _choose_ports(self, fixed_port: int | None, *, first_try: bool) -> NodePorts:
        node = self._node
        previous = node.ports or node.recorded_ports()
        if fixed_port is None and first_try and previous is not None:
            if port_free(previous.client) and port_free(previous.controller):
                return previous  # the address the broker had before, as clients remember it
        client, controller = free_ports(2)
        if fixed_port is None:
            return NodePorts(client, controller)
        if previous is not None and previous.controller != fixed_port:
            if port_free(previous.controller):
                return NodePorts(fixed_port, previous.controller)
        if controller == fixed_port:
            controller = client
        return NodePorts(fixed_port, controller)

    def _prepare(self, java: Path, libs: Path, ports: NodePorts) -> None:
        node = self._node
        self._port = ports.client
        security = self.security
        settings = None if security is None else security.server_settings()
        node.configure(
            ports, server_properties(ports.client, ports.controller, node.storage_dir, settings)
        )
        # A restart on the same data_dir keeps its storage; the dynamic quorum then accepts
        # a new controller port because the node is its only voter.
        if not node.is_formatted():
            scram = () if security is None else security.format_options()
            node.format(java, libs, new_cluster_id(), "--standalone", *scram)
