"""`kgen build` against the committed lock: a change that loses state stops the build with
located errors, unless it is accepted (`--accept-reset`), which the new lock records."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from kgen.evolution import compare, lock
from kgen.evolution.lock import Lock, ResetRecord
from kgen.plan.models import AppPlan
from kgen.spec.errors import SpecInvalid
from kgen.spec.load import LoadedSpec
from kgen.spec.locator import Locator


@dataclass(frozen=True)
class Evolved:
    new: Lock
    # The resets this build accepted (also in new.resets, after the earlier ones).
    accepted: tuple[ResetRecord, ...]
    # Where the previous lock was, when there was one.
    previous: Path | None


def previous_lock(root: Path, generated: Path | None, spec_path: str) -> Path | None:
    """The committed lock of this app: in its folder, else (the application id changed, so
    the package did) the lock in `generated` written from the same spec."""
    if (root / lock.FILE).is_file():
        return root / lock.FILE
    if generated is None or not generated.is_dir():
        return None
    for candidate in sorted(generated.glob(f"*/{lock.FILE}")):
        try:
            found = lock.read(candidate)
        except lock.LockError:
            continue
        if found is not None and found.spec == spec_path:
            return candidate
    return None


def evolve(
    previous: Path | None, loaded: LoadedSpec, plan: AppPlan, accepted: frozenset[str]
) -> Evolved:
    """The new lock; SpecInvalid with every unsafe change not in `accepted`. A lock that
    cannot be read raises lock.LockError."""
    old = lock.read(previous) if previous is not None else None
    if old is None:
        return Evolved(lock.from_plan(plan), (), None)
    found = compare.changes(old, lock.from_plan(plan))
    where = Locator(loaded.display_path, loaded.text)
    errors = compare.problems(found, loaded.spec, where, plan.package, accepted)
    if errors:
        raise SpecInvalid(errors)
    new = tuple(
        lock.ResetRecord(c.subject, c.message, plan.spec_sha256)
        for c in found
        if not c.safe and c.subject in accepted
    )
    return Evolved(lock.from_plan(plan, old.resets + new), new, previous)


def current_resets(root: Path) -> tuple[ResetRecord, ...]:
    """The resets recorded in the app's lock (kept by `kgen check`'s render)."""
    try:
        found = lock.read(root / lock.FILE)
    except lock.LockError:
        return ()
    return found.resets if found is not None else ()
