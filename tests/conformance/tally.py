"""The processor of the `processor` conformance topology, as Tally.java is Kafka Streams':
counts each key's records in a store, forwards each record with its count and where it was
read (its timestamp moved on by the count), forwards the store's content at each stream-time
punctuation (every second), and at each wall-clock punctuation (every 5 s) deletes the keys
from "a" to "z" counted twice or more."""

from __future__ import annotations

from typing import Any


class Tally:
    def init(self, context: Any) -> None:
        self.context = context
        self.store = context.store("tally")
        context.schedule(1000, "stream_time", self.stream_time)
        context.schedule(5000, "wall_clock", self.wall_clock)

    def process(self, record: Any) -> None:
        if record.key is None:
            self.context.forward(record.with_value("no key"))
            return
        where = self.context.record_metadata()
        if record.value is None:
            old = self.store.delete(record.key)
            text = "null" if old is None else str(old)
            self.context.forward(record.with_value(f"deleted {text} @{where.offset}"))
            return
        count = self.store.get(record.key)
        n = 1 if count is None else count + 1
        self.store.put(record.key, n)
        value = f"{record.value}|{n}|{where.topic}@{where.offset}"
        self.context.forward(record.with_value(value).with_timestamp(record.timestamp + n))

    def stream_time(self, timestamp: int) -> None:
        text = f"st@{timestamp}" + "".join(f" {k}={v}" for k, v in self.store.all())
        self.context.forward(self._record("stream-time", text, timestamp))

    def wall_clock(self, timestamp: int) -> None:
        gone = [key for key, count in self.store.range("a", "z") if count >= 2]
        for key in gone:
            self.store.delete(key)
        stream_time = self.context.current_stream_time_ms()
        text = f"wc@{timestamp} st={stream_time} " + ",".join(gone)
        self.context.forward(self._record("wall-clock", text, timestamp))

    def _record(self, key: str, value: str, timestamp: int) -> Any:
        # The app the conformance suite builds from specs/processor.toml (a user's module
        # would import its app's Record at the top).
        from conformance_processor.processors import Record

        return Record(key, value, timestamp)

    def close(self) -> None:
        pass
