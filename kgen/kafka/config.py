"""Files that configure the local broker: server.properties, the log4j2 config, a cluster id."""

import base64
import os
from pathlib import Path
from xml.sax.saxutils import quoteattr

HOST = "127.0.0.1"
NODE_ID = 1


def new_cluster_id() -> str:
    """A random Kafka cluster id: 16 random bytes, URL-safe base64 without padding.

    Kafka's own generator skips ids starting with '-' (they read as a CLI flag); so do we.
    """
    while True:
        cluster_id = base64.urlsafe_b64encode(os.urandom(16)).rstrip(b"=").decode("ascii")
        if not cluster_id.startswith("-"):
            return cluster_id


def server_properties(broker_port: int, controller_port: int, log_dir: Path) -> str:
    """A single-node KRaft config (broker and controller in one process) on loopback only."""
    controller = f"{HOST}:{controller_port}"
    settings = {
        "process.roles": "broker,controller",
        "node.id": str(NODE_ID),
        # A dynamic quorum bootstrapped with `format --standalone`, so no static voter list.
        "controller.quorum.bootstrap.servers": controller,
        "listeners": f"PLAINTEXT://{HOST}:{broker_port},CONTROLLER://{controller}",
        "advertised.listeners": f"PLAINTEXT://{HOST}:{broker_port},CONTROLLER://{controller}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "log.dirs": _escape(str(log_dir)),
        # One broker: every internal topic must accept a single replica.
        "offsets.topic.replication.factor": "1",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        "min.insync.replicas": "1",
        # One partition each instead of 50: the first group join / first transaction would
        # otherwise wait for 50 partitions to be created and loaded.
        "offsets.topic.num.partitions": "1",
        "transaction.state.log.num.partitions": "1",
        # Tests join groups and time out transactions; waiting for the defaults is dead time.
        "group.initial.rebalance.delay.ms": "0",
        "transaction.abort.timed.out.transaction.cleanup.interval.ms": "1000",
        # Topics must be declared: an implicitly created topic hides a spec bug.
        "auto.create.topics.enable": "false",
        "num.partitions": "1",
    }
    lines = ["# Written by kgen for a local single-node Kafka broker."]
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
