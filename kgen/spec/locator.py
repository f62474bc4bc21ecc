"""Field paths to file positions: a Locator turns a problem with a field into a SpecError at the
line and column where that field is written."""

from __future__ import annotations

import copy
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
        # For a spec validated without some entries of its arrays: where each remaining entry
        # is in the file (see reindexed).
        self._indexes: dict[str, list[int]] = {}

    def reindexed(self, indexes: dict[str, list[int]]) -> Locator:
        """A Locator for a spec whose array `name` holds only the entries at `indexes[name]` of
        the file's: ('streams', 1) there is ('streams', indexes['streams'][1]) here."""
        other = copy.copy(self)
        other._indexes = indexes
        return other

    def _in_file(self, loc: Loc) -> Loc:
        if len(loc) < 2 or loc[0] not in self._indexes or not isinstance(loc[1], int):
            return loc
        return (loc[0], self._indexes[str(loc[0])][loc[1]], *loc[2:])

    def position(self, loc: Loc) -> tuple[int, int]:
        """Where `loc` is written; a field that is not written (a missing one) is reported at
        its parent."""
        return nearest(self.positions, self._in_file(loc))

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
        path = format_path(self._in_file(loc))
        return SpecError(self.file, line, col, path, message, hint, warning)

    def error_at(self, loc: Loc, line: int, col: int, message: str, hint: str = "") -> SpecError:
        return SpecError(self.file, line, col, format_path(self._in_file(loc)), message, hint)

    def string_value(self, loc: Loc) -> tuple[int, int, str] | None:
        """The line, column and text of the one-line string written as `key = "..."` at `loc`,
        when its text maps column for column onto the value (no escapes); else None."""
        loc = self._in_file(loc)
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
