"""The Java side: the Maven project in java/, built once into a fat jar cached under kgen's
cache directory, and run over a case file in one JVM.

The jar is `<cache>/conformance/kafka-streams-conformance-<digest>.jar` (`<cache>`:
`$KGEN_CACHE_DIR`, else `~/.cache/kgen`), `<digest>` a sha256 of the project's files, so a
changed twin builds a new jar and an unchanged one is never rebuilt. The build runs in a copy
of the project (nothing is written under tests/), offline first (`mvn -o`) and online when
Maven says offline mode lacks something: the first build fetches kafka-streams 4.4.0 and its
test utils from Maven Central. Concurrent callers wait on a file lock. A new build removes the
jars of other sources.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from kgen.kafka.paths import cache_root

PROJECT = Path(__file__).resolve().parent / "java"
NAME = "kafka-streams-conformance"
MVN_TIMEOUT_S = 900
RUN_TIMEOUT_S = 600
_ANSI = re.compile(r"\x1b\[[0-9;]*m")  # Maven colours even its -q -B output


class BuildError(RuntimeError):
    """Maven is missing or could not build the jar."""


def _sources() -> list[Path]:
    files = [PROJECT / "pom.xml"]
    files.extend(p for p in (PROJECT / "src").rglob("*") if p.is_file())
    return sorted(files)


def digest() -> str:
    """sha256 over the project's files (paths and contents), 16 hex digits."""
    h = hashlib.sha256()
    for path in _sources():
        h.update(path.relative_to(PROJECT).as_posix().encode() + b"\0")
        h.update(path.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def jar_path() -> Path:
    return cache_root() / "conformance" / f"{NAME}-{digest()}.jar"


def _mvn(mvn: str, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [mvn, *args, "-q", "-B", "package"],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=MVN_TIMEOUT_S,
        check=False,
    )


def build() -> Path:
    """The cached jar, built with Maven first when no jar of these sources exists.

    Raises BuildError, with Maven's output, when Maven is missing or the build fails."""
    jar = jar_path()
    if jar.is_file():
        return jar
    mvn = shutil.which("mvn")
    if mvn is None:
        raise BuildError(f"Maven (mvn) is not on PATH: it builds {jar.name} from {PROJECT}")
    jar.parent.mkdir(parents=True, exist_ok=True)
    with open(jar.parent / ".build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another process may be building it right now
        if jar.is_file():
            return jar
        with tempfile.TemporaryDirectory(prefix="build-", dir=jar.parent) as tmp:
            work = Path(tmp) / "project"
            shutil.copytree(PROJECT, work, ignore=shutil.ignore_patterns("target"))
            result = _mvn(mvn, work, "-o")
            if result.returncode != 0 and "offline" in (result.stdout + result.stderr).lower():
                result = _mvn(mvn, work)
            built = work / "target" / f"{NAME}.jar"
            if result.returncode != 0 or not built.is_file():
                output = _ANSI.sub("", result.stdout + result.stderr).strip()
                raise BuildError(
                    f"`mvn -q -B package` of {PROJECT} failed (exit {result.returncode}); "
                    f"its output:\n{output[-6000:]}"
                )
            os.replace(built, jar)  # atomic: a reader sees no jar or the whole jar
        for old in jar.parent.glob(f"{NAME}-*.jar"):
            if old != jar:  # a jar of earlier sources (about 60 MB each)
                old.unlink(missing_ok=True)
    return jar


def run(
    jar: Path, cases: dict[str, list[list[dict[str, Any]]]], workdir: Path
) -> list[dict[str, Any]]:
    """Every output line of the twins for `cases` ({topology: [case: [input record]]})."""
    case_file = workdir / "cases.json"
    case_file.write_text(json.dumps(cases, ensure_ascii=False), encoding="utf-8")
    result = subprocess.run(
        ["java", "-jar", str(jar), str(case_file)],
        capture_output=True,
        timeout=RUN_TIMEOUT_S,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(
            f"{jar.name} exited {result.returncode}:\n"
            f"{result.stderr.decode(errors='replace')[-6000:]}"
        )
    return [json.loads(line) for line in result.stdout.decode().splitlines() if line]
