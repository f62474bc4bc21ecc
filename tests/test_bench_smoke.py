"""The benchmark harness end to end at toy size: `python -m bench run --records 2000
--repeat 1` against the session broker builds the filter app, runs it and the copy baseline,
and both verify their output. Nothing here depends on how fast anything ran."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.broker


def test_bench_smoke_mode_verifies_both_systems(kafka_bootstrap: str, tmp_path: Path) -> None:
    runs_file = tmp_path / "runs.json"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            "run",
            "--records",
            "2000",
            "--repeat",
            "1",
            "--systems",
            "kgen,copy",
            "--bootstrap-servers",
            kafka_bootstrap,
            "--results-dir",
            str(tmp_path / "results"),
            "--json",
            str(runs_file),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]

    runs = json.loads(runs_file.read_text())["runs"]
    measured = [r for r in runs if r["round"] > 0]
    assert sorted(r["system"] for r in measured) == ["copy", "kgen"]
    for run in runs:
        assert run["verified"], run
        assert run["exit_code"] == 0, run
        assert run["records"] == 2000
    by_system = {r["system"]: r for r in measured}
    # The copy writes every record; the filter about half of them (the seed fixes how many).
    assert by_system["copy"]["written"] == 2000
    assert 0 < by_system["kgen"]["written"] < 2000
    assert by_system["kgen"]["written"] == by_system["kgen"]["expected"]
    # The summary table is printed and a results file is written.
    assert "| filter | kgen |" in result.stdout
    assert len(list((tmp_path / "results").glob("*.md"))) == 1
