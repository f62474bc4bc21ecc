"""The benchmark harness end to end at toy size, against the session broker: `python -m bench
run --records 2000 --repeat 1 --warmup 0` runs the kgen apps, Kafka Streams, Quix Streams and
the copy baseline on the filter, transform, count and windowed-count workloads, and all but
Quix on enrich (a stream-table join; Quix is left out of it, and the harness says so), and every
output verifies (the counts as tables); `python -m bench restore` restores a store from its
changelog, then from its tail. Nothing here depends on how fast anything ran."""

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
        timeout=400,
        check=False,
    )


SYSTEMS = ("kgen", "kafka-streams", "quix", "copy")
WORKLOADS = ("filter", "transform", "count", "windowed-count", "enrich")
# The pairs the harness does not run (it says why on stderr and in the results file).
NOT_RUN = {("enrich", "quix")}


def test_bench_runs_every_system_on_every_workload(kafka_bootstrap: str, tmp_path: Path) -> None:
    """One tiny round (no warm-up) of the four systems on the five workloads (but Quix on
    enrich), from one command: every output verifies. The Kafka Streams jar (Maven, ~25 s) and
    the Quix venv (pip, ~35 s) are made on first use and cached under ~/.cache/kgen/bench/."""
    runs_file = tmp_path / "runs.json"
    result = _bench(
        "run",
        "--records",
        "2000",
        "--repeat",
        "1",
        "--warmup",
        "0",
        "--systems",
        ",".join(SYSTEMS),
        "--workloads",
        ",".join(WORKLOADS),
        "--bootstrap-servers",
        kafka_bootstrap,
        "--results-dir",
        str(tmp_path / "results"),
        "--json",
        str(runs_file),
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]

    runs = json.loads(runs_file.read_text())["runs"]
    assert sorted((r["workload"], r["system"]) for r in runs) == sorted(
        (w, s) for w in WORKLOADS for s in SYSTEMS if (w, s) not in NOT_RUN
    )
    assert "not running quix on enrich: Quix Streams has no KTable stream-table join" in (
        result.stderr
    )
    for run in runs:
        assert run["verified"], run
        assert run["exit_code"] == 0, run
        assert run["records"] == 2000
        assert run["commit_interval"] == "default"
        assert run["peak_rss_mib"] > 0, run
    by = {(r["workload"], r["system"]): r for r in runs}
    for workload in WORKLOADS:
        # The copy writes every record, whatever the workload.
        assert by[workload, "copy"]["written"] == 2000
    for system in ("kgen", "kafka-streams", "quix"):
        # The filter keeps about half (the seed fixes how many), the same records everywhere.
        assert 0 < by["filter", system]["written"] == by["filter", system]["expected"] < 2000
        # transform: one record out per record in (re-keyed, the exact bytes checked).
        assert by["transform", system]["written"] == by["transform", system]["expected"] == 2000
        # count: 2000 records of the seed hit ~1,800 users; each key's last update is its
        # count, at most one update per input record.
        count = by["count", system]
        assert count["keys"] == count["expected"] > 1500
        assert count["keys"] <= count["written"] <= 2000
        # windowed-count: per user and event-time minute. The values' ts are 7 ms apart, so
        # 2000 records span 14 s inside one minute: a window per user, as many as count's keys
        # (the windowed key layout and the event time are what the table check adds here).
        windowed = by["windowed-count", system]
        assert windowed["keys"] == windowed["expected"] == count["expected"]
        assert windowed["keys"] <= windowed["written"] <= 2000
    for system in ("kgen", "kafka-streams"):
        # enrich: every user has a row in the preloaded table, so the inner join writes one
        # record per input record, each with its user's fields (the exact bytes checked).
        assert by["enrich", system]["written"] == by["enrich", system]["expected"] == 2000
    # The summary table (with each system's ratio to kgen) is printed; a results file written.
    assert "| default | transform | quix |" in result.stdout
    results_file = list((tmp_path / "results").glob("*.md"))
    assert len(results_file) == 1
    assert "- not run: quix on enrich: " in results_file[0].read_text()


def test_bench_refuses_a_run_with_nothing_to_run(tmp_path: Path) -> None:
    """Quix alone on enrich: refused before any broker is started or used, exit 2, saying
    why."""
    result = _bench(
        "run",
        "--records",
        "10",
        "--systems",
        "quix",
        "--workloads",
        "enrich",
        "--bootstrap-servers",
        "127.0.0.1:9",
        "--results-dir",
        str(tmp_path / "results"),
    )
    assert result.returncode == 2, result.stderr[-3000:]
    assert "bench: nothing to run: quix does not run enrich: " in result.stderr
    assert "join_asof" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "results").exists()


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
