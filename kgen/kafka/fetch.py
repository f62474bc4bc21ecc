"""Resolve jar bundles (the broker's classpath, Connect's, its plugins) from Maven Central into
the cache."""

import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
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


@dataclass(frozen=True)
class Bundle:
    """A set of jars Maven resolves into the cache: a pom, a lock, a marker and a jar folder."""

    name: str  # the pom's artifactId: "kafka-broker"
    title: str  # "Kafka 4.4.0 jars", for the progress line
    artifact: str  # the main artifact, named in errors
    home: Path  # pom.xml, .lock and the marker
    libs: Path  # where the jars end up
    dependencies: tuple[str, ...]  # group:artifact:version, each resolved with its runtime deps
    # Jars that must be there after the copy, so a half-resolved classpath fails here, not as
    # a ClassNotFoundException in a JVM's log.
    required: tuple[str, ...]
    # Groups left out of the copy (a Connect plugin must not bring its own Kafka or logging).
    exclude_groups: tuple[str, ...] = ()

    @property
    def marker(self) -> Path:
        """Written last: the jars are complete once it exists."""
        return self.home / MARKER_NAME

    def pom(self) -> str:
        """A pom whose runtime classpath is `dependencies`."""
        entries = "".join(_dependency(coordinate) for coordinate in self.dependencies)
        return f"""<?xml version="1.0" encoding="UTF-8"?>
<!-- Written by kgen: {self.title}. -->
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>dev.kgen.local</groupId>
  <artifactId>{self.name}-classpath</artifactId>
  <version>local</version>
  <packaging>pom</packaging>
  <dependencies>
{entries}  </dependencies>
</project>
"""


def _dependency(coordinate: str) -> str:
    group, artifact, version = coordinate.split(":")
    return (
        "    <dependency>\n"
        f"      <groupId>{group}</groupId>\n"
        f"      <artifactId>{artifact}</artifactId>\n"
        f"      <version>{version}</version>\n"
        "    </dependency>\n"
    )


def broker_bundle() -> Bundle:
    """The broker's runtime classpath: kafka_2.13 and a log4j binding."""
    home = kafka_home()
    return Bundle(
        name="kafka-broker",
        title=f"Kafka {KAFKA_VERSION} jars",
        artifact=KAFKA_ARTIFACT,
        home=home,
        libs=home / "libs",
        # kafka_2.13 brings log4j-core but no slf4j binding (see LOG4J_VERSION).
        dependencies=(
            KAFKA_ARTIFACT,
            f"org.apache.logging.log4j:log4j-slf4j-impl:{LOG4J_VERSION}",
        ),
        required=(
            f"kafka_{SCALA_BINARY_VERSION}-{KAFKA_VERSION}.jar",
            f"kafka-clients-{KAFKA_VERSION}.jar",
            f"kafka-server-{KAFKA_VERSION}.jar",
            f"kafka-storage-{KAFKA_VERSION}.jar",
            f"log4j-core-{LOG4J_VERSION}.jar",
            f"log4j-slf4j-impl-{LOG4J_VERSION}.jar",
        ),
    )


def is_fetched() -> bool:
    """True when the jars of the pinned version are complete in the cache."""
    return broker_bundle().marker.is_file()


def fetch(progress: Callable[[str], None] | None = None) -> Path:
    """Make sure the broker's jars are cached; return the `libs/` directory holding them.

    `progress` gets one line before a slow Maven run, so a CLI can say why it is waiting.
    """
    return fetch_bundle(broker_bundle(), progress)


def fetch_bundle(bundle: Bundle, progress: Callable[[str], None] | None = None) -> Path:
    """Make sure `bundle`'s jars are cached; return the directory holding them.

    Idempotent (a marker written last) and safe when processes race (an flock around the work).
    """
    if bundle.marker.is_file():
        return bundle.libs
    mvn = find_mvn()
    require_java()  # fail before minutes of downloading, not after
    with file_lock(bundle.home / ".lock"):
        if bundle.marker.is_file():  # another process finished while we waited for the lock
            return bundle.libs
        if progress is not None:
            progress(f"Fetching {bundle.title} with Maven into {bundle.libs} (first run only)")
        started = time.monotonic()
        _resolve(mvn, bundle)
        _write_marker(bundle, time.monotonic() - started)
    return bundle.libs


def _resolve(mvn: Path, bundle: Bundle) -> None:
    # Copy into a staging dir and rename it: a crash mid-copy never leaves a `libs/` that looks
    # usable, and without the marker the next call redoes the whole step.
    libs = bundle.libs
    staging = libs.with_name(libs.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    pom = bundle.home / "pom.xml"
    pom.write_text(bundle.pom(), encoding="utf-8")
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
    if bundle.exclude_groups:
        command.append(f"-DexcludeGroupIds={','.join(bundle.exclude_groups)}")
    try:
        result = subprocess.run(
            command,
            cwd=bundle.home,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=MAVEN_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise FetchError(
            f"Maven did not resolve {bundle.artifact} within {MAVEN_TIMEOUT_S:.0f}s"
        ) from exc
    except OSError as exc:
        raise FetchError(f"cannot run {mvn}: {exc}") from exc
    if result.returncode != 0:
        raise FetchError(
            f"Maven could not resolve {bundle.artifact} (exit {result.returncode}): "
            f"{_maven_error(result.stdout + result.stderr)}"
        )
    missing = [jar for jar in bundle.required if not (staging / jar).is_file()]
    if missing:
        raise FetchError(f"Maven resolved {bundle.artifact} but these jars are missing: {missing}")
    shutil.rmtree(libs, ignore_errors=True)
    libs.parent.mkdir(parents=True, exist_ok=True)
    staging.rename(libs)


def _maven_error(output: str) -> str:
    """The first `[ERROR]` line of Maven's output (the one that names the cause)."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("[ERROR]")]
    if errors:
        return errors[0]
    return lines[-1] if lines else "no output"


def _write_marker(bundle: Bundle, seconds: float) -> None:
    info = {
        "artifact": bundle.artifact,
        "jars": sorted(jar.name for jar in bundle.libs.glob("*.jar")),
        "maven_seconds": round(seconds, 1),
    }
    partial = bundle.marker.with_name(MARKER_NAME + ".tmp")
    partial.write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    os.replace(partial, bundle.marker)
