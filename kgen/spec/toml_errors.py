"""TOML the parser rejects, explained: tomllib's messages reworded for a spec author and moved
to the character that needs fixing (the quote that opens a string never closed, the bracket of an
array never closed), each as a located SpecError."""

from __future__ import annotations

import ast
import re

from kgen.spec.errors import SpecError, format_path


def not_utf8(display: str, raw: bytes, exc: UnicodeDecodeError) -> SpecError:
    before = raw[: exc.start]
    line_start = before.rfind(b"\n") + 1
    # Everything before the first bad byte decodes: count the columns in characters.
    col = len(raw[line_start : exc.start].decode("utf-8")) + 1
    return SpecError(
        display,
        before.count(b"\n") + 1,
        col,
        "",
        f"the file is not UTF-8: byte 0x{raw[exc.start]:02x} ({exc.reason})",
        "save the spec as UTF-8, the only encoding TOML allows",
    )


def toml_error(display: str, text: str, message: str) -> SpecError:
    # tomllib reads CRLF as LF and reports positions in that text.
    src = text.replace("\r\n", "\n")
    m = re.fullmatch(r"(.*) \(at (?:line (\d+), column (\d+)|end of document)\)", message, re.S)
    what = m.group(1) if m else message
    offset = len(src)
    if m and m.group(2):
        line, col = int(m.group(2)), int(m.group(3))
        offset = sum(len(x) + 1 for x in src.split("\n")[: line - 1]) + col - 1
    offset, what, hint = _explain_toml(src, offset, what)
    line, col = _line_col(src, offset)
    return SpecError(display, line, col, "", f"invalid TOML: {what}", hint)


def _line_col(src: str, offset: int) -> tuple[int, int]:
    return src.count("\n", 0, offset) + 1, offset - src.rfind("\n", 0, offset)


def _explain_toml(src: str, offset: int, what: str) -> tuple[int, str, str]:
    """Reword tomllib's message for a spec author and move it to the offending place:
    (offset, message, hint)."""
    if src.startswith("\ufeff"):
        return 0, "the file starts with a byte-order mark", "save it as UTF-8 without a BOM"
    opened, statement, string = _toml_context(src, offset)
    rest = src[offset:]
    if what in _UNCLOSED_STRING or (
        what.startswith(("Illegal character", "Found invalid character")) and rest[:1] == "\n"
    ):
        at = string if string >= 0 else offset
        triple = src[at : at + 3] in ('"""', "'''")
        return (
            at,
            "this string is never closed",
            f"end it with {src[at : at + 3]}"
            if triple
            else "end it with the quote it starts with, on the same line; only strings in "
            'triple quotes (""") span lines',
        )
    if opened and not rest.strip():
        closer = "]" if src[opened[-1]] == "[" else "}"
        kind = "array" if closer == "]" else "inline table"
        return opened[-1], f"this {kind} is never closed", f"add '{closer}' after its last element"
    if opened:
        line, col = _line_col(src, opened[-1])
        if src[opened[-1]] == "{" and rest.startswith("\n"):
            return (
                offset,
                "an inline table must end on the line it starts on",
                f"close the table opened at line {line}, column {col} with '}}' on that line, "
                "or write it as a [table]",
            )
        if what in ("Unclosed array", "Unclosed inline table"):
            closer, kind = ("]", "array") if what == "Unclosed array" else ("}", "inline table")
            return (
                offset,
                f"expected ',' or '{closer}' after an element of the {kind}",
                f"separate the elements with ',' (the {kind} opened at line {line}, column {col})",
            )
        if what == "Invalid initial character for a key part" and rest.startswith("}"):
            return offset, "a ',' before '}' in an inline table", "remove the trailing ','"
    if what == "Invalid value":
        word = re.match(r"[A-Za-z_][A-Za-z0-9_.-]*", rest)
        if word and word.group() in ("True", "False"):
            return offset, "invalid value", "TOML booleans are lower case: true, false"
        if word:
            return offset, "invalid value", f'a string needs quotes: "{word.group()}"'
        if not rest.split("\n", 1)[0].strip():
            return offset, "a value is missing after '='", ""
        return offset, "invalid value", ""
    if what == "Cannot overwrite a value" and not opened:
        return _explain_duplicate_key(src, statement)
    declared = re.fullmatch(r"Cannot declare (\(.*\)) twice", what)
    if declared:
        try:
            name = format_path(tuple(ast.literal_eval(declared.group(1))))
        except (ValueError, SyntaxError):
            name = declared.group(1)
        return statement, f"table [{name}] is declared twice", "merge the two tables into one"
    duplicate = re.fullmatch(r"Duplicate inline table key '(.*)'", what)
    if duplicate:
        key = duplicate.group(1)
        keys = list(re.finditer(rf"(?<![\w-]){re.escape(key)}\s*=", src[:offset]))
        return keys[-1].start() if keys else offset, f"{key!r} is set twice in this table", ""
    reworded = {
        "Expected newline or end of document after a statement": (
            "unexpected text after the value",
            "each key = value goes on a line of its own",
        ),
        "Expected '=' after a key in a key/value pair": (
            "expected '=' after the key",
            "TOML uses '=', not ':'" if rest.startswith(":") else "",
        ),
        "Invalid statement": ("expected a key = value or a [table] header", ""),
    }
    message, hint = reworded.get(what, (what[:1].lower() + what[1:], ""))
    return offset, message, hint


