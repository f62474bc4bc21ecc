"""Files that configure the local brokers: server.properties, the log4j2 config, a cluster id."""

import base64
import os
from collections.abc import Mapping
from pathlib import Path
from xml.sax.saxutils import quoteattr

from kgen import properties

HOST = "127.0.0.1"
NODE_ID = 1

# Replicas of the cluster's topics; a cluster of fewer nodes uses one per node.
CLUSTER_REPLICATION_FACTOR = 3

# Settings of the single broker and the cluster alike.
_TEST_FRIENDLY = {
    # One partition each instead of 50: the first group join / first transaction would
    # otherwise wait for 50 partitions to be created and loaded.
    "offsets.topic.num.partitions": "1",
    "transaction.state.log.num.partitions": "1",
    # Tests join groups and time out transactions; waiting for the defaults is dead time.
    "group.initial.rebalance.delay.ms": "0",
    "transaction.abort.timed.out.transaction.cleanup.interval.ms": "1000",
    # The consumer group protocol (KIP-848) takes a group's consumer.session.timeout.ms only
    # within 45-60 s by default, and its heartbeat interval within 5-15 s: the classic
    # protocol's lower bound (group.min.session.timeout.ms, 6 s) and 1 s heartbeats let an app
    # set the same fast failover under either protocol (the defaults stay 45 s and 5 s).
    "group.consumer.min.session.timeout.ms": "6000",
    "group.consumer.min.heartbeat.interval.ms": "1000",
    # Topics must be declared: an implicitly created topic hides a spec bug.
    "auto.create.topics.enable": "false",
    "num.partitions": "1",
    # Time retention checked every second from the start, not every 5 minutes after 30 s: a
    # test whose records the broker deletes by age (fixed timestamps from long ago) then
    # fails every run instead of once in a while.
    "log.initial.task.delay.ms": "1000",
    "log.retention.check.interval.ms": "1000",
}


def new_cluster_id() -> str:
    """A random Kafka cluster id: 16 random bytes, URL-safe base64 without padding.

    Kafka's own generator skips ids starting with '-' (they read as a CLI flag); so do we.
    """
    while True:
        cluster_id = base64.urlsafe_b64encode(os.urandom(16)).rstrip(b"=").decode("ascii")
        if not cluster_id.startswith("-"):
            return cluster_id


def server_properties(
    broker_port: int,
    controller_port: int,
    log_dir: Path,
    security: Mapping[str, str] | None = None,
) -> str:
    """A single-node KRaft config (broker and controller in one process) on loopback only.

    With `security` (TLS, SASL and authorizer settings, see kgen.kafka.security) clients
    connect over SASL_SSL and the controller listener is TLS.
    """
    controller = f"{HOST}:{controller_port}"
    settings = {
        "process.roles": "broker,controller",
        "node.id": str(NODE_ID),
        # A dynamic quorum bootstrapped with `format --standalone`, so no static voter list.
        "controller.quorum.bootstrap.servers": controller,
        **_listeners(broker_port, controller_port, secure=security is not None),
        **{key: _escape(value) for key, value in (security or {}).items()},
        "log.dirs": _escape(str(log_dir)),
        # One broker: every internal topic must accept a single replica.
        **_replication(replicas=1, min_insync=1),
        **_TEST_FRIENDLY,
    }
    return _render("a local single-node Kafka broker", settings)


def cluster_node_properties(
    node_id: int,
    ports: Mapping[int, tuple[int, int]],
    log_dir: Path,
    overrides: Mapping[str, str] | None = None,
) -> str:
    """The config of node `node_id` of a local KRaft cluster on loopback.

    `ports` maps every node id to its (client, controller) ports. Every node is broker and
    controller, and every node is a voter: 3 nodes keep a quorum with one of them down.
    """
    client_port, controller_port = ports[node_id]
    replicas = min(CLUSTER_REPLICATION_FACTOR, len(ports))
    settings = {
        "process.roles": "broker,controller",
        "node.id": str(node_id),
        # A static quorum: the voters are fixed for the cluster's life and their endpoints
        # come from this file, not from the metadata log, so storage needs no voter ids and a
        # cluster started again on a kept data dir may use other ports.
        "controller.quorum.voters": ",".join(
            f"{voter}@{HOST}:{controller}" for voter, (_, controller) in sorted(ports.items())
        ),
        **_listeners(client_port, controller_port),
        "log.dirs": _escape(str(log_dir)),
        # Replicated like a production cluster, so losing one node loses no acknowledged write
        # and acks=all keeps working (min ISR 2 of 3).
        "default.replication.factor": str(replicas),
        **_replication(replicas=replicas, min_insync=max(1, replicas - 1)),
        # A node restarted while its old broker session lives is refused registration
        # (DUPLICATE_BROKER_REGISTRATION) until that session expires, and a killed node keeps
        # its leaderships until then: 4 s instead of 9 s, with a heartbeat every 0.5 s.
        "broker.session.timeout.ms": "4000",
        "broker.heartbeat.interval.ms": "500",
        **_TEST_FRIENDLY,
        **(overrides or {}),
    }
    return _render(f"node {node_id} of a local {len(ports)}-node Kafka cluster", settings)


def _listeners(broker_port: int, controller_port: int, *, secure: bool = False) -> dict[str, str]:
    client = "SASL_SSL" if secure else "PLAINTEXT"
    listeners = f"{client}://{HOST}:{broker_port},CONTROLLER://{HOST}:{controller_port}"
    return {
        "listeners": listeners,
        "advertised.listeners": listeners,
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": client,
        "listener.security.protocol.map": (
            "SASL_SSL:SASL_SSL,CONTROLLER:SSL"
            if secure
            else "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT"
        ),
    }


def _replication(replicas: int, min_insync: int) -> dict[str, str]:
    """Replication of the internal topics and the default min ISR of every topic."""
    return {
        "offsets.topic.replication.factor": str(replicas),
        "transaction.state.log.replication.factor": str(replicas),
        "transaction.state.log.min.isr": str(min_insync),
        "share.coordinator.state.topic.replication.factor": str(replicas),
        "share.coordinator.state.topic.min.isr": str(min_insync),
        "min.insync.replicas": str(min_insync),
    }


def _render(what: str, settings: Mapping[str, str]) -> str:
    lines = [f"# Written by kgen for {what}."]
    lines += [f"{key}={value}" for key, value in settings.items()]
    return "\n".join(lines) + "\n"


def log4j2_config(log_file: Path) -> str:
    """Route every broker log line to `log_file` and none to the terminal.

    log4j's own shutdown hook would stop logging before Kafka's shutdown hook has run, hiding
    how the broker stopped; the file appender flushes every line, so it is not needed.
    """
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<Configuration status="warn" shutdownHook="disable">
  <Appenders>
    <File name="file" fileName={quoteattr(str(log_file))} append="true">
      <PatternLayout pattern="[%d] %p %m (%c)%n"/>
    </File>
  </Appenders>
  <Loggers>
    <Logger name="kafka.request.logger" level="warn"/>
    <Root level="info">
      <AppenderRef ref="file"/>
    </Root>
  </Loggers>
</Configuration>
"""


def _escape(value: str) -> str:
    # java.util.Properties treats backslash as an escape character.
    return value.replace("\\", "\\\\")


def escape_key(key: str) -> str:
    """`key` as written in a `.properties` file."""
    return properties.key(key)


def escape_value(value: str) -> str:
    """`value` as written in a `.properties` file (for the Connect and MirrorMaker configs)."""
    return properties.value(value)
