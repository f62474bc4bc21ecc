"""Invalid specs and the exact messages kgen gives for them.

Each `tests/invalid/<case>.toml` holds one realistic mistake (a few hold several, to show that
all of them are reported at once); `<case>.expected` is the exact stderr of
`kgen validate tests/invalid/<case>.toml`, run from the repository root. A test fails when a
message changes, so every change to a message is reviewed as a diff of these files.

To accept new messages after a deliberate change, regenerate the files and review the diff:

    KGEN_UPDATE_EXPECTED=1 python -m pytest tests/test_invalid_specs.py
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from kgen import cli

ROOT = Path(__file__).resolve().parent.parent
CASES_DIR = Path("tests/invalid")  # relative to ROOT: messages carry the path as given
CASES = sorted(p.stem for p in (ROOT / CASES_DIR).glob("*.toml"))
UPDATE = os.environ.get("KGEN_UPDATE_EXPECTED") == "1"

# The first line of every problem: file:LINE:COL: then the message (a hint follows indented).
LOCATED = re.compile(r"^tests/invalid/[^:]+\.toml:\d+:\d+: \S")
SUMMARY = re.compile(r"^\d+ errors? in tests/invalid/[^:]+\.toml$")


@pytest.fixture(autouse=True)
def _at_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)


def _expected_path(case: str) -> Path:
    return ROOT / CASES_DIR / f"{case}.expected"


def _check_shape(stderr: str) -> None:
    assert "Traceback" not in stderr
    lines = stderr.splitlines()
    assert len(lines) >= 2, stderr
    assert SUMMARY.match(lines[-1]), lines[-1]
    for line in lines[:-1]:
        assert LOCATED.match(line) or line.startswith("    hint: "), line
    errors = sum(1 for line in lines[:-1] if LOCATED.match(line) and ": warning: " not in line)
    assert lines[-1].startswith(f"{errors} error"), "the count must match the errors shown"


def test_there_are_enough_cases() -> None:
    assert len(CASES) >= 15
    for case in CASES:
        assert _expected_path(case).exists() or UPDATE, f"{case}.expected is missing"
    orphans = {p.stem for p in (ROOT / CASES_DIR).glob("*.expected")} - set(CASES)
    assert not orphans, f".expected files without a spec: {sorted(orphans)}"


@pytest.mark.parametrize("case", CASES)
def test_invalid_spec(case: str, capsys: pytest.CaptureFixture[str]) -> None:
    path = (CASES_DIR / f"{case}.toml").as_posix()
    code = cli.main(["validate", path])
    out, err = capsys.readouterr()
    assert code == 1
    assert out == ""
    _check_shape(err)
    expected = _expected_path(case)
    if UPDATE:
        expected.write_text(err, encoding="utf-8")
        return
    assert err == expected.read_text(encoding="utf-8")


@pytest.mark.parametrize("case", ["several_errors", "toml_missing_comma", "not_utf8"])
def test_invalid_spec_as_a_process(case: str) -> None:
    """The real command: exit status 1 and the same stderr, no traceback."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-m", "kgen", "validate", f"{CASES_DIR.as_posix()}/{case}.toml"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stdout + result.stderr
    _check_shape(result.stderr)
    if not UPDATE:
        assert result.stderr == _expected_path(case).read_text(encoding="utf-8")
