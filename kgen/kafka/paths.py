"""Where kgen keeps the Kafka and Connect jars and the data of the detached CLI broker."""

import os
from pathlib import Path

from kgen.kafka.constants import CACHE_ENV, CONNECT_VERSION, KAFKA_VERSION


def cache_root() -> Path:
    """`$KGEN_CACHE_DIR`, else `~/.cache/kgen`."""
    configured = os.environ.get(CACHE_ENV)
    if configured:
        return Path(configured).expanduser()
    return Path.home() / ".cache" / "kgen"


def kafka_home() -> Path:
    """The directory of the pinned Kafka version: pom, lock, marker and `libs/`."""
    return cache_root() / "kafka" / KAFKA_VERSION


def libs_dir() -> Path:
    """The broker's runtime classpath (every jar in it)."""
    return kafka_home() / "libs"


def run_dir(cluster: str = "") -> Path:
    """State and data of the broker started by `kgen kafka start` (`--cluster NAME`: of that
    named one, apart from the default's: its own storage, port and record)."""
    return cache_root() / "kafka" / (f"run-{cluster}" if cluster else "run")


def connect_home() -> Path:
    """The Kafka Connect classpath (worker and MirrorMaker 2): pom, lock, marker and `libs/`."""
    return cache_root() / "connect" / CONNECT_VERSION


def plugin_home(name: str, version: str) -> Path:
    """One Connect plugin's pom, lock and marker, and `plugins/<name>/` with its jars.

    `plugins/` is what goes on a worker's `plugin.path`: Connect loads each directory in it
    as one isolated plugin (the jars straight in a `plugin.path` entry would each be one).
    """
    return cache_root() / "connect-plugins" / f"{name}-{version}"


def connect_run_dir() -> Path:
    """State, config and logs of the worker started by `kgen connect start`."""
    return cache_root() / "connect" / "run"
