"""Source positions for the keys and array elements of a TOML document.

``tomllib`` returns plain values without positions, so kgen scans the text a second time to map
every path of the parsed document to the 1-based (line, column) where it is written; validation
errors are then reported as ``file:LINE:COL``. The scanner is deliberately tolerant: it runs only
after ``tomllib.loads`` accepted the text, so it does not validate anything; it steps over what it
does not understand, and if anything still goes wrong it returns what it found instead of raising.
"""

import bisect
from dataclasses import dataclass
from typing import TypeAlias

Path: TypeAlias = tuple[str | int, ...]
Location: TypeAlias = tuple[int, int]

# Characters that end a bare key. Valid TOML 1.0 bare keys are only A-Za-z0-9_-, but stopping at
# delimiters instead of whitelisting also copes with the unicode bare keys TOML 1.1 allows.
_BARE_KEY_END = frozenset(" \t\r\n=.[]{},#\"'")
# Characters that end a number, boolean or date. A space does not: "1979-05-27 07:32:00" is one
# value, and nothing that can legally follow a value on its line starts with anything but these.
_SCALAR_END = frozenset(",]}#\r\n")
_BLANK = frozenset(" \t\r\n")
_ESCAPES = {
    "b": "\b",
    "t": "\t",
    "n": "\n",
    "f": "\f",
    "r": "\r",
    "e": "\x1b",
    '"': '"',
    "\\": "\\",
}
_HEX_ESCAPE_LEN = {"x": 2, "u": 4, "U": 8}


def locate(text: str) -> dict[Path, Location]:
    """Map every key, table header and array element path in ``text`` to its (line, column).

    Columns count characters, not bytes. Never raises: on anything unexpected the positions
    found so far are returned.
    """
    scanner = _Scanner(text)
    try:
        scanner.run()
    except Exception:
        # A position map is a convenience for error messages; losing part of it must never turn
        # a readable validation error into a crash.
        pass
    return scanner.found


def nearest(locations: dict[Path, Location], path: Path) -> Location:
    """Return the location of the longest known prefix of ``path``, or (1, 1).

    A missing field such as ``("streams", 0, "name")`` has no position of its own, so it is
    reported where its parent ``("streams", 0)`` starts.
    """
    for end in range(len(path), 0, -1):
        found = locations.get(path[:end])
        if found is not None:
            return found
    return (1, 1)


def _unescape(raw: str) -> str:
    """Decode the escapes of a basic-string key; unknown escapes are kept as written."""
    out: list[str] = []
    i = 0
    while i < len(raw):
        char = raw[i]
        if char != "\\" or i + 1 >= len(raw):
            out.append(char)
            i += 1
            continue
        code = raw[i + 1]
        if code in _ESCAPES:
            out.append(_ESCAPES[code])
            i += 2
            continue
        width = _HEX_ESCAPE_LEN.get(code, 0)
        digits = raw[i + 2 : i + 2 + width]
        if width and len(digits) == width:
            try:
                out.append(chr(int(digits, 16)))
                i += 2 + width
                continue
            except ValueError:
                pass
        out.append(char)
        i += 1
    return "".join(out)


@dataclass(slots=True)
class _Frame:
    """An array or inline table whose closing bracket has not been reached yet."""

    path: Path
    is_array: bool
    count: int = 0


