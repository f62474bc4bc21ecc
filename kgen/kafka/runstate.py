"""The record of the detached broker or cluster that `kgen kafka start` leaves running."""

import contextlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from kgen.kafka.constants import BROKER_MAIN
from kgen.kafka.paths import run_dir
from kgen.kafka.process import command_line, pid_alive


@dataclass(frozen=True)
class RunState:
    """What is needed to find, report and stop the detached broker or cluster."""

    pid: int  # the JVM of the broker, or of a cluster's node 1
    port: int  # its client port
    bootstrap_servers: str
    data_dir: str
    kafka_version: str
    # Every node's JVM, by node id; a single broker's record holds its one pid. Empty in
    # records written before clusters existed.
    pids: tuple[int, ...] = ()
    # A secured broker (`kgen kafka start --secure`): its CA and admin password live here.
    security_dir: str = ""

    @property
    def brokers(self) -> int:
        """How many nodes were started: 1 for a single broker."""
        return max(1, len(self.pids))

    @property
    def node_pids(self) -> tuple[int, ...]:
        """Every node's pid (the single broker's when the record predates `pids`)."""
        return self.pids or (self.pid,)


def state_file(cluster: str = "") -> Path:
    """`<cache>/kafka/run/broker.json`."""
    return run_dir(cluster) / "broker.json"


def run_data_dir(cluster: str = "") -> Path:
    """Storage, config and logs of the detached broker; kept across stop/start, and with
    them the port it last ran on (`ports.json`), which the next start reuses when free."""
    return run_dir(cluster) / "data"


def run_secure_dir(cluster: str = "") -> Path:
    """The secured detached broker's: kept like the plain one's, with its CA, certificate and
    admin password (a plain broker's storage has no SCRAM credentials, so it is apart)."""
    return run_dir(cluster) / "secure"


def run_cluster_dir(brokers: int, cluster: str = "") -> Path:
    """The nodes' directories of the detached `brokers`-node cluster; kept like the broker's.

    One per size: the nodes of a cluster are formatted for a quorum of exactly that many.
    """
    return run_dir(cluster) / f"cluster-{brokers}"


def read_state(cluster: str = "") -> RunState | None:
    """The recorded broker, or None when there is no (readable) record."""
    try:
        raw = json.loads(state_file(cluster).read_text(encoding="utf-8"))
        return RunState(
            pid=int(raw["pid"]),
            port=int(raw["port"]),
            bootstrap_servers=str(raw["bootstrap_servers"]),
            data_dir=str(raw["data_dir"]),
            kafka_version=str(raw["kafka_version"]),
            pids=tuple(int(pid) for pid in raw.get("pids", ())),
            security_dir=str(raw.get("security_dir", "")),
        )
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def write_state(state: RunState, cluster: str = "") -> None:
    """Record `state` atomically (a reader never sees half a file)."""
    path = state_file(cluster)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".tmp")
    partial.write_text(json.dumps(asdict(state), indent=2) + "\n", encoding="utf-8")
    os.replace(partial, path)


def clear_state(cluster: str = "") -> None:
    """Forget the recorded broker."""
    with contextlib.suppress(FileNotFoundError):
        state_file(cluster).unlink()


def running_broker(cluster: str = "") -> RunState | None:
    """The recorded broker or cluster if any of its nodes still runs (and still is that node)."""
    state = read_state(cluster)
    if state is None or not live_pids(state):
        return None
    return state


def live_pids(state: RunState) -> list[int]:
    """The recorded nodes' pids that still run and still are those nodes."""
    return [pid for pid in state.node_pids if _is_node(pid, state.data_dir)]


def _is_node(pid: int, data_dir: str) -> bool:
    if not pid_alive(pid):
        return False
    # After a reboot the pid may belong to an unrelated process: never report or kill that.
    cmdline = command_line(pid)
    return cmdline is None or (BROKER_MAIN in cmdline and data_dir in cmdline)
