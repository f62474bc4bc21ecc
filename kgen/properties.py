"""Keys and values written into a java.util.Properties file (broker, Connect worker and
MirrorMaker configs), so that `Properties.load` reads back exactly the text given.

Connect and MirrorMaker load their files as ISO-8859-1 (`Utils.loadProps` over a stream), so
any character outside printable ASCII is written as a `\\uXXXX` escape (UTF-16 units)."""


def key(text: str) -> str:
    """A key: '\\', whitespace, ':', '=', '#' and '!' escaped (they would end or start it)."""
    out = text.replace("\\", "\\\\")
    for ch in " :=#!":
        out = out.replace(ch, "\\" + ch)
    return _escaped(out)


def value(text: str) -> str:
    """A value: '\\' escaped, and a leading blank (which the reader would drop)."""
    out = text.replace("\\", "\\\\")
    if out[:1] in (" ", "\t", "\f"):
        out = "\\" + out
    return _escaped(out)


_CONTROLS = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\f": "\\f"}


def _escaped(text: str) -> str:
    out = []
    for ch in text:
        if ch in _CONTROLS:
            out.append(_CONTROLS[ch])
        elif " " <= ch <= "~":
            out.append(ch)
        else:
            units = ch.encode("utf-16-be")
            out += [f"\\u{units[i]:02x}{units[i + 1]:02x}" for i in range(0, len(units), 2)]
    return "".join(out)
