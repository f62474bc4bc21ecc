"""Where kgen keeps the Kafka jars and the data of the detached CLI broker."""

import os
from pathlib import Path

from kgen.kafka.constants import CACHE_ENV, KAFKA_VERSION


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


def run_dir() -> Path:
    """State and data of the broker started by `kgen kafka start`."""
    return cache_root() / "kafka" / "run"
