"""Safe topology evolution: a spec change checked against the committed lock.

Each `tests/evolution/<case>/` holds `before.toml` and `after.toml`. The app is built from
`before` (its lock, `kgen.lock`, is what `kgen build` writes beside the app), then `after` is
built into the same folder:

- `unsafe_*` cases fail with located errors, the exact stderr in `build.expected`, and write
  nothing;
- `safe_*` cases build, and the lock follows the new spec.

`diff.expected` is the exact output of `kgen diff before.toml after.toml` (exit 3 for the
unsafe cases, 0 for the safe ones). To accept new messages after a deliberate change:

    KGEN_UPDATE_EXPECTED=1 python -m pytest tests/test_evolution.py
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from kgen import cli
from kgen.codegen import emit, render
from kgen.evolution import guard, lock
from kgen.plan.planner import plan as make_plan
from kgen.spec.errors import SpecInvalid
from kgen.spec.load import load_spec

ROOT = Path(__file__).resolve().parent.parent
CASES_DIR = Path("tests/evolution")  # relative to ROOT: messages carry the path as given
CASES = sorted(p.name for p in (ROOT / CASES_DIR).iterdir() if (p / "after.toml").is_file())
UPDATE = os.environ.get("KGEN_UPDATE_EXPECTED") == "1"
LOCATED = re.compile(r"^tests/evolution/\w+/after\.toml:\d+:\d+: \S")


@pytest.fixture(autouse=True)
def _at_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)


def _spec(case: str, which: str) -> str:
    return (CASES_DIR / case / f"{which}.toml").as_posix()


def _lock_of(spec: str) -> str:
    """The lock `kgen build SPEC` writes (the rest of the app plays no part in the check)."""
    return lock.dumps(lock.from_plan(make_plan(load_spec(Path(spec)))))


def _golden(case: str, name: str, text: str) -> None:
    expected = ROOT / CASES_DIR / case / name
    if UPDATE:
        expected.write_text(text, encoding="utf-8")
        return
    assert text == expected.read_text(encoding="utf-8")


def test_there_are_enough_cases() -> None:
    unsafe = [c for c in CASES if c.startswith("unsafe_")]
    safe = [c for c in CASES if c.startswith("safe_")]
    assert len(unsafe) >= 8 and len(safe) >= 4
    assert len(unsafe) + len(safe) == len(CASES), "a case is named safe_* or unsafe_*"


@pytest.mark.parametrize("case", CASES)
def test_build_after_change(case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    app = tmp_path / "app"
    app.mkdir()
    previous = _lock_of(_spec(case, "before"))
    (app / lock.FILE).write_text(previous, encoding="utf-8")
    if case.startswith("unsafe_"):
        code = cli.main(["build", _spec(case, "after"), "--out", str(app)])
        out, err = capsys.readouterr()
        assert (code, out) == (1, ""), err
        assert "Traceback" not in err
        lines = err.splitlines()
        assert re.match(r"^\d+ errors? in tests/evolution/", lines[-1]), lines[-1]
        for line in lines[:-1]:
            assert LOCATED.match(line) or line.startswith("    hint: "), line
        hints = [line for line in lines if line.startswith("    hint: ")]
        assert hints and all("--accept-reset " in h for h in hints)
        assert all(" reset --yes" in h for h in hints)
        # Nothing written: the lock is the one of `before`.
        assert sorted(p.name for p in app.iterdir()) == [lock.FILE]
        assert (app / lock.FILE).read_text("utf-8") == previous
        _golden(case, "build.expected", err)
    else:
        # What `kgen build` decides before it renders: the lock of `after`, no resets.
        loaded = load_spec(Path(_spec(case, "after")))
        evolved = guard.evolve(app / lock.FILE, loaded, make_plan(loaded), frozenset())
        assert evolved.accepted == ()
        assert evolved.new == lock.from_plan(make_plan(loaded))


@pytest.mark.parametrize("case", CASES)
def test_diff(case: str, capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main(["diff", _spec(case, "before"), _spec(case, "after")])
    out, err = capsys.readouterr()
    assert err == ""
    assert code == (cli.EXIT_RESET if case.startswith("unsafe_") else cli.EXIT_OK), out
    _golden(case, "diff.expected", out)


def test_lock_round_trips() -> None:
    for spec in sorted((ROOT / "specs").glob("*.toml")):
        made = lock.from_plan(make_plan(load_spec(spec)))
        assert lock.loads(lock.dumps(made)) == made, spec.name


def test_accept_reset_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The real builds: `before`, then a rename refused, then accepted; the lock records the
    reset and `kgen check` keeps it."""
    case = "unsafe_store_renamed"
    app = tmp_path / "app"
    assert cli.main(["build", _spec(case, "before"), "--out", str(app)]) == 0
    assert cli.main(["build", _spec(case, "after"), "--out", str(app)]) == 1
    capsys.readouterr()
    accept = ["--accept-reset", "store:clicks-per-page"]
    code = cli.main(["build", _spec(case, "after"), "--out", str(app), *accept])
    out, err = capsys.readouterr()
    assert (code, err) == (0, "")
    assert "reset accepted (store:clicks-per-page)" in out
    assert "python -m clicks reset --yes" in out
    written = lock.read(app / lock.FILE)
    assert written is not None
    assert [r.accepted for r in written.resets] == ["store:clicks-per-page"]
    assert written.store("page-clicks") is not None and written.store("clicks-per-page") is None
    # `kgen check`'s comparison: the rendered app with the recorded resets is what is on disk.
    plan = make_plan(load_spec(Path(_spec(case, "after"))))
    files = render.render(plan)
    files[lock.FILE] = lock.dumps(lock.from_plan(plan, guard.current_resets(app)))
    assert emit.diff(files, app, "app") == []
    # A stale lock is stale output.
    (app / lock.FILE).write_text(_lock_of(_spec(case, "before")), encoding="utf-8")
    assert emit.diff(files, app, "app") != []


def test_renamed_app_is_found_in_generated(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A new application id means a new package folder: the old lock is found there by spec."""
    spec = tmp_path / "clicks.toml"
    before = (ROOT / CASES_DIR / "unsafe_app_renamed" / "before.toml").read_text("utf-8")
    spec.write_text(before, encoding="utf-8")
    old = tmp_path / "generated" / "clicks"
    old.mkdir(parents=True)
    loaded = load_spec(spec, "specs/clicks.toml")
    (old / lock.FILE).write_text(lock.dumps(lock.from_plan(make_plan(loaded))), encoding="utf-8")
    after = (ROOT / CASES_DIR / "unsafe_app_renamed" / "after.toml").read_text("utf-8")
    spec.write_text(after, encoding="utf-8")
    found = guard.previous_lock(
        tmp_path / "generated" / "page_clicks", tmp_path / "generated", "specs/clicks.toml"
    )
    assert found == old / lock.FILE
    loaded = load_spec(spec, "specs/clicks.toml")
    with pytest.raises(SpecInvalid, match="1 error") as raised:
        guard.evolve(found, loaded, make_plan(loaded), frozenset())
    assert 'app = "clicks"' in raised.value.format()
