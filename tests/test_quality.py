"""Lint and type checks as tests, so the one test command covers them: ruff and mypy --strict
on kgen itself and on every committed generated app (with the app's own configuration)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import BuildApp

ROOT = Path(__file__).resolve().parent.parent
APPS = sorted(p for p in (ROOT / "generated").iterdir() if (p / "pyproject.toml").is_file())


def _run(*args: str, cwd: Path) -> None:
    # specs/ holds the example specs' user code (a processor): mypy checks it with the apps.
    env = {**os.environ, "MYPYPATH": str(ROOT / "specs")}
    result = subprocess.run(
        [sys.executable, "-m", *args], cwd=cwd, capture_output=True, text=True, check=False, env=env
    )
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-2000:]


def test_ruff_on_kgen() -> None:
    _run("ruff", "check", "kgen", "tests", cwd=ROOT)


def test_mypy_strict_on_kgen() -> None:
    _run("mypy", cwd=ROOT)  # files and strictness come from pyproject.toml


@pytest.mark.parametrize("app", APPS, ids=[a.name for a in APPS])
def test_generated_app_passes_ruff(app: Path) -> None:
    _run("ruff", "check", ".", cwd=app)


@pytest.mark.parametrize("app", APPS, ids=[a.name for a in APPS])
def test_generated_app_passes_mypy_strict(app: Path) -> None:
    _run("mypy", "--strict", app.name.replace("-", "_"), "tests", cwd=app)


# Conformance topologies whose generated code no committed example has (sliding windows,
# suppression buffers, session merges, KTable operations, regrouping): typed too.
CONFORMANCE = [
    "sliding-count",
    "suppress",
    "session-merge",
    "table-ops",
    "regroup",
    "stream-table-join",
    "table-table-join",
]


@pytest.mark.parametrize("topology", CONFORMANCE)
def test_conformance_app_passes_mypy_strict_and_ruff(topology: str, build_app: BuildApp) -> None:
    spec = ROOT / "tests" / "conformance" / "specs" / f"{topology}.toml"
    app = build_app(spec.read_text(encoding="utf-8"), f"quality_{topology.replace('-', '_')}")
    _run("mypy", "--strict", app.package, "tests", cwd=app.root)
    # Imports, names and loops (the spec's own expressions may have any style).
    _run("ruff", "check", "--select", "I,F,B", app.package, cwd=app.root)
