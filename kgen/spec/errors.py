"""Spec errors as values: collected, located and printed together, never raised as tracebacks."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

Loc = tuple[str | int, ...]

_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def format_path(loc: Loc) -> str:
    """A field path as the user would write its TOML key: ('topics', 'a-b', 'partitions') ->
    'topics.a-b.partitions', ('streams', 0, 'steps', 2) -> 'streams[0].steps[2]'; keys that are
    not bare TOML keys are quoted: 'topics.t.config."retention.ms"'."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
            continue
        key = part if _BARE_KEY.match(part) else '"' + part.replace('"', '\\"') + '"'
        out += f".{key}" if out else key
    return out


@dataclass(frozen=True, order=True)
class SpecError:
    """One problem in one spec file, at a line and column, with an optional hint.

    `path` is the field the problem is about; it is empty for problems that have no field, such
    as a TOML syntax error.
    """

    file: str
    line: int
    col: int
    path: str
    message: str
    hint: str = ""
    warning: bool = False

    def format(self) -> str:
        kind = "warning: " if self.warning else ""
        where = f"{self.path}: " if self.path else ""
        text = f"{self.file}:{self.line}:{self.col}: {kind}{where}{self.message}"
        if self.hint:
            text += f"\n    hint: {self.hint}"
        return text


class SpecInvalid(Exception):
    """Raised by the loader with every problem of a spec (errors and warnings); the CLI prints
    them in file order and exits 1."""

    def __init__(self, errors: Sequence[SpecError]) -> None:
        self.errors = sorted(errors)
        count = sum(1 for e in self.errors if not e.warning)
        super().__init__(f"{count} error{'s' if count != 1 else ''}")

    def format(self) -> str:
        lines = [e.format() for e in self.errors]
        lines.append(f"{self} in {self.errors[0].file}")
        return "\n".join(lines)
