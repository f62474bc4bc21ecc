"""Quix Streams as a benchmark system: its own virtualenv, made on demand, and the command
that runs bench/quix_app.py in it.

Quix Streams pins confluent-kafka below kgen's, so it cannot share kgen's environment: the
first `ensure_venv()` creates a venv under `$KGEN_CACHE_DIR/bench/quix-<version>/` (default
`~/.cache/kgen/...`) and pip-installs `quixstreams==<version>` there (from PyPI, about a
minute); later calls only check a marker file. Concurrent callers wait on a file lock.

    from bench import quix
    python = quix.ensure_venv()
    argv = quix.command(python, "count", "127.0.0.1:9092", "in", "out", "app", state_dir)
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
from pathlib import Path

VERSION = "3.28.1"
# orjson is a dependency of quixstreams (its default JSON serializer); named so that it is
# there whatever the resolver does.
REQUIREMENTS = (f"quixstreams=={VERSION}", "orjson")
APP = Path(__file__).resolve().parent / "quix_app.py"
WORKLOADS = ("filter", "transform", "count", "windowed-count")
_MARKER = "kgen-installed.txt"
PIP_TIMEOUT_S = 900


class QuixInstallError(RuntimeError):
    """The venv could not be created or pip could not install Quix Streams into it."""


def cache_root() -> Path:
    """`$KGEN_CACHE_DIR`, else `~/.cache/kgen` (as kgen.kafka.paths.cache_root)."""
    configured = os.environ.get("KGEN_CACHE_DIR")
    if configured:
        return Path(configured).expanduser()
    return Path.home() / ".cache" / "kgen"


def venv_dir() -> Path:
    return cache_root() / "bench" / f"quix-{VERSION}"


def _venv_python(root: Path) -> Path:
    return root / "bin" / "python"


def ensure_venv() -> Path:
    """The python of a venv with quixstreams==VERSION, created and installed once.

    Idempotent: when the marker written after a successful install is there, this returns at
    once. A half-made venv (no marker: an interrupted or failed install) is removed and made
    again. Raises QuixInstallError, with pip's output, if the install fails.
    """
    root = venv_dir()
    python = _venv_python(root)
    marker = root / _MARKER
    if marker.is_file() and python.exists():
        return python
    root.parent.mkdir(parents=True, exist_ok=True)
    lock_path = root.parent / f".quix-{VERSION}.lock"
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another process may be installing it right now
        try:
            if marker.is_file() and python.exists():
                return python
            if root.exists():
                shutil.rmtree(root)
            _run([sys.executable, "-m", "venv", str(root)], "create the venv")
            _run(
                [
                    str(python),
                    "-m",
                    "pip",
                    "install",
                    "--disable-pip-version-check",
                    "--no-input",
                    "--quiet",
                    *REQUIREMENTS,
                ],
                f"pip install {' '.join(REQUIREMENTS)}",
            )
            _run([str(python), "-c", "import quixstreams, orjson, rocksdict"], "import quixstreams")
            freeze = _run(
                [str(python), "-m", "pip", "freeze", "--disable-pip-version-check"], "pip freeze"
            )
            tmp = marker.with_suffix(".tmp")
            tmp.write_text(freeze)
            tmp.replace(marker)  # written last: its presence means a complete install
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return python


def installed(python: Path | None = None) -> dict[str, str]:
    """Package -> version of the venv (from the marker: what `pip freeze` said after install)."""
    root = venv_dir() if python is None else Path(python).parent.parent
    packages: dict[str, str] = {}
    for line in (root / _MARKER).read_text().splitlines():
        name, sep, version = line.partition("==")
        if sep:
            packages[name.strip().lower()] = version.strip()
    return packages


def _run(argv: list[str], what: str) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "PIP_USER")}
    try:
        done = subprocess.run(
            argv, capture_output=True, text=True, timeout=PIP_TIMEOUT_S, env=env, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise QuixInstallError(
            f"Quix Streams venv in {venv_dir()}: could not {what}: {exc}"
        ) from exc
    if done.returncode != 0:
        output = (done.stdout + done.stderr).strip().splitlines()
        tail = "\n".join(output[-30:])
        raise QuixInstallError(
            f"Quix Streams venv in {venv_dir()}: could not {what} (exit {done.returncode}):\n{tail}"
        )
    return done.stdout


def command(  # noqa: PLR0917 - the positional signature the harness calls
    python: Path | str,
    workload: str,
    bootstrap: str,
    input: str,
    output: str,
    app_id: str,
    state_dir: Path | str,
    commit_interval_ms: int | None = None,
    stop_when_idle: float | None = None,
) -> list[str]:
    """The argv running `workload` with Quix Streams in the venv of `python`.

    `-I` (isolated): the venv's own packages only, whatever PYTHONPATH the harness has.
    `commit_interval_ms` None keeps Quix's default commit interval (5 s). `stop_when_idle`
    counts from launch until the first message: give it more than the start-up (a group join
    of ~3-6 s, plus state recovery on a restart), as the harness's 60 s does.
    """
    if workload not in WORKLOADS:
        raise ValueError(f"unknown Quix workload {workload!r}; expected one of {WORKLOADS}")
    argv = [str(python), "-I", str(APP), "--workload", workload, "--bootstrap", bootstrap]
    argv += ["--input", input, "--output", output, "--app-id", app_id]
    argv += ["--state-dir", str(state_dir)]
    if commit_interval_ms is not None:
        argv += ["--commit-interval-ms", str(commit_interval_ms)]
    if stop_when_idle is not None:
        argv += ["--stop-when-idle", f"{stop_when_idle:g}"]
    return argv
