"""Shared fixtures: build a spec into an app folder, then run or import the generated app."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import pytest

from kgen.codegen import emit, render
from kgen.plan.planner import plan as make_plan
from kgen.spec.load import load_spec

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class App:
    """A generated app on disk: `root` holds pyproject.toml, the package and tests/."""

    root: Path
    package: str
    # Every rendered file, by path relative to root.
    files: dict[str, str]

    def env(self, pythonpath: Iterable[Path] = ()) -> dict[str, str]:
        # Only the app (and what a test adds) is importable: the app must not need kgen.
        paths = [str(self.root), *(str(p) for p in pythonpath)]
        return {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}

    def pytest(
        self, *args: str, pythonpath: Iterable[Path] = (), cwd: Path | None = None
    ) -> subprocess.CompletedProcess[str]:
        """The app's own test suite without the broker tests, in a fresh interpreter."""
        return subprocess.run(
            [
                sys.executable,
                "-m",
                "pytest",
                "-q",
                "-p",
                "no:cacheprovider",
                "-m",
                "not broker",
                str(self.root / "tests"),
                *args,
            ],
            cwd=cwd or self.root,
            env=self.env(pythonpath),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    def pytest_broker(self, bootstrap: str) -> subprocess.CompletedProcess[str]:
        """The app's broker tests, against `bootstrap`."""
        return subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "broker"],
            cwd=self.root,
            env={**self.env(), "KAFKA_BOOTSTRAP_SERVERS": bootstrap},
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )

    def python(
        self, code: str, *args: str, pythonpath: Iterable[Path] = (), cwd: Path | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run `code` in a fresh interpreter that can import the app."""
        return subprocess.run(
            [sys.executable, "-c", code, *args],
            cwd=cwd or self.root,
            env=self.env(pythonpath),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    @staticmethod
    def why(result: subprocess.CompletedProcess[str]) -> str:
        """A failed run's exit code and output, for an assertion message."""
        return f"exit {result.returncode}\n{result.stdout[-6000:]}\n{result.stderr[-3000:]}"

    def module(self, name: str) -> ModuleType:
        """Import `<package>.<name>` in this process (package names are unique per test app)."""
        if str(self.root) not in sys.path:
            sys.path.insert(0, str(self.root))
        return importlib.import_module(f"{self.package}.{name}")


BuildApp = Callable[[str, str], App]


@pytest.fixture(scope="session")
def build_app(tmp_path_factory: pytest.TempPathFactory) -> BuildApp:
    """`build_app(spec_text, name)`: write the spec to a fresh folder and build it there, as
    `kgen build SPEC --out DIR` does, into <folder>/app."""

    def build(spec_text: str, name: str) -> App:
        folder = tmp_path_factory.mktemp(name)
        spec = folder / f"{name}.toml"
        spec.write_text(spec_text, encoding="utf-8")
        plan = make_plan(load_spec(spec))
        files = render.render(plan)
        emit.write(files, folder / "app")
        return App(folder / "app", plan.package, files)

    return build
