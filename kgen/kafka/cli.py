"""Functions behind `kgen kafka fetch|start|stop|status`; each returns an exit code."""

import sys

from kgen.kafka.broker import LocalKafka
from kgen.kafka.constants import BOOTSTRAP_ENV, KAFKA_VERSION
from kgen.kafka.errors import BrokerStartError, LocalKafkaError
from kgen.kafka.fetch import fetch
from kgen.kafka.locking import file_lock
from kgen.kafka.paths import run_dir
from kgen.kafka.process import pid_alive, terminate
from kgen.kafka.runstate import (
    RunState,
    clear_state,
    run_data_dir,
    running_broker,
    write_state,
)

STOP_TIMEOUT_S = 30.0


def cmd_fetch() -> int:
    """Download the broker's jars into the cache (no-op when cached); print the libs dir."""
    try:
        libs = fetch(progress=_note)
    except (LocalKafkaError, OSError) as exc:
        return _fail(exc)
    print(libs)
    return 0


def cmd_start(port: int | None) -> int:
    """Start a detached broker (or find the running one); print its bootstrap servers."""
    try:
        # Serialises concurrent `start`/`stop` so two brokers never share run/data.
        with file_lock(run_dir() / ".lock"):
            current = running_broker()
            if current is not None:
                if port is not None and port != current.port:
                    _note(f"a broker is already running on {current.bootstrap_servers}")
                bootstrap = current.bootstrap_servers
            else:
                bootstrap = _start_detached(port)
    except BrokerStartError as exc:
        return _fail(exc.summary)
    except (LocalKafkaError, OSError) as exc:
        return _fail(exc)
    # stdout carries only the address, so `export X=$(kgen kafka start)` works; hint on stderr.
    print(bootstrap)
    _note(f"export {BOOTSTRAP_ENV}={bootstrap}")
    return 0


def cmd_stop() -> int:
    """Stop the detached broker; succeeds when none is running."""
    try:
        with file_lock(run_dir() / ".lock"):
            current = running_broker()
            clear_state()
            if current is None:
                _note("no kgen Kafka broker is running")
                return 0
            terminate(current.pid, STOP_TIMEOUT_S)
            if pid_alive(current.pid):
                return _fail(f"Kafka broker (pid {current.pid}) did not exit")
    except OSError as exc:
        return _fail(exc)
    _note(f"stopped the Kafka broker on {current.bootstrap_servers}")
    return 0


def cmd_status() -> int:
    """Exit 0 and print the address when the detached broker runs, 1 otherwise."""
    current = running_broker()
    if current is None:
        _note("no kgen Kafka broker is running")
        return 1
    print(current.bootstrap_servers)
    return 0


def _start_detached(port: int | None) -> str:
    clear_state()
    fetch(progress=_note)
    broker = LocalKafka(data_dir=run_data_dir(), port=port, stop_with_parent=False)
    bootstrap = broker.start()
    pid = broker.pid
    if pid is None:
        raise LocalKafkaError("the Kafka broker exited right after starting")
    write_state(
        RunState(
            pid=pid,
            port=broker.port,
            bootstrap_servers=bootstrap,
            data_dir=str(broker.data_dir),
            kafka_version=KAFKA_VERSION,
        )
    )
    return bootstrap


def _note(message: str) -> None:
    print(message, file=sys.stderr)


def _fail(error: object) -> int:
    # One line, no traceback: the first line of a multi-line error names the problem.
    lines = str(error).strip().splitlines() or ["unknown error"]
    print(f"kgen kafka: error: {lines[0]}", file=sys.stderr)
    return 1
