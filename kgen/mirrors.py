"""`kgen mirror run FILE`: a MirrorMaker 2 dedicated-mode config (a generated app's
`mm2.properties`) run in the foreground by kgen's MirrorMaker (kgen.kafka.mirror, from the jars
kgen fetches into its cache) until Ctrl-C or SIGTERM."""

from __future__ import annotations

import signal
import sys
import tempfile
import time
from pathlib import Path
from types import FrameType

_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "f": "\f"}


def parse_properties(text: str) -> dict[str, str]:
    """A java.util.Properties file's settings: `key = value`, `key: value` or `key value`;
    `#` and `!` comments; backslash escapes and line continuations."""
    logical: list[str] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.lstrip()
        if not pending and (not line or line[0] in "#!"):
            continue
        trailing = len(line) - len(line.rstrip("\\"))
        if trailing % 2 == 1:  # an odd backslash at the end continues the line
            pending += line[:-1]
            continue
        logical.append(pending + line)
        pending = ""
    if pending:
        logical.append(pending)
    settings: dict[str, str] = {}
    for line in logical:
        key, value = _split(line)
        settings[_unescape(key)] = _unescape(value)
    return settings


def _split(line: str) -> tuple[str, str]:
    i = 0
    while i < len(line):
        ch = line[i]
        if ch == "\\":
            i += 2
            continue
        if ch in "=: \t\f":
            rest = line[i:].lstrip(" \t\f")
            if ch in " \t\f" and rest[:1] in ("=", ":"):
                rest = rest[1:]
            elif ch in "=:":
                rest = rest[1:]
            return line[:i], rest.lstrip(" \t\f")
        i += 1
    return line, ""


def _unescape(text: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch != "\\" or i + 1 >= len(text):
            out.append(ch)
            i += 1
            continue
        nxt = text[i + 1]
        if nxt == "u" and i + 6 <= len(text):
            out.append(chr(int(text[i + 2 : i + 6], 16)))
            i += 6
            continue
        out.append(_ESCAPES.get(nxt, nxt))
        i += 2
    return "".join(out)


def run(path: Path, clusters: list[str]) -> int:
    """Run MirrorMaker with the settings of `path` until a signal; 1 when it stops by itself."""
    from kgen.kafka.errors import LocalKafkaError
    from kgen.kafka.mirror import MirrorMaker

    try:
        settings = parse_properties(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        print(f"kgen mirror run: cannot read {path}: {exc}", file=sys.stderr)
        return 1
    stop = False

    def on_signal(signum: int, frame: FrameType | None) -> None:
        nonlocal stop
        stop = True

    # Kept after it stops: its log says why it stopped.
    work_dir = Path(tempfile.mkdtemp(prefix="kgen-mirror-"))
    mirror = MirrorMaker(settings, work_dir, clusters=clusters)
    log = mirror.log_file
    previous = signal.signal(signal.SIGTERM, on_signal)
    try:
        mirror.start()
        print(f"MirrorMaker 2 runs the flows of {path} (log: {log}); Ctrl-C stops it", flush=True)
        while not stop and mirror.is_running():
            time.sleep(0.5)
    except KeyboardInterrupt:
        stop = True
    except LocalKafkaError as exc:
        print(f"kgen mirror run: {exc}", file=sys.stderr)
        return 1
    finally:
        mirror.stop()
        signal.signal(signal.SIGTERM, previous)
    if not stop:
        print(f"kgen mirror run: MirrorMaker stopped by itself (log: {log})", file=sys.stderr)
        return 1
    return 0