class _Scanner:
    """Single forward pass over the text, recording positions into ``found``."""

    def __init__(self, text: str) -> None:
        # tomllib rejects a BOM, but an editor would not count it as a column either.
        self.text = text.removeprefix("\ufeff")
        self.end = len(self.text)
        self.pos = 0
        self.found: dict[Path, Location] = {}
        # Only LF ends a line in TOML (CRLF ends with LF too), so a CR is just a trailing column.
        self._line_starts = [0]
        self._line_starts.extend(i + 1 for i, char in enumerate(self.text) if char == "\n")
        # Number of elements seen so far per array of tables, keyed by its resolved path; a
        # header naming that path refers to the last element.
        self._table_arrays: dict[Path, int] = {}
        self._table: Path = ()

    def where(self, pos: int) -> Location:
        """Convert a character offset to a 1-based (line, column)."""
        line = bisect.bisect_right(self._line_starts, pos)
        return line, pos - self._line_starts[line - 1] + 1

    def peek(self) -> str:
        """Return the current character, or "" at the end of the text."""
        return self.text[self.pos] if self.pos < self.end else ""

    def skip_spaces(self) -> None:
        """Skip spaces and tabs on the current line."""
        while self.pos < self.end and self.text[self.pos] in " \t":
            self.pos += 1

    def skip_line(self) -> None:
        """Move to the start of the next line."""
        newline = self.text.find("\n", self.pos)
        self.pos = self.end if newline < 0 else newline + 1

    def skip_blank(self) -> None:
        """Skip whitespace, newlines and comments."""
        while self.pos < self.end:
            char = self.text[self.pos]
            if char in _BLANK:
                self.pos += 1
            elif char == "#":
                self.skip_line()
            else:
                return

    def run(self) -> None:
        """Scan the document statement by statement."""
        while True:
            self.skip_blank()
            if self.pos >= self.end:
                return
            if self.peek() == "[":
                self.header()
            else:
                target = self.assignment(self._table)
                if target is not None:
                    self.value(target)
            # Only a comment may follow a statement; skipping anything else keeps the scan
            # aligned to lines (and guarantees progress on text it did not understand).
            self.skip_spaces()
            if self.peek() not in ("", "\n", "\r", "#"):
                self.skip_line()

    def header(self) -> None:
        """Handle a ``[table]`` or ``[[array.of.tables]]`` header line."""
        at = self.where(self.pos)
        is_array = self.text.startswith("[[", self.pos)
        self.pos += 2 if is_array else 1
        parts = self.key()
        self.skip_spaces()
        closer = "]]" if is_array else "]"
        if self.text.startswith(closer, self.pos):
            self.pos += len(closer)
        if not parts:
            return
        path: Path = ()
        for index, (name, pos) in enumerate(parts):
            path = (*path, name)
            if index < len(parts) - 1:
                # A parent only implied by this header: point at its name in the header.
                self.found.setdefault(path, self.where(pos))
                if path in self._table_arrays:
                    path = (*path, self._table_arrays[path] - 1)
            elif is_array:
                count = self._table_arrays.get(path, 0)
                self._table_arrays[path] = count + 1
                self.found.setdefault(path, at)
                path = (*path, count)
                self.found[path] = at
            else:
                # An explicit header wins over an earlier implicit mention of the same table.
                self.found[path] = at
        self._table = path

    def key(self) -> list[tuple[str, int]]:
        """Read a possibly dotted key; return each part with its offset."""
        parts: list[tuple[str, int]] = []
        while True:
            self.skip_spaces()
            start = self.pos
            char = self.peek()
            if char in ('"', "'"):
                body = self.string()
                parts.append((_unescape(body) if char == '"' else body, start))
            elif char and char not in _BARE_KEY_END:
                while self.pos < self.end and self.text[self.pos] not in _BARE_KEY_END:
                    self.pos += 1
                parts.append((self.text[start : self.pos], start))
            else:
                return parts
            self.skip_spaces()
            if self.peek() != ".":
                return parts
            self.pos += 1

    def assignment(self, base: Path) -> Path | None:
        """Read ``key =`` below ``base``, record its parts, and return the value's path."""
        parts = self.key()
        self.skip_spaces()
        if not parts or self.peek() != "=":
            return None
        self.pos += 1
        path = base
        for name, pos in parts:
            path = (*path, name)
            self.found.setdefault(path, self.where(pos))
        self.skip_spaces()
        return path

    def string(self) -> str:
        """Consume a string of any of the four kinds; return its body with escapes undecoded."""
        quote = self.text[self.pos]
        escapes = quote == '"'
        triple = quote * 3
        multiline = self.text.startswith(triple, self.pos)
        self.pos += 3 if multiline else 1
        start = self.pos
        while self.pos < self.end:
            char = self.text[self.pos]
            if escapes and char == "\\":
                # Skips the escaped character too, so \" and \\ cannot end the string.
                self.pos += 2
            elif multiline and self.text.startswith(triple, self.pos):
                body_end = self.pos
                self.pos += 3
                # Up to two more quotes right before the delimiter belong to the body.
                for _ in range(2):
                    if self.peek() == quote:
                        self.pos += 1
                return self.text[start:body_end]
            elif not multiline and char == quote:
                self.pos += 1
                return self.text[start : self.pos - 1]
            elif not multiline and char == "\n":
                # A single-line string cannot span lines; stop so the scan stays on track.
                break
            else:
                self.pos += 1
        self.pos = min(self.pos, self.end)
        return self.text[start : self.pos]

    def value(self, path: Path) -> None:
        """Consume the value at ``path``, recording array elements and inline-table keys.

        Nesting is tracked with an explicit stack rather than recursion, so however deep
        tomllib let a document nest, this cannot hit the recursion limit.
        """
        stack: list[_Frame] = []
        self.begin_value(path, stack)
        while stack and self.pos < self.end:
            before = (self.pos, len(stack))
            frame = stack[-1]
            # TOML 1.0 keeps inline tables on one line; allowing newlines and comments in both
            # kinds costs nothing and also handles TOML 1.1.
            self.skip_blank()
            char = self.peek()
            if char == ("]" if frame.is_array else "}"):
                self.pos += 1
                stack.pop()
            elif char == ",":
                self.pos += 1
            elif frame.is_array and char and char not in "]}":
                element = (*frame.path, frame.count)
                frame.count += 1
                self.found[element] = self.where(self.pos)
                self.begin_value(element, stack)
            elif not frame.is_array:
                target = self.assignment(frame.path)
                if target is not None:
                    self.begin_value(target, stack)
            if (self.pos, len(stack)) == before:
                # Nothing understood here (a stray bracket): step over it rather than loop.
                self.pos += 1

    def begin_value(self, path: Path, stack: list[_Frame]) -> None:
        """Consume a scalar, or open an array or inline table by pushing it on ``stack``."""
        char = self.peek()
        if char in ("[", "{"):
            self.pos += 1
            stack.append(_Frame(path, is_array=char == "["))
        elif char in ('"', "'"):
            self.string()
        else:
            while self.pos < self.end and self.text[self.pos] not in _SCALAR_END:
                self.pos += 1
