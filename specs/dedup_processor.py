"""The processor of specs/dedup.toml: drops an event whose id (its key) was seen less than ten
minutes (of event time) before, and forgets ids older than that once a minute.

The app imports this module, so it must be importable where the app runs (this repository's
tests put specs/ on the path; see the spec's runtime_only_modules)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the generated app's types: mypy --strict checks this class against them
    from dedup.processors import KeyValueStore, ProcessorContext, Record

WINDOW_MS = 10 * 60 * 1000


class Deduplicate:
    def init(self, context: ProcessorContext) -> None:
        self.context = context
        # id -> the event time it was first seen at.
        self.seen: KeyValueStore = context.store("seen-ids")
        context.schedule(60_000, "wall_clock", self.forget)

    def process(self, record: Record) -> None:
        if record.key is None:
            self.context.forward(record)  # no id: nothing to deduplicate by
            return
        first = self.seen.get(record.key)
        if first is not None and record.timestamp - first < WINDOW_MS:
            return  # a duplicate
        self.seen.put(record.key, record.timestamp)
        self.context.forward(record)

    def forget(self, now: int) -> None:
        """Ids seen more than the window before the latest event time can come again."""
        horizon = self.context.current_stream_time_ms() - WINDOW_MS
        old = [key for key, first in self.seen.all() if first < horizon]
        for key in old:
            self.seen.delete(key)

    def close(self) -> None:
        pass
