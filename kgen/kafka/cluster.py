"""`LocalKafkaCluster`: a real multi-node KRaft Kafka cluster on 127.0.0.1, for fault tests."""

import shutil
import tempfile
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import TracebackType
from typing import Self

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from kgen.kafka.config import HOST, cluster_node_properties, new_cluster_id
from kgen.kafka.errors import BrokerStartError, LocalKafkaError
from kgen.kafka.fetch import fetch
from kgen.kafka.net import free_ports, port_free
from kgen.kafka.node import KafkaNode, NodePorts, jvm_options, wait_ready
from kgen.kafka.tools import require_java

DEFAULT_BROKERS = 3
# Three of these and the apps under test share a 2-core CI box. The quick (C1) compiler only:
# three JVMs starting at once spend most of their start-up in the optimising compiler, and
# without it a cluster is up in about 60% of the time; test loads do not need its code.
JVM_OPTIONS = (*jvm_options(heap="512m"), "-XX:TieredStopAtLevel=1")
_AUTO_PORT_ATTEMPTS = 3
_HEALTH_POLL_S = 0.5
_INTERNAL_TOPICS_KEY = "kgen-create-internal-topics"


class LocalKafkaCluster:
    """`brokers` Kafka nodes on loopback, each broker and controller, each on its own ports.

    Every node is a KRaft voter, so 3 nodes keep a quorum (and a controller) with any one of
    them down. Topics, `__consumer_offsets` and `__transaction_state` get 3 replicas and
    min ISR 2 (fewer with fewer nodes), so acks=all writes and transactions go on while one
    node is down. Nodes are named by their Kafka node id, 1..brokers: the ids that metadata
    reports as leaders and replicas.

    Each node keeps its files under `data_dir/node-<id>`. Without `data_dir` a temporary
    directory is used and removed by `stop()`. Once started, every node keeps its ports:
    `start_node()` after `stop_node()` or `kill_node()` brings it back on the same address with
    its data, and it rejoins. A later cluster on the same `data_dir` reuses the storage and,
    when they are all free, the ports. `properties` are extra server settings for every node.
    With `stop_with_parent` (Linux) a JVM dies with the *thread* that started it (prctl), so
    start nodes from a thread that outlives them (the test's own), not a short-lived helper.
    """

    def __init__(
        self,
        brokers: int = DEFAULT_BROKERS,
        data_dir: Path | None = None,
        *,
        properties: Mapping[str, str] | None = None,
        stop_with_parent: bool = True,
    ) -> None:
        if brokers < 1:
            raise ValueError(f"a cluster needs at least one broker, not {brokers}")
        self._brokers = brokers
        self._owns_data_dir = data_dir is None
        self._data_dir = None if data_dir is None else Path(data_dir)
        self._overrides = dict(properties or {})
        self._stop_with_parent = stop_with_parent
        self._ports: dict[int, NodePorts] | None = None  # fixed by the first start
        self._node_map: dict[int, KafkaNode] | None = None  # made on first use (see _nodes)

    @property
    def data_dir(self) -> Path:
        """The nodes' directories (`node-<id>`); a temporary one is created on first use."""
        if self._data_dir is None:
            self._data_dir = Path(tempfile.mkdtemp(prefix="kgen-kafka-cluster-"))
        return self._data_dir

    @property
    def node_ids(self) -> list[int]:
        """1..brokers."""
        return list(range(1, self._brokers + 1))

    @property
    def bootstrap_servers(self) -> str:
        """Every node's client address, comma-separated, for `bootstrap.servers`."""
        return ",".join(f"{HOST}:{self.port(node_id)}" for node_id in self.node_ids)

    def port(self, node_id: int) -> int:
        """The client (PLAINTEXT) port of a node; known once the cluster has started."""
        self._check(node_id)
        if self._ports is None:
            raise LocalKafkaError("LocalKafkaCluster has not been started")
        return self._ports[node_id].client

    def pid(self, node_id: int) -> int | None:
        """A node's JVM pid while it runs."""
        node = self._made_nodes.get(self._check(node_id))
        return None if node is None else node.pid

    def server_log(self, node_id: int) -> Path:
        """A node's log4j output."""
        return self._node(node_id).server_log

    def is_running(self, node_id: int) -> bool:
        """True while the node's JVM is alive."""
        return self.pid(node_id) is not None

    def running_nodes(self) -> list[int]:
        """The ids of the nodes whose JVM is alive."""
        return [node_id for node_id, node in self._made_nodes.items() if node.is_running()]

    def start(self, timeout: float = 120.0) -> str:
        """Start every node that is not running, in parallel; return the bootstrap servers
        once all of them are registered with the cluster (and, on the first start, once
        `__consumer_offsets` and `__transaction_state` exist and are in sync).

        Fetches the jars first if needed (`timeout` does not cover that). Raises
        `BrokerStartError` with the log tail of the node that failed.
        """
        libs = fetch()
        java = require_java()
        deadline = time.monotonic() + timeout
        first_start = self._ports is None
        # Fresh random ports can be taken before a node binds them; only then is a retry useful.
        attempts = _AUTO_PORT_ATTEMPTS if first_start else 1
        for attempt in range(1, attempts + 1):
            if first_start:
                self._ports = self._choose_ports(first_try=attempt == 1)
            down = [node_id for node_id, node in self._nodes.items() if not node.is_running()]
            if not first_start:
                self._require_free_ports(down)
            for node_id in down:
                self._configure(node_id)
            self._format([self._nodes[node_id] for node_id in down], java, libs)
            try:
                self._launch(down, java, libs, deadline, timeout)
                self._wait_health(deadline, timeout, in_sync=False)
                if first_start:
                    self._create_internal_topics(deadline, timeout)
            except BrokerStartError:
                lost_race = any(self._nodes[node_id].lost_port_race() for node_id in down)
                self._stop_nodes(down, 10.0)
                if attempt < attempts and lost_race:
                    continue
                if first_start:
                    self._ports = None
                raise
            break
        return self.bootstrap_servers

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM every node at once (clean shutdowns), SIGKILL any still up after `timeout`.

        A given `data_dir` is kept; a temporary one is removed.
        """
        self._stop_nodes(list(self._made_nodes), timeout)
        if self._owns_data_dir and self._data_dir is not None:
            shutil.rmtree(self._data_dir, ignore_errors=True)

    def kill(self) -> None:
        """SIGKILL every node at once (no clean shutdown: for data about to be thrown away,
        or to test a whole-cluster crash); the data is kept and `start()` recovers it."""
        for node in self._made_nodes.values():
            node.kill()

    def stop_node(self, node_id: int, timeout: float = 30.0) -> None:
        """Shut one node down cleanly (SIGTERM: it hands its leaderships over first); waits
        until it has exited, SIGKILLing it after `timeout`."""
        node = self._made_nodes.get(self._check(node_id))
        if node is not None:
            node.stop(timeout)

    def kill_node(self, node_id: int) -> None:
        """SIGKILL one node, as a crash would end it; waits until it is gone. The cluster only
        notices when its session times out (`broker.session.timeout.ms`, 4 s here)."""
        node = self._made_nodes.get(self._check(node_id))
        if node is not None:
            node.kill()

    def start_node(self, node_id: int, timeout: float = 90.0) -> None:
        """Start a stopped or killed node on its old ports with its data; returns once it
        serves (it has rejoined the quorum and caught up on metadata). `wait_healthy()` then
        tells when its replicas are back in sync."""
        if self._ports is None:
            raise LocalKafkaError("start() the cluster before starting single nodes")
        node = self._node(node_id)
        if node.is_running():
            return
        self._require_free_ports([node_id])
        java = require_java()
        self._launch([node_id], java, fetch(), time.monotonic() + timeout, timeout)

    def restart_node(self, node_id: int, timeout: float = 120.0) -> None:
        """Stop one node cleanly, start it again, and return once every partition is back in
        sync: what a rolling restart waits for before it moves on to the next node."""
        deadline = time.monotonic() + timeout
        self.stop_node(node_id)
        self.start_node(node_id, max(1.0, deadline - time.monotonic()))
        self.wait_healthy(max(1.0, deadline - time.monotonic()))

    def wait_healthy(self, timeout: float = 60.0, *, in_sync: bool = True) -> None:
        """Return once every node is registered with the cluster and, with `in_sync`, every
        partition has a leader and its full set of replicas in sync (no under-replicated
        partitions). All nodes must be running; raises `BrokerStartError` after `timeout`."""
        if self._ports is None:
            raise LocalKafkaError("start() the cluster before waiting for it")
        stopped = [node_id for node_id in self.node_ids if not self.is_running(node_id)]
        if stopped:
            raise LocalKafkaError(f"nodes {stopped} are not running: start_node() them first")
        self._wait_health(time.monotonic() + timeout, timeout, in_sync=in_sync)

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
    def _nodes(self) -> dict[int, KafkaNode]:
        """Every node; the first use creates a temporary data dir when none was given."""
        if self._node_map is None:
            self._node_map = {
                node_id: KafkaNode(
                    self.data_dir / f"node-{node_id}",
                    name=f"node {node_id}",
                    jvm=JVM_OPTIONS,
                    stop_with_parent=self._stop_with_parent,
                )
                for node_id in self.node_ids
            }
        return self._node_map

    @property
    def _made_nodes(self) -> dict[int, KafkaNode]:
        """The nodes if they exist yet: asking whether one runs creates no directory."""
        return self._node_map or {}

    def _check(self, node_id: int) -> int:
        if node_id not in self.node_ids:
            raise LocalKafkaError(
                f"no node {node_id}: the nodes are {self.node_ids[0]}..{self.node_ids[-1]}"
            )
        return node_id

    def _node(self, node_id: int) -> KafkaNode:
        return self._nodes[self._check(node_id)]

    def _choose_ports(self, *, first_try: bool) -> dict[int, NodePorts]:
        recorded = {node_id: node.recorded_ports() for node_id, node in self._nodes.items()}
        if first_try:
            previous = [ports for ports in recorded.values() if ports is not None]
            numbers = [port for ports in previous for port in (ports.client, ports.controller)]
            if (
                len(previous) == len(recorded)
                and len(set(numbers)) == len(numbers)
                and all(port_free(port) for port in numbers)
            ):
                return {node_id: ports for node_id, ports in recorded.items() if ports is not None}
        picked = iter(free_ports(2 * len(self._nodes)))
        return {node_id: NodePorts(next(picked), next(picked)) for node_id in self._nodes}

    def _require_free_ports(self, node_ids: list[int]) -> None:
        """A node comes back on its old ports, or not at all: its peers know those."""
        assert self._ports is not None
        for node_id in node_ids:
            ports = self._ports[node_id]
            for port in (ports.client, ports.controller):
                if not port_free(port):
                    raise BrokerStartError(f"node {node_id}'s port {HOST}:{port} is already in use")

    def _configure(self, node_id: int) -> None:
        assert self._ports is not None
        node = self._nodes[node_id]
        ports = {voter: (p.client, p.controller) for voter, p in self._ports.items()}
        properties = cluster_node_properties(node_id, ports, node.storage_dir, self._overrides)
        node.configure(self._ports[node_id], properties)

    def _format(self, nodes: list[KafkaNode], java: Path, libs: Path) -> None:
        """Format the unformatted nodes' storage in parallel, all with the cluster's id."""
        existing = [node.cluster_id() for node in self._nodes.values() if node.is_formatted()]
        cluster_id = next((found for found in existing if found), None) or new_cluster_id()
        fresh = [node for node in nodes if not node.is_formatted()]
        if not fresh:
            return
        # No PDEATHSIG involved: the storage tool exits by itself, so worker threads are fine.
        with ThreadPoolExecutor(max_workers=len(fresh)) as pool:
            for result in [pool.submit(node.format, java, libs, cluster_id) for node in fresh]:
                result.result()

    def _launch(
        self, node_ids: list[int], java: Path, libs: Path, deadline: float, timeout: float
    ) -> None:
        # From this thread, not a pool: with stop_with_parent a JVM dies with its starter thread.
        nodes = [self._nodes[node_id] for node_id in node_ids]
        for node in nodes:
            node.launch(java, libs)
        try:
            wait_ready(nodes, deadline, timeout)
        except BrokerStartError:
            self._stop_nodes(node_ids, 10.0)
            raise

    def _stop_nodes(self, node_ids: list[int], timeout: float) -> None:
        nodes = [self._nodes[node_id] for node_id in node_ids if self._nodes[node_id].is_running()]
        if not nodes:
            return
        # In parallel: each clean shutdown takes seconds, and one after another the last nodes
        # would wait for a controller quorum that is already gone.
        with ThreadPoolExecutor(max_workers=len(nodes)) as pool:
            for result in [pool.submit(node.stop, timeout) for node in nodes]:
                result.result()

    def _wait_health(self, deadline: float, timeout: float, *, in_sync: bool) -> None:
        admin = AdminClient({"bootstrap.servers": self.bootstrap_servers, "log_level": 0})
        while True:
            for node in self._nodes.values():
                if not node.is_running():
                    raise node.start_error("has exited")
            problem = self._health_problem(admin, max(0.5, deadline - time.monotonic()), in_sync)
            if problem is None:
                return
            if time.monotonic() >= deadline:
                raise BrokerStartError(
                    f"the Kafka cluster at {self.bootstrap_servers} was not healthy within "
                    f"{timeout:g}s: {problem} (logs in {self.data_dir}/node-*/logs)",
                    "\n".join(node.log_tail(10) for node in self._nodes.values()),
                )
            time.sleep(_HEALTH_POLL_S)

    def _create_internal_topics(self, deadline: float, timeout: float) -> None:
        """Have `__consumer_offsets` and `__transaction_state` created now, while every node is
        up: with 3 replicas they cannot be created with a node down, and a fault test that
        stops one before the first group or transaction would find no coordinator."""
        bootstrap = self.bootstrap_servers
        # Looking up the coordinator of a group or of a transactional id creates the topic;
        # the clients retry while it loads. Neither group nor id needs to exist.
        quiet = {"bootstrap.servers": bootstrap, "log_level": 0}
        consumer = Consumer({**quiet, "group.id": _INTERNAL_TOPICS_KEY})
        producer = Producer({**quiet, "transactional.id": _INTERNAL_TOPICS_KEY})
        try:
            consumer.committed(
                [TopicPartition(_INTERNAL_TOPICS_KEY, 0)],
                timeout=max(1.0, deadline - time.monotonic()),
            )
            producer.init_transactions(max(1.0, deadline - time.monotonic()))
        except KafkaException as exc:
            raise BrokerStartError(
                f"the Kafka cluster at {bootstrap} did not create its internal topics within "
                f"{timeout:g}s: {exc.args[0] if exc.args else exc}"
            ) from exc
        finally:
            consumer.close()
        self._wait_health(deadline, timeout, in_sync=True)

    def _health_problem(self, admin: AdminClient, timeout: float, in_sync: bool) -> str | None:
        """What keeps the cluster from being healthy, or None."""
        try:
            metadata = admin.list_topics(timeout=min(timeout, 5.0))
        except KafkaException as exc:
            return f"no metadata ({exc.args[0] if exc.args else exc})"
        missing = sorted(set(self._nodes) - set(metadata.brokers))
        if missing:
            return f"nodes {missing} are not registered"
        if not in_sync:
            return None
        lagging = sorted(
            f"{name}-{partition.id}"
            for name, topic in metadata.topics.items()
            for partition in topic.partitions.values()
            if partition.leader < 0 or set(partition.isrs) != set(partition.replicas)
        )
        broken = sorted(name for name, topic in metadata.topics.items() if topic.error is not None)
        if lagging or broken:
            return f"partitions not in sync: {', '.join([*broken, *lagging][:5])}"
        return None
