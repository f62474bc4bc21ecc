"""Functions behind `kgen connect start|stop|status` (a detached Connect worker, recorded like
the broker of `kgen kafka start`) and `kgen kafka fetch --connect`; each returns an exit code."""

import contextlib
import json
import os
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from kgen.kafka.connect import ConnectWorker
from kgen.kafka.connect_jars import PLUGINS, fetch_connect, fetch_plugins
from kgen.kafka.constants import BOOTSTRAP_ENV, CONNECT_MAIN, CONNECT_URL_ENV, CONNECT_VERSION
from kgen.kafka.errors import LocalKafkaError, ServiceStartError
from kgen.kafka.locking import file_lock
from kgen.kafka.paths import connect_run_dir
from kgen.kafka.process import command_line, pid_alive, terminate
from kgen.kafka.runstate import running_broker

STOP_TIMEOUT_S = 30.0
# Fixed, so a worker started again on the same cluster finds its connectors in its topics.
GROUP_ID = "kgen-connect"


@dataclass(frozen=True)
class WorkerState:
    """What is needed to find, report and stop the detached worker."""

    pid: int
    url: str
    bootstrap_servers: str
    work_dir: str
    connect_version: str


def cmd_fetch_connect() -> int:
    """Download Connect's jars and every known plugin into the cache; print their folders."""
    try:
        print(fetch_connect(progress=_note))
        for path in fetch_plugins(sorted(PLUGINS), progress=_note):
            print(path)
    except (LocalKafkaError, OSError) as exc:
        return _fail(exc, command="kafka")
    return 0


def cmd_start(bootstrap_servers: str | None, port: int | None) -> int:
    """Start a detached worker on `bootstrap_servers` (default: $KGEN_BOOTSTRAP_SERVERS, else
    the broker of `kgen kafka start`), or find the running one; print its URL."""
    try:
        with file_lock(connect_run_dir() / ".lock"):
            current = running_worker()
            if current is None:
                bootstrap = bootstrap_servers or _default_bootstrap()
                current = _start_detached(bootstrap, port)
            elif bootstrap_servers and bootstrap_servers != current.bootstrap_servers:
                _note(f"a worker on {current.bootstrap_servers} is already running")
    except ServiceStartError as exc:
        return _fail(exc.summary)
    except (LocalKafkaError, OSError) as exc:
        return _fail(exc)
    # stdout carries only the URL, so `export X=$(kgen connect start)` works.
    print(current.url)
    _note(f"export {CONNECT_URL_ENV}={current.url}")
    return 0


def cmd_stop() -> int:
    """Stop the detached worker; succeeds when none is running."""
    try:
        with file_lock(connect_run_dir() / ".lock"):
            current = running_worker()
            _clear_state()
            if current is None:
                _note("no kgen Connect worker is running")
                return 0
            terminate(current.pid, STOP_TIMEOUT_S)
            if pid_alive(current.pid):
                return _fail(f"the Connect worker (pid {current.pid}) did not exit")
    except OSError as exc:
        return _fail(exc)
    _note(f"stopped the Connect worker at {current.url}")
    return 0


def cmd_status() -> int:
    """Exit 0 and print the URL when the detached worker runs, 1 otherwise."""
    current = running_worker()
    if current is None:
        _note("no kgen Connect worker is running")
        return 1
    print(current.url)
    _note(f"on Kafka {current.bootstrap_servers}; logs in {Path(current.work_dir) / 'logs'}")
    return 0


def running_worker() -> WorkerState | None:
    """The recorded worker if it still runs (and still is that worker)."""
    state = _read_state()
    if state is None or not pid_alive(state.pid):
        return None
    # After a reboot the pid may belong to an unrelated process: never report or kill that.
    cmdline = command_line(state.pid)
    if cmdline is not None and (CONNECT_MAIN not in cmdline or state.work_dir not in cmdline):
        return None
    return state


def _default_bootstrap() -> str:
    configured = os.environ.get(BOOTSTRAP_ENV)
    if configured:
        return configured
    broker = running_broker()
    if broker is None:
        raise LocalKafkaError(
            "no Kafka to run on: start one (`kgen kafka start`), set "
            f"{BOOTSTRAP_ENV} or pass --bootstrap-server"
        )
    if broker.security_dir:
        raise LocalKafkaError(
            "the running broker is secured; a kgen Connect worker needs plaintext"
        )
    return broker.bootstrap_servers


def _start_detached(bootstrap_servers: str, port: int | None) -> WorkerState:
    _clear_state()
    fetch_connect(progress=_note)
    fetch_plugins(sorted(PLUGINS), progress=_note)
    worker = ConnectWorker(
        bootstrap_servers,
        work_dir=connect_run_dir() / "worker",
        plugins=sorted(PLUGINS),
        group_id=GROUP_ID,
        port=port,
        stop_with_parent=False,
    )
    url = worker.start()
    pid = worker.pid
    if pid is None:
        raise LocalKafkaError("the Connect worker exited right after starting")
    state = WorkerState(
        pid=pid,
        url=url,
        bootstrap_servers=bootstrap_servers,
        work_dir=str(worker.work_dir),
        connect_version=CONNECT_VERSION,
    )
    _write_state(state)
    return state


def _state_file() -> Path:
    return connect_run_dir() / "worker.json"


def _read_state() -> WorkerState | None:
    try:
        raw = json.loads(_state_file().read_text(encoding="utf-8"))
        return WorkerState(
            pid=int(raw["pid"]),
            url=str(raw["url"]),
            bootstrap_servers=str(raw["bootstrap_servers"]),
            work_dir=str(raw["work_dir"]),
            connect_version=str(raw["connect_version"]),
        )
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def _write_state(state: WorkerState) -> None:
    path = _state_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".tmp")
    partial.write_text(json.dumps(asdict(state), indent=2) + "\n", encoding="utf-8")
    os.replace(partial, path)


def _clear_state() -> None:
    with contextlib.suppress(FileNotFoundError):
        _state_file().unlink()


def _note(message: str) -> None:
    print(message, file=sys.stderr)


def _fail(error: object, command: str = "connect") -> int:
    # One line, no traceback: the first line of a multi-line error names the problem.
    lines = str(error).strip().splitlines() or ["unknown error"]
    print(f"kgen {command}: error: {lines[0]}", file=sys.stderr)
    return 1
