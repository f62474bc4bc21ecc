"""The wheel ships templates/ (as the package kgen.templates), so an installed kgen builds apps."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_wheel_ships_every_template(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "-q",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        check=False,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    [wheel] = tmp_path.glob("kgen-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    templates = {p.relative_to(ROOT).as_posix() for p in (ROOT / "templates").rglob("*.j2")}
    assert templates, "no templates found"
    missing = {t for t in templates if f"kgen/{t}" not in names}
    assert not missing, f"not in the wheel: {sorted(missing)}"
    assert "kgen/cli.py" in names and "kgen/kafka/broker.py" in names

    # An installed kgen (the wheel unpacked, not the checkout) finds them and builds an app.
    installed = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(installed)
    out = tmp_path / "app"
    build = subprocess.run(
        [
            sys.executable,
            "-m",
            "kgen",
            "build",
            str(ROOT / "specs/payments.toml"),
            "--out",
            str(out),
        ],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(installed)},
        check=False,
        capture_output=True,
        text=True,
    )
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    assert (out / "payments" / "runtime.py").is_file()
    where = subprocess.run(
        [sys.executable, "-c", "from kgen.codegen import render; print(render.templates_dir())"],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(installed)},
        check=True,
        capture_output=True,
        text=True,
    )
    assert where.stdout.strip() == str(installed / "kgen" / "templates")
