"""The benchmark's workloads written with Quix Streams, as its users write apps.

Runs in the Quix venv of bench/quix.py (imports quixstreams and the standard library only):

    python bench/quix_app.py --workload filter|transform|count|windowed-count --bootstrap HOST:PORT
        --input TOPIC --output TOPIC --app-id ID --state-dir DIR
        [--commit-interval-ms N] [--stop-when-idle SECONDS]

Input: JSON values (~200 bytes), keys "user-NNNNN" (UTF-8). Exactly-once, from the earliest
offset, Quix's default commit interval (5 s) unless --commit-interval-ms is given.

- filter: records whose kind is "keep", same key, the value re-serialized by Quix's JSON
  serializer (orjson: compact, so byte-identical to the input's compact JSON).
- transform: key = value's country (string), value = compact JSON
  {"id","user","country","amount_cents","fee_cents"} in that order.
- count: group_by("user") (a repartition topic), a stateful count per user in Quix's state
  (RocksDB, with a changelog topic), each update written with key = user (string) and value =
  the count as an 8-byte big-endian signed long.
- windowed-count: the value's `ts` as the record's time (a timestamp extractor), a 1-minute
  tumbling window without grace per message key (the user: no group_by), `.count().current()`
  (every update), each written with Kafka Streams' windowed key layout (the key's bytes, then
  the window start as 8 bytes big-endian) and the count as an 8-byte big-endian signed long.

Stops by itself (exit 0) after --stop-when-idle seconds without a processed message (input
or repartition), timed from launch until the first one (so it must exceed the start-up: group
join, state recovery), or on SIGTERM/SIGINT; then prints `processed N records` (input records)
on stdout, and on stderr the time from the first to the last message processed.
"""

from __future__ import annotations

import argparse
import signal
import struct
import sys
import threading
import time
from typing import Any

# Set by a SIGTERM/SIGINT before app.run() has installed Quix's own handlers (importing
# quixstreams alone takes ~0.6 s): then the app does not start, or stops as soon as it runs.
_TERM = threading.Event()


def _early_stop(*_: Any) -> None:
    _TERM.set()


signal.signal(signal.SIGTERM, _early_stop)
signal.signal(signal.SIGINT, _early_stop)

from quixstreams import Application, State  # noqa: E402 - after the signal handlers
from quixstreams.models import Serializer  # noqa: E402

_LONG = struct.Struct(">q")
WORKLOADS = ("filter", "transform", "count", "windowed-count")
WINDOW_MS = 60_000


class LongSerializer(Serializer):
    """An int as 8 bytes, big-endian, signed: what Kafka's LongSerializer writes (Quix's own
    IntegerSerializer writes 4)."""

    def __call__(self, value: int, ctx: Any) -> bytes:
        return _LONG.pack(value)


def keep(value: dict[str, Any]) -> bool:
    kind: str = value["kind"]
    return kind == "keep"


def transform(value: dict[str, Any]) -> dict[str, Any]:
    cents = round(value["amount"] * 100)
    return {
        "id": value["id"],
        "user": value["user"],
        "country": value["country"],
        "amount_cents": cents,
        "fee_cents": cents * 3 // 100,
    }


def country(value: dict[str, Any]) -> str:
    name: str = value["country"]
    return name


def count(_value: dict[str, Any], state: State[str, int]) -> int:
    n: int = state.get("count", 0) + 1
    state.set("count", n)
    return n


class CountSerializer(Serializer):
    """The count of a (windowed key, count) pair, as LongSerializer writes it."""

    def __call__(self, value: tuple[bytes, int], ctx: Any) -> bytes:
        return _LONG.pack(value[1])


def event_time(value: dict[str, Any], _headers: Any, _timestamp: int, _type: Any) -> int:
    ts: int = value["ts"]
    return ts


def windowed(window: dict[str, Any], key: bytes, _ts: int, _headers: Any) -> tuple[bytes, int]:
    """A window's update as (Kafka Streams' windowed key, count)."""
    start: int = window["start"]
    return key + start.to_bytes(8, "big", signed=True), window["value"]


def windowed_key(pair: tuple[bytes, int]) -> bytes:
    return pair[0]


