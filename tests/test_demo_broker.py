"""The quick start's main job and the CDC demo, run as a user runs them (`python -m kgen demo`,
`python -m kgen demo --cdc`) against the session broker, building into a temporary folder."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _demo(tmp_path: Path, *args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kgen", "demo", "--generated", str(tmp_path), *args],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.mark.broker
def test_demo_builds_payments_and_prints_its_output(kafka_bootstrap: str, tmp_path: Path) -> None:
    result = _demo(tmp_path, timeout=300)
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert f"using the brokers in KGEN_BOOTSTRAP_SERVERS: {kafka_bootstrap}" in out
    assert (tmp_path / "payments" / "payments" / "topology.py").is_file()
    assert "what the app wrote (read_committed):" in out
    # Every output topic is listed with at least one record of the sample data.
    written = out.split("what the app wrote (read_committed):", 1)[1]
    assert "key=" in written and "value=" in written


@pytest.mark.broker
def test_cdc_demo_shows_the_table_equal_to_the_database(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    result = _demo(tmp_path, "--cdc", timeout=600)
    out = result.stdout
    assert result.returncode == 0, out[-4000:] + result.stderr[-4000:]
    assert "shop-customers: running" in out  # the connector applied by the generated CLI
    table = out.split("the table as the topic keeps it", 1)[1].split("the table in PostgreSQL:")
    kept = [line.strip() for line in table[0].splitlines()[1:] if "|" in line]
    database = [line.strip() for line in table[1].splitlines()[1:] if "|" in line]
    # Ada's email updated, Alan deleted, Grace inserted: the story of kgen.demo_cdc.CHANGES.
    assert kept == database == ["1 | Ada | ada@lovelace.org", "3 | Grace | grace@example.com"]
    assert "they are equal" in out
    assert "app stopped (exit 0)" in out
    # One record per change: two snapshot rows, an insert, an update, a tombstone.
    records = out.split("one record per change:", 1)[1].split("[kgen demo]", 1)[0]
    assert records.count("key=") == 5 and records.count("value=null") == 1
