"""Spec errors as values: collected, located and printed together, never raised as tracebacks."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

Loc = tuple[str | int, ...]


def format_path(loc: Loc) -> str:
    """('streams', 0, 'steps', 2, 'filter') -> 'streams[0].steps[2].filter'."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif out:
            out += f".{part}" if part.isidentifier() else f"[{part!r}]"
        else:
            out = part if part.isidentifier() else f"[{part!r}]"
    return out or "(document)"


@dataclass(frozen=True, order=True)
class SpecError:
    """One problem in one spec file, at a line and column, with an optional hint."""

    file: str
    line: int
    col: int
    path: str
    message: str
    hint: str = ""
    warning: bool = False

    def format(self) -> str:
        kind = "warning: " if self.warning else ""
        text = f"{self.file}:{self.line}:{self.col}: {kind}{self.path}: {self.message}"
        if self.hint:
            text += f"\n    hint: {self.hint}"
        return text


class SpecInvalid(Exception):
    """Raised by the loader with every error of a spec; the CLI prints them and exits 1."""

    def __init__(self, errors: Sequence[SpecError]) -> None:
        super().__init__(f"{len(errors)} error(s)")
        self.errors = sorted(errors)

    def format(self) -> str:
        lines = [e.format() for e in self.errors]
        n = sum(1 for e in self.errors if not e.warning)
        lines.append(f"{n} error{'s' if n != 1 else ''} in {self.errors[0].file}")
        return "\n".join(lines)