def build(app: Application, workload: str, input_name: str, output_name: str) -> None:
    """The StreamingDataFrame of `workload`, registered on `app`."""
    extractor = event_time if workload == "windowed-count" else None
    source = app.topic(
        input_name,
        key_deserializer="bytes",
        value_deserializer="json",
        timestamp_extractor=extractor,
    )
    sdf = app.dataframe(source)
    if workload == "filter":
        out = app.topic(output_name, key_serializer="bytes", value_serializer="json")
        sdf = sdf.filter(keep)
        sdf.to_topic(out)
    elif workload == "transform":
        out = app.topic(output_name, key_serializer="str", value_serializer="json")
        sdf = sdf.apply(transform)
        sdf.to_topic(out, key=country)
    elif workload == "count":
        out = app.topic(output_name, key_serializer="str", value_serializer=LongSerializer())
        # Re-keys by value["user"] through a repartition topic (JSON keys by default).
        sdf = sdf.group_by("user")
        sdf = sdf.apply(count, stateful=True)
        sdf.to_topic(out)
    elif workload == "windowed-count":
        out = app.topic(output_name, key_serializer="bytes", value_serializer=CountSerializer())
        # Windows are per message key: the input's key is already the value's user.
        sdf = sdf.tumbling_window(WINDOW_MS, grace_ms=0).count().current()
        sdf = sdf.apply(windowed, metadata=True)
        sdf.to_topic(out, key=windowed_key)
    else:
        raise ValueError(f"unknown workload {workload!r}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workload", required=True, choices=WORKLOADS)
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--input", required=True)
    parser.add_argument("--output", required=True)
    parser.add_argument("--app-id", required=True)
    parser.add_argument("--state-dir", required=True)
    parser.add_argument("--commit-interval-ms", type=int, default=None)
    parser.add_argument("--stop-when-idle", type=float, default=None)
    args = parser.parse_args(argv)

    term = _TERM
    done = threading.Event()  # app.run() has returned

    seen = [0, 0]  # input records, all messages (input and repartition)
    times = [0.0, 0.0]  # monotonic time of the first and the last message processed

    def on_processed(topic: str, _partition: int, _offset: int) -> None:
        seen[1] += 1
        times[1] = time.monotonic()
        if not times[0]:
            times[0] = times[1]
        if topic == args.input:
            seen[0] += 1

    options: dict[str, Any] = {}
    if args.commit_interval_ms is not None:
        options["commit_interval"] = args.commit_interval_ms / 1000
    app = Application(
        broker_address=args.bootstrap,
        consumer_group=args.app_id,
        processing_guarantee="exactly-once",
        auto_offset_reset="earliest",
        state_dir=args.state_dir,
        on_message_processed=on_processed,
        **options,
    )
    build(app, args.workload, args.input, args.output)

    threading.Thread(
        target=_watch, args=(app, seen, args.stop_when_idle, term, done), daemon=True
    ).start()
    try:
        if not term.is_set():
            app.run()
    finally:
        done.set()
    busy = times[1] - times[0]
    rate = f", {seen[0] / busy:,.0f}/s" if busy > 0 else ""
    print(f"first to last message: {busy:.2f} s{rate}", file=sys.stderr, flush=True)
    print(f"processed {seen[0]} records", flush=True)
    return 0


def _watch(
    app: Application,
    seen: list[int],
    idle_s: float | None,
    term: threading.Event,
    done: threading.Event,
) -> None:
    """Stop `app` once no message was processed for `idle_s` seconds, or on an early SIGTERM
    (Application.stop() is meant for this: it ends the poll loop, which then commits the
    last checkpoint)."""
    last, since = -1, time.monotonic()
    tick = 0.2 if idle_s is None else min(0.2, idle_s / 4)
    while not done.wait(tick):
        if term.is_set():
            break
        now = time.monotonic()
        if seen[1] != last:
            last, since = seen[1], now
        elif idle_s is not None and now - since >= idle_s:
            print(f"idle for {idle_s:g} s: stopping", file=sys.stderr, flush=True)
            break
    # Again until run() has returned: a stop() before run() has started is reset by it.
    while not done.is_set():
        app.stop()
        done.wait(0.5)


if __name__ == "__main__":
    sys.exit(main())
