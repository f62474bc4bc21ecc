"""The processor of the `processor-windows` conformance topology, as Spans.java is Kafka
Streams': counts each key's records per 1 s window in a window store (a null value deletes
the record's window) and forwards the count with the key's windows of the last 2.5 s; merges
the key's sessions within 500 ms of the record in a session store (as a session window does,
by hand) and forwards the session it made. Out-of-order records reach windows and sessions
that have expired (retention 2 s and 1.5 s)."""

from __future__ import annotations

from typing import Any


class Spans:
    def init(self, context: Any) -> None:
        self.context = context
        self.windows = context.window_store("spans-windows")
        self.sessions = context.session_store("spans-sessions")

    def process(self, record: Any) -> None:
        if record.key is None:
            self.context.forward(record.with_value("no key"))
            return
        key, ts = record.key, record.timestamp
        start = ts - ts % 1000
        if record.value is None:
            old = self.windows.get(key, start)
            self.windows.put(key, None, start)
            text = "null" if old is None else str(old)
            self.context.forward(record.with_value(f"deleted {text} @{start}"))
            return
        count = self.windows.get(key, start)
        n = 1 if count is None else count + 1
        self.windows.put(key, n, start)
        recent = ",".join(f"{s}={c}" for s, c in self.windows.fetch(key, ts - 2500, ts))
        merged = list(self.sessions.find_sessions(key, ts - 500, ts + 500))
        low, high, total = ts, ts, 1
        for session, value in merged:
            low, high, total = min(low, session.start), max(high, session.end), total + value
        for session, _ in merged:
            self.sessions.remove(session)
        self.sessions.put(self._windowed(key, low, high), total)
        text = f"{record.value}|w={n}|{recent}|s=[{low},{high}]={total} merged={len(merged)}"
        self.context.forward(record.with_value(text))

    def _windowed(self, key: str, start: int, end: int) -> Any:
        # The app the conformance suite builds from specs/processor-windows.toml (a user's
        # module would import its app's Windowed at the top).
        from conformance_processor_windows.processors import Windowed

        return Windowed(key, start, end)

    def close(self) -> None:
        pass
