"""Field paths to file positions: a Locator turns a problem with a field into a SpecError at the
line and column where that field is written."""

from __future__ import annotations

import re

from kgen.spec.errors import Loc, SpecError, format_path
from kgen.spec.locate import locate, nearest


class Locator:
    """Turns a field path into a SpecError at the line and column of that field in the file."""

    def __init__(self, display_path: str, text: str) -> None:
        self.file = display_path
        self.positions = locate(text)
        # Only LF ends a line in TOML, as in kgen.spec.locate.
        self._lines = text.split("\n")

    def position(self, loc: Loc) -> tuple[int, int]:
        """Where `loc` is written; a field that is not written (a missing one) is reported at
        its parent."""
        return nearest(self.positions, loc)

    def error(
        self,
        loc: Loc,
        message: str,
        hint: str = "",
        warning: bool = False,
        at: Loc | None = None,
    ) -> SpecError:
        """A problem with the field at `loc`, positioned at `at` when that is more precise
        (e.g. the offending key inside it)."""
        line, col = self.position(loc if at is None else at)
        return SpecError(self.file, line, col, format_path(loc), message, hint, warning)

    def error_at(self, loc: Loc, line: int, col: int, message: str, hint: str = "") -> SpecError:
        return SpecError(self.file, line, col, format_path(loc), message, hint)

    def string_value(self, loc: Loc) -> tuple[int, int, str] | None:
        """The line, column and text of the one-line string written as `key = "..."` at `loc`,
        when its text maps column for column onto the value (no escapes); else None."""
        if loc not in self.positions:
            return None
        line, col = self.positions[loc]
        text = self._lines[line - 1]
        key = re.compile(r"""\s*("[^"\n]*"|'[^'\n]*'|[A-Za-z0-9_-]+)\s*=\s*""")
        m = key.match(text, col - 1)
        if not m:
            return None
        start = m.end()
        quote = text[start : start + 1]
        if quote not in ('"', "'") or text.startswith(quote * 3, start):
            return None
        end = text.find(quote, start + 1)
        body = text[start + 1 : end]
        if end < 0 or (quote == '"' and "\\" in body):
            return None
        return line, start + 2, body
