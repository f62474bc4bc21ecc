"""Resolve the pinned Kafka broker's runtime classpath from Maven Central into the cache."""

import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from kgen.kafka.constants import (
    DEPENDENCY_PLUGIN,
    KAFKA_ARTIFACT,
    KAFKA_VERSION,
    LOG4J_VERSION,
    SCALA_BINARY_VERSION,
)
from kgen.kafka.errors import FetchError
from kgen.kafka.locking import file_lock
from kgen.kafka.paths import kafka_home
from kgen.kafka.tools import find_mvn, require_java

MARKER_NAME = ".complete"
MAVEN_TIMEOUT_S = 1800.0

# Jars the broker cannot run without; checked after the copy so a half-resolved classpath
# fails here, not as a ClassNotFoundException in a broker log.
_REQUIRED_JARS = (
    f"kafka_{SCALA_BINARY_VERSION}-{KAFKA_VERSION}.jar",
    f"kafka-clients-{KAFKA_VERSION}.jar",
    f"kafka-server-{KAFKA_VERSION}.jar",
    f"kafka-storage-{KAFKA_VERSION}.jar",
    f"log4j-core-{LOG4J_VERSION}.jar",
    f"log4j-slf4j-impl-{LOG4J_VERSION}.jar",
)

_POM = f"""<?xml version="1.0" encoding="UTF-8"?>
<!-- Written by kgen: the runtime classpath of a Kafka {KAFKA_VERSION} broker. -->
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>dev.kgen.local</groupId>
  <artifactId>kafka-broker-classpath</artifactId>
  <version>{KAFKA_VERSION}</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka_{SCALA_BINARY_VERSION}</artifactId>
      <version>{KAFKA_VERSION}</version>
    </dependency>
    <dependency>
      <groupId>org.apache.logging.log4j</groupId>
      <artifactId>log4j-slf4j-impl</artifactId>
      <version>{LOG4J_VERSION}</version>
    </dependency>
  </dependencies>
</project>
"""


def is_fetched() -> bool:
    """True when the jars of the pinned version are complete in the cache."""
    return (kafka_home() / MARKER_NAME).is_file()


def fetch(progress: Callable[[str], None] | None = None) -> Path:
    """Make sure the broker's jars are cached; return the `libs/` directory holding them.

    Idempotent (a marker written last) and safe when processes race (an flock around the work).
    `progress` gets one line before a slow Maven run, so a CLI can say why it is waiting.
    """
    home = kafka_home()
    libs = home / "libs"
    marker = home / MARKER_NAME
    if marker.is_file():
        return libs
    mvn = find_mvn()
    require_java()  # fail before minutes of downloading, not after
    with file_lock(home / ".lock"):
        if marker.is_file():  # another process finished while we waited for the lock
            return libs
        if progress is not None:
            progress(f"Fetching Kafka {KAFKA_VERSION} jars with Maven into {libs} (first run only)")
        started = time.monotonic()
        _resolve(mvn, home, libs)
        _write_marker(marker, libs, time.monotonic() - started)
    return libs


def _resolve(mvn: Path, home: Path, libs: Path) -> None:
    # Copy into a staging dir and rename it: a crash mid-copy never leaves a `libs/` that looks
    # usable, and without the marker the next call redoes the whole step.
    staging = home / "libs.partial"
    shutil.rmtree(staging, ignore_errors=True)
    pom = home / "pom.xml"
    pom.write_text(_POM, encoding="utf-8")
    command = [
        str(mvn),
        "-q",
        "-B",
        "-Dstyle.color=never",
        "-f",
        str(pom),
        f"{DEPENDENCY_PLUGIN}:copy-dependencies",
        "-DincludeScope=runtime",
        f"-DoutputDirectory={staging}",
    ]
    try:
        result = subprocess.run(
            command,
            cwd=home,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=MAVEN_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise FetchError(
            f"Maven did not resolve {KAFKA_ARTIFACT} within {MAVEN_TIMEOUT_S:.0f}s"
        ) from exc
    except OSError as exc:
        raise FetchError(f"cannot run {mvn}: {exc}") from exc
    if result.returncode != 0:
        raise FetchError(
            f"Maven could not resolve {KAFKA_ARTIFACT} (exit {result.returncode}): "
            f"{_maven_error(result.stdout + result.stderr)}"
        )
    missing = [jar for jar in _REQUIRED_JARS if not (staging / jar).is_file()]
    if missing:
        raise FetchError(f"Maven resolved {KAFKA_ARTIFACT} but these jars are missing: {missing}")
    shutil.rmtree(libs, ignore_errors=True)
    staging.rename(libs)


def _maven_error(output: str) -> str:
    """The first `[ERROR]` line of Maven's output (the one that names the cause)."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("[ERROR]")]
    if errors:
        return errors[0]
    return lines[-1] if lines else "no output"


def _write_marker(marker: Path, libs: Path, seconds: float) -> None:
    info = {
        "artifact": KAFKA_ARTIFACT,
        "jars": sorted(jar.name for jar in libs.glob("*.jar")),
        "maven_seconds": round(seconds, 1),
    }
    partial = marker.with_name(marker.name + ".tmp")
    partial.write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    os.replace(partial, marker)
