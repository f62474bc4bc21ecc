"""Functions behind `kgen kafka fetch|start|stop|status`; each returns an exit code."""

import re
import shlex
import sys
from pathlib import Path

from kgen.kafka.broker import LocalKafka
from kgen.kafka.cluster import LocalKafkaCluster
from kgen.kafka.constants import BOOTSTRAP_ENV, KAFKA_VERSION
from kgen.kafka.errors import BrokerStartError, LocalKafkaError
from kgen.kafka.fetch import fetch
from kgen.kafka.locking import file_lock
from kgen.kafka.paths import run_dir
from kgen.kafka.process import pid_alive, terminate_all
from kgen.kafka.runstate import (
    RunState,
    clear_state,
    live_pids,
    run_cluster_dir,
    run_data_dir,
    run_secure_dir,
    running_broker,
    write_state,
)
from kgen.kafka.security import Security

STOP_TIMEOUT_S = 30.0
_NAME = re.compile(r"[a-z0-9][a-z0-9_-]*")


def cmd_fetch() -> int:
    """Download the broker's jars into the cache (no-op when cached); print the libs dir."""
    try:
        libs = fetch(progress=_note)
    except (LocalKafkaError, OSError) as exc:
        return _fail(exc)
    print(libs)
    return 0


def cmd_start(
    port: int | None, brokers: int = 1, *, secure: bool = False, cluster: str = ""
) -> int:
    """Start a detached broker, or a cluster of `brokers` nodes (or find the running one);
    print its bootstrap servers. Without `port`, the port of the last run is reused when free.
    With `secure`, a single broker with TLS, SASL/SCRAM and ACLs; the client settings of its
    admin go to stderr (the password as a file to read, never its text). `cluster` names a
    broker or cluster apart from the default one (a second cluster to mirror to, say).
    """
    if cluster and not _NAME.fullmatch(cluster):
        return _fail(
            f"--cluster takes a name of lower-case letters, digits, '-' and '_', not {cluster!r}"
        )
    if secure and brokers != 1:
        return _fail("--secure starts a single broker; it does not combine with --brokers")
    if brokers < 1:
        return _fail(f"--brokers must be at least 1, not {brokers}")
    if brokers > 1 and port is not None:
        return _fail("--port is for a single broker; a cluster's nodes pick their own ports")
    try:
        # Serialises concurrent `start`/`stop` so two brokers never share run/data.
        with file_lock(run_dir(cluster) / ".lock"):
            current = running_broker(cluster)
            if current is not None:
                if (
                    (port is not None and port != current.port)
                    or brokers != current.brokers
                    or secure != bool(current.security_dir)
                ):
                    _note(f"{_describe(current)} is already running on {current.bootstrap_servers}")
                bootstrap = current.bootstrap_servers
                security_dir = current.security_dir
            elif brokers == 1:
                bootstrap, security_dir = _start_detached(port, secure=secure, cluster=cluster)
            else:
                bootstrap, security_dir = _start_cluster(brokers, cluster), ""
    except BrokerStartError as exc:
        return _fail(exc.summary)
    except (LocalKafkaError, OSError) as exc:
        return _fail(exc)
    # stdout carries only the address, so `export X=$(kgen kafka start)` works; hint on stderr.
    print(bootstrap)
    if not cluster:
        _note(f"export {BOOTSTRAP_ENV}={bootstrap}")
    if security_dir:
        for line in client_settings(Security(Path(security_dir))):
            _note(line)
    return 0


def client_settings(security: Security) -> list[str]:
    """The shell lines that give a generated app (and kgen's tools) the admin's settings of a
    secured broker: environment variables, the password as the file that holds it."""
    config = security.client_config()
    return [
        "# Client settings of the secured broker (SASL_SSL, SCRAM-SHA-512, its own CA); the",
        "# admin is a super user: run apps as a principal with their ACLs (`acls --apply`).",
        f"export KAFKA_SECURITY_PROTOCOL={config['security.protocol']}",
        f"export KAFKA_SASL_MECHANISM={config['sasl.mechanism']}",
        f"export KAFKA_SASL_USERNAME={config['sasl.username']}",
        f"export KAFKA_SASL_PASSWORD_FILE={shlex.quote(str(security.password_file))}",
        f"export KAFKA_SSL_CA_LOCATION={shlex.quote(config['ssl.ca.location'])}",
    ]


