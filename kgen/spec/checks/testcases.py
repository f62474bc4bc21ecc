"""The spec's [[tests]]: records go to topics the app reads, expected ones come from topics it
writes, and every key and value fits its topic's format."""

from __future__ import annotations

import math
import re
from typing import Any

from kgen.spec.checks.base import Checks, did_you_mean, entries, listing, written_topics
from kgen.spec.errors import Loc


def check_tests(c: Checks) -> None:
    declared = set(c.spec.topics)
    sources = {t for _, s in entries(c.spec) for t in s.from_topics}
    sources |= {g.from_ for g in c.spec.global_tables}
    stores = c.store_writers()
    # A stream reading an undeclared topic is already reported; a test feeding the topic
    # it probably meant is not a second mistake.
    broken_source = bool(sources - declared)
    written = written_topics(c.spec)
    for n, case in enumerate(c.spec.tests):
        for r, record in enumerate(case.input):
            loc: Loc = ("tests", n, "input", r)
            if record.topic in sources and record.topic not in declared:
                continue  # the stream reading it reports the undeclared topic
            if record.topic not in sources:
                if (record.topic in declared and broken_source) or c.damage.mentions(record.topic):
                    continue
                read = sorted(sources & declared)
                c.error(
                    (*loc, "topic"),
                    f"test input goes to {record.topic!r}, but no stream reads it "
                    f"(source topics: {listing(read)})",
                    did_you_mean(record.topic, read)
                    or "input records go to source topics; list what the app writes under expect",
                )
                continue
            check_record(c, loc, record.topic, record.key, record.value, expect=False)
            if record.timestamp is not None and record.timestamp < 0:
                c.error(
                    (*loc, "timestamp"),
                    "timestamps are >= 0 (Kafka treats negative ones as invalid)",
                )
        for r, record in enumerate(case.expect):
            loc = ("tests", n, "expect", r)
            if record.topic not in declared:
                c.topic_ref((*loc, "topic"), record.topic)
                continue
            if record.topic not in written and not _maybe_written(c, record.topic):
                c.error(
                    (*loc, "topic"),
                    f"the app never writes to {record.topic!r}, so this record cannot arrive",
                    f"the app writes to: {listing(written)}",
                )
                continue
            check_record(c, loc, record.topic, record.key, record.value, expect=True)
        for name, content in case.stores.items():
            if name not in stores and not c.damage.mentions(name):
                c.error(
                    ("tests", n, "stores", name),
                    f"unknown store {name!r} (stores: {listing(list(stores))})",
                    did_you_mean(name, list(stores))
                    or "a test checks the stores its tables and aggregations name with "
                    "store = '...'",
                )
                continue
            for e, entry in enumerate(content):
                if isinstance(entry.key, (dict, list)) or entry.key is None:
                    c.error(
                        ("tests", n, "stores", name, e, "key"),
                        "a store key in a test is a string or a number",
                    )


def _maybe_written(c: Checks, topic: str) -> bool:
    """Whether a part of the spec that did not validate may write `topic`."""
    dead_letter = c.damage.broken("on_error") and topic == c.spec.dead_letter_topic
    return dead_letter or c.damage.mentions(topic)


def check_record(c: Checks, loc: Loc, topic: str, key: Any, value: Any, *, expect: bool) -> None:
    formats = c.spec.topics[topic]
    # Dead letters carry the raw bytes of the failed record, whatever the topic's format.
    dead_letter = expect and topic == c.spec.dead_letter_topic
    if expect and isinstance(key, dict) and set(key) == {"key", "start", "end"}:
        # A windowed result's key, {key, start, end}: the key itself has the topic's format.
        key = key["key"]
    for field, declared, data in (("key", formats.key, key), ("value", formats.value, value)):
        fmt = "bytes" if dead_letter else declared
        problem = _format_mismatch(fmt, data)
        if problem:
            c.error(
                (*loc, field),
                f"{_describe_value(data)} does not fit topic {topic!r}, whose {field} "
                f"format is {fmt!r}",
                problem,
            )


def _describe_value(value: Any) -> str:
    kinds = {
        str: "a string",
        bool: "a boolean",
        int: "an integer",
        float: "a float",
        dict: "a table",
        list: "an array",
    }
    kind = kinds.get(type(value), f"a {type(value).__name__}")
    text = repr(value)
    return f"{kind} ({text})" if len(text) < 40 else kind


def _json_mismatch(value: Any) -> str:
    """'' when `value` has a JSON form (as the json format writes it), else why not."""
    if isinstance(value, dict):
        return next((m for m in map(_json_mismatch, value.values()) if m), "")
    if isinstance(value, list):
        return next((m for m in map(_json_mismatch, value) if m), "")
    if isinstance(value, float) and not math.isfinite(value):
        return "nan and inf have no JSON form"
    if isinstance(value, (str, int, float, bool)):
        return ""
    return "dates and times have no JSON form: write them as strings"


def _format_mismatch(fmt: str, value: Any) -> str:
    """'' when `value` can be written in format `fmt`, else a hint how to write it."""
    if value is None:
        return ""
    if fmt == "json":
        return _json_mismatch(value)
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if fmt in ("string", "bytes"):
        if isinstance(value, str):
            return ""
        if fmt == "bytes":
            return "bytes are written as a UTF-8 string"
        return f'write it as a string: "{value}"' if number else "write it as a string"
    if fmt == "double":
        if number:
            return ""
        if isinstance(value, str) and re.fullmatch(r"-?\d+(\.\d+)?", value):
            return f"write it as a number, without quotes: {value}"
        return "write it as a number"
    bits = 32 if fmt == "int" else 64
    if isinstance(value, int) and not isinstance(value, bool):
        if -(2 ** (bits - 1)) <= value < 2 ** (bits - 1):
            return ""
        return f"an {fmt!r} is a {bits}-bit signed integer"
    if isinstance(value, str) and re.fullmatch(r"-?\d+", value):
        return f"write it as a number, without quotes: {value}"
    return "write it as a whole number"