def _explain_duplicate_key(src: str, statement: int) -> tuple[int, str, str]:
    key = re.match(r"[^=\n]*", src[statement:])
    name = key.group().strip() if key else ""
    if name.startswith("["):
        return statement, f"table {name} redefines a key set earlier", ""
    # The first setting is in the same table: after the last header before this statement.
    table = max(0, src.rfind("\n[", 0, statement))
    first = re.search(rf"^[ \t]*{re.escape(name)}[ \t]*=", src[table:statement], re.M)
    hint = "a key can be set only once per table"
    if first:
        hint += f"; line {_line_col(src, table + first.start())[0]} sets it already"
    return statement, f"{name!r} is already set", hint


# tomllib's messages for a string that does not end (basic, literal, multi-line literal).
_UNCLOSED_STRING = ("Unterminated string", 'Expected "\'"', "Expected \"'''\"")


def _toml_context(src: str, offset: int) -> tuple[list[int], int, int]:
    """The offsets of the arrays and inline tables still open at `offset`, of the start of the
    statement holding `offset`, and of the last string begun before it (or -1). Only called on
    text tomllib rejected, so it is lenient."""
    opened: list[int] = []
    statement = 0
    string = -1
    line_start = True
    i = 0
    while i < offset:
        char = src[i]
        if char == "\n":
            line_start = True
            i += 1
            continue
        if char in " \t\r":
            i += 1
            continue
        if line_start and not opened and char != "#":
            statement = i
            if char == "[":  # a table header: no values in it
                newline = src.find("\n", i)
                i = offset if newline < 0 else min(newline, offset)
                continue
        line_start = False
        if char == "#":
            newline = src.find("\n", i)
            i = offset if newline < 0 else newline
        elif char in "\"'":
            string = i
            i = _skip_string(src, i)
        elif char in "[{":
            opened.append(i)
            i += 1
        elif char in "]}":
            if opened:
                opened.pop()
            i += 1
        else:
            i += 1
    return opened, statement, string


def _skip_string(src: str, i: int) -> int:
    quote = src[i]
    delimiter = quote * 3 if src.startswith(quote * 3, i) else quote
    j = i + len(delimiter)
    while j < len(src):
        if quote == '"' and src[j] == "\\":
            j += 2
        elif src.startswith(delimiter, j):
            return j + len(delimiter)
        elif src[j] == "\n" and len(delimiter) == 1:
            return j
        else:
            j += 1
    return len(src)
