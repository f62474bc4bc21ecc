"""Locate `java` and `mvn`, with clear errors when they are missing."""

import functools
import os
import re
import shutil
import subprocess
from pathlib import Path

from kgen.kafka.constants import KAFKA_VERSION, MIN_JAVA_VERSION
from kgen.kafka.errors import ToolMissingError


def find_java() -> Path:
    """`$JAVA_HOME/bin/java` if JAVA_HOME is set (as Kafka's scripts do), else `java` on PATH."""
    java_home = os.environ.get("JAVA_HOME")
    if java_home:
        candidate = Path(java_home) / "bin" / "java"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
        raise ToolMissingError(f"JAVA_HOME={java_home} has no bin/java: fix or unset JAVA_HOME")
    found = shutil.which("java")
    if found is None:
        raise ToolMissingError(
            f"java not found: Kafka {KAFKA_VERSION} needs a Java {MIN_JAVA_VERSION}+ runtime "
            "on PATH or in JAVA_HOME"
        )
    return Path(found)


@functools.cache
def java_major_version(java: Path) -> int:
    """The feature release of `java` (8 for 1.8.0_x, 17 for 17.0.x)."""
    try:
        result = subprocess.run(
            [str(java), "-version"], capture_output=True, text=True, timeout=60, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ToolMissingError(f"cannot run {java} -version: {exc}") from exc
    # On stderr: 'openjdk version "17.0.15" ...' or 'java version "1.8.0_402"'.
    match = re.search(r'version "(\d+)(?:\.(\d+))?', result.stderr + result.stdout)
    if match is None:
        raise ToolMissingError(f"cannot read the version of {java}: {result.stderr.strip()!r}")
    major = int(match.group(1))
    if major == 1 and match.group(2) is not None:
        major = int(match.group(2))
    return major


def require_java() -> Path:
    """A `java` that can run the pinned broker."""
    java = find_java()
    major = java_major_version(java)
    if major < MIN_JAVA_VERSION:
        raise ToolMissingError(
            f"{java} is Java {major}; Kafka {KAFKA_VERSION} needs Java {MIN_JAVA_VERSION}+ "
            "(set JAVA_HOME to a newer JDK)"
        )
    return java


def find_mvn() -> Path:
    """`mvn` on PATH."""
    found = shutil.which("mvn")
    if found is None:
        raise ToolMissingError(
            f"mvn not found: Maven is needed once to download Kafka {KAFKA_VERSION}'s jars "
            "(install Maven 3.6+ and put mvn on PATH)"
        )
    return Path(found)