def cmd_stop(cluster: str = "") -> int:
    """Stop the detached broker or cluster; succeeds when none is running."""
    try:
        with file_lock(run_dir(cluster) / ".lock"):
            current = running_broker(cluster)
            clear_state(cluster)
            if current is None:
                _note("no kgen Kafka broker is running")
                return 0
            pids = live_pids(current)
            terminate_all(pids, STOP_TIMEOUT_S)
            left = [pid for pid in pids if pid_alive(pid)]
            if left:
                return _fail(f"Kafka (pids {left}) did not exit")
    except OSError as exc:
        return _fail(exc)
    _note(f"stopped {_describe(current)} on {current.bootstrap_servers}")
    return 0


def cmd_status(cluster: str = "") -> int:
    """Exit 0 and print the address when the detached broker or cluster runs, 1 otherwise."""
    current = running_broker(cluster)
    if current is None:
        _note("no kgen Kafka broker is running")
        return 1
    live = live_pids(current)
    down = [node for node, pid in enumerate(current.node_pids, start=1) if pid not in live]
    if down:
        _note(f"{_describe(current)}: nodes {down} are not running")
    print(current.bootstrap_servers)
    return 0


def _start_detached(
    port: int | None, *, secure: bool = False, cluster: str = ""
) -> tuple[str, str]:
    clear_state(cluster)
    fetch(progress=_note)
    # The data dir remembers the last port; LocalKafka takes it again when it is free.
    data_dir = run_secure_dir(cluster) if secure else run_data_dir(cluster)
    broker = LocalKafka(data_dir=data_dir, port=port, stop_with_parent=False, secure=secure)
    bootstrap = broker.start()
    pid = broker.pid
    if pid is None:
        raise LocalKafkaError("the Kafka broker exited right after starting")
    security_dir = "" if broker.security is None else str(broker.security.directory)
    write_state(
        RunState(
            pid=pid,
            port=broker.port,
            bootstrap_servers=bootstrap,
            data_dir=str(broker.data_dir),
            kafka_version=KAFKA_VERSION,
            pids=(pid,),
            security_dir=security_dir,
        ),
        cluster,
    )
    return bootstrap, security_dir


def _start_cluster(brokers: int, name: str = "") -> str:
    clear_state(name)
    fetch(progress=_note)
    cluster = LocalKafkaCluster(
        brokers, data_dir=run_cluster_dir(brokers, name), stop_with_parent=False
    )
    bootstrap = cluster.start()
    pids = [cluster.pid(node_id) for node_id in cluster.node_ids]
    if None in pids:
        cluster.stop()
        raise LocalKafkaError("a Kafka node exited right after starting")
    node_pids = tuple(pid for pid in pids if pid is not None)
    write_state(
        RunState(
            pid=node_pids[0],
            port=cluster.port(1),
            bootstrap_servers=bootstrap,
            data_dir=str(cluster.data_dir),
            kafka_version=KAFKA_VERSION,
            pids=node_pids,
        ),
        name,
    )
    return bootstrap


def _describe(state: RunState) -> str:
    if state.brokers == 1:
        return "the secured Kafka broker" if state.security_dir else "the Kafka broker"
    return f"the {state.brokers}-node Kafka cluster"


def _note(message: str) -> None:
    print(message, file=sys.stderr)


def _fail(error: object) -> int:
    # One line, no traceback: the first line of a multi-line error names the problem.
    lines = str(error).strip().splitlines() or ["unknown error"]
    print(f"kgen kafka: error: {lines[0]}", file=sys.stderr)
    return 1
