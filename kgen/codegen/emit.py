"""Rendered files -> disk: write them, or compare them with what is there (`kgen check`)."""

from __future__ import annotations

import difflib
from pathlib import Path

# Left behind by running a generated app or its tests; never part of the output.
_IGNORED_PARTS = {"__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache"}
_IGNORED_SUFFIXES = {".pyc", ".pyo"}


def on_disk(root: Path) -> set[str]:
    """The files under `root` that count as output: what running an app leaves is ignored."""
    if not root.is_dir():
        return set()
    return {
        p.relative_to(root).as_posix()
        for p in root.rglob("*")
        if p.is_file()
        and not (_IGNORED_PARTS & set(p.relative_to(root).parts))
        and p.suffix not in _IGNORED_SUFFIXES
        and not p.name.endswith(".egg-info")
        and ".egg-info" not in p.as_posix()
    }


def write(files: dict[str, str], root: Path) -> list[str]:
    """Write every file (bytes exactly as rendered); delete files kgen no longer produces.
    Returns the relative paths that changed."""
    changed = []
    for rel, text in files.items():
        path = root / rel
        data = text.encode("utf-8")
        if path.is_file() and path.read_bytes() == data:
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        changed.append(rel)
    for rel in sorted(on_disk(root) - set(files)):
        (root / rel).unlink()
        changed.append(rel)
    return changed


def diff(files: dict[str, str], root: Path, label: str) -> list[str]:
    """A unified diff from what is on disk to what the spec renders; empty when up to date."""
    out: list[str] = []
    for rel in sorted(set(files) | on_disk(root)):
        path = root / rel
        old = path.read_text("utf-8", errors="replace") if path.is_file() else ""
        new = files.get(rel, "")
        if path.is_file() and rel in files and old == new:
            continue
        a = f"a/{label}/{rel}" if path.is_file() else "/dev/null"
        b = f"b/{label}/{rel}" if rel in files else "/dev/null"
        lines = list(difflib.unified_diff(old.splitlines(True), new.splitlines(True), a, b))
        out.extend(line if line.endswith("\n") else line + "\n" for line in lines)
    return out
