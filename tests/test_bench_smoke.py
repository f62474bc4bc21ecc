"""The benchmark harness end to end at toy size, against the session broker: `python -m bench
run --records 2000 --repeat 1` builds the filter app, runs it and the copy baseline, and both
verify their output; the count workload (a stateful app) verifies its table; `python -m bench
restore` restores a store from its changelog, then from its tail. Nothing here depends on how
fast anything ran."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.broker


def _bench(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bench", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_bench_smoke_mode_verifies_both_systems(kafka_bootstrap: str, tmp_path: Path) -> None:
    runs_file = tmp_path / "runs.json"
    result = _bench(
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


def test_bench_count_workload_verifies_the_table(kafka_bootstrap: str, tmp_path: Path) -> None:
    """The stateful app (group_by, count into a RocksDB store, to_stream) from a cold start:
    its output, read as a table, holds the true count of every user."""
    runs_file = tmp_path / "runs.json"
    result = _bench(
        "run",
        "--records",
        "3000",
        "--repeat",
        "1",
        "--warmup",
        "0",
        "--systems",
        "kgen,copy",
        "--workloads",
        "count",
        "--bootstrap-servers",
        kafka_bootstrap,
        "--no-results",
        "--json",
        str(runs_file),
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]

    runs = {r["system"]: r for r in json.loads(runs_file.read_text())["runs"]}
    assert sorted(runs) == ["copy", "kgen"]
    for run in runs.values():
        assert run["verified"], run
        assert run["exit_code"] == 0, run
        assert run["workload"] == "count"
    kgen = runs["kgen"]
    # 3000 records of the seed hit 2,600 users; each key's last update is its count, and at
    # most one update per input record (de-duplicated per commit).
    assert kgen["keys"] == kgen["expected"] > 2000
    assert kgen["keys"] <= kgen["written"] <= 3000
    assert runs["copy"]["written"] == 3000
    assert "| count | kgen |" in result.stdout


def test_bench_restore_reads_the_changelog_then_only_its_tail(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    """`bench restore`: the generated app's own restore fills an empty store with every
    changelog record, then reads nothing more from the same state dir."""
    runs_file = tmp_path / "restore.json"
    result = _bench(
        "restore",
        "--records",
        "3000",
        "--repeat",
        "1",
        "--bootstrap-servers",
        kafka_bootstrap,
        "--results-dir",
        str(tmp_path / "results"),
        "--json",
        str(runs_file),
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]

    runs = {r["kind"]: r for r in json.loads(runs_file.read_text())["runs"]}
    assert sorted(runs) == ["cold", "warm"]
    for run in runs.values():
        assert run["verified"], run
        assert run["store_keys"] == 3000
    assert runs["cold"]["records"] == 3000
    assert runs["warm"]["records"] == 0
    assert "| cold |" in result.stdout
    assert len(list((tmp_path / "results").glob("*.md"))) == 1
