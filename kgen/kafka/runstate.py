"""The record of the detached broker that `kgen kafka start` leaves running."""

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
    """What is needed to find, report and stop the detached broker."""

    pid: int
    port: int
    bootstrap_servers: str
    data_dir: str
    kafka_version: str


def state_file() -> Path:
    """`<cache>/kafka/run/broker.json`."""
    return run_dir() / "broker.json"


def run_data_dir() -> Path:
    """Storage, config and logs of the detached broker; kept across stop/start."""
    return run_dir() / "data"


def read_state() -> RunState | None:
    """The recorded broker, or None when there is no (readable) record."""
    try:
        raw = json.loads(state_file().read_text(encoding="utf-8"))
        return RunState(
            pid=int(raw["pid"]),
            port=int(raw["port"]),
            bootstrap_servers=str(raw["bootstrap_servers"]),
            data_dir=str(raw["data_dir"]),
            kafka_version=str(raw["kafka_version"]),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


def write_state(state: RunState) -> None:
    """Record `state` atomically (a reader never sees half a file)."""
    path = state_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".tmp")
    partial.write_text(json.dumps(asdict(state), indent=2) + "\n", encoding="utf-8")
    os.replace(partial, path)


def clear_state() -> None:
    """Forget the recorded broker."""
    with contextlib.suppress(FileNotFoundError):
        state_file().unlink()


def running_broker() -> RunState | None:
    """The recorded broker if its process still runs and still is that broker."""
    state = read_state()
    if state is None or not pid_alive(state.pid):
        return None
    # After a reboot the pid may belong to an unrelated process: never report or kill that.
    cmdline = command_line(state.pid)
    if cmdline is not None and (BROKER_MAIN not in cmdline or state.data_dir not in cmdline):
        return None
    return state
