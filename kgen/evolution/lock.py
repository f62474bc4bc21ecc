"""The lock: what carries state from one deployment of an app to the next, written beside the
generated app as `kgen.lock` (TOML) and committed with it.

It holds the application id and consumer group, the source topics (formats, partition counts),
the stores (kind, formats, windows, changelog) and the internal topics (repartition,
subscription, changelog). `kgen build` compares a changed spec's lock with the committed one
(kgen.evolution.compare). Made from the AppPlan only; written in a fixed order, so the same
spec always gives the same bytes.
"""

from __future__ import annotations

import json
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kgen.plan.models import AppPlan, StateOrigin
from kgen.spec.errors import Loc, format_path

FILE = "kgen.lock"
VERSION = 1


class LockError(Exception):
    """A lock file that cannot be read: the user is told to restore it or delete it."""


@dataclass(frozen=True)
class Origin:
    """Where a store or internal topic comes from in the spec (see kgen.plan.origins)."""

    # The [[streams]], [[tables]] or [[global_tables]] entry's name.
    defined_in: str = ""
    # The entry's or step's path, e.g. 'streams[0].steps[2]'.
    defined_at: str = ""
    # The line that keeps the name, e.g. 'store = "word-counts"'.
    keep: str = ""

    @property
    def loc(self) -> Loc:
        return parse_path(self.defined_at)


@dataclass(frozen=True)
class SourceLock:
    topic: str
    key: str
    value: str
    # The spec's, when it gives one.
    partitions: int | None


@dataclass(frozen=True)
class StoreLock:
    name: str
    kind: str
    type: str
    key: str
    value: str
    changelog: str
    # A windowed store's windows: "time", "sliding" or "session", and their size (ms).
    window: str | None
    window_size_ms: int | None
    origin: Origin


@dataclass(frozen=True)
class TopicLock:
    name: str
    kind: str  # "repartition" | "subscription" | "subscription-response" | "changelog"
    # Fixed by the spec, else as many as the most of `partitions_from` has.
    partitions: int | None
    partitions_from: tuple[str, ...]
    # A changelog's store.
    store: str | None
    origin: Origin


@dataclass(frozen=True)
class ResetRecord:
    """A change that loses state, accepted with `kgen build --accept-reset WHAT`."""

    accepted: str
    change: str
    spec_sha256: str


@dataclass(frozen=True)
class Lock:
    spec: str
    application_id: str
    consumer_group: str
    sources: tuple[SourceLock, ...]
    stores: tuple[StoreLock, ...]
    internal_topics: tuple[TopicLock, ...]
    resets: tuple[ResetRecord, ...] = ()

    def store(self, name: str) -> StoreLock | None:
        return next((s for s in self.stores if s.name == name), None)

    def topic(self, name: str) -> TopicLock | None:
        return next((t for t in self.internal_topics if t.name == name), None)

    def source(self, name: str) -> SourceLock | None:
        return next((s for s in self.sources if s.topic == name), None)


_PATH_PART = re.compile(r"([A-Za-z0-9_-]+)|\[(\d+)\]|\.")


def parse_path(text: str) -> Loc:
    """'streams[0].steps[2]' -> ('streams', 0, 'steps', 2); the inverse of format_path for the
    paths of entries and steps."""
    out: list[str | int] = []
    for m in _PATH_PART.finditer(text):
        if m.group(1):
            out.append(m.group(1))
        elif m.group(2):
            out.append(int(m.group(2)))
    return tuple(out)


def _origin(origin: StateOrigin | None) -> Origin:
    if origin is None:
        return Origin()
    return Origin(origin.entry, format_path(origin.loc), origin.keep)


def _topic_kind(name: str, kind: str) -> str:
    if name.endswith("-subscription-registration-topic"):
        return "subscription"
    if name.endswith("-subscription-response-topic"):
        return "subscription-response"
    return kind


def from_plan(plan: AppPlan, resets: tuple[ResetRecord, ...] = ()) -> Lock:
    """The lock of a plan, with the resets accepted so far."""
    origins = {o.name: o for o in plan.state_origins}
    formats = {t.name: t for t in plan.topics}
    sources = tuple(
        SourceLock(t, formats[t].key_format, formats[t].value_format, formats[t].partitions)
        for t in sorted({*plan.source_topics, *plan.global_topics})
    )
    stores = tuple(
        StoreLock(
            name=s.name,
            kind=s.kind,
            type=s.type,
            key=s.key_format,
            value=s.value_format,
            changelog=s.changelog_topic,
            window=s.window.kind if s.window is not None else None,
            window_size_ms=s.window.span_ms if s.window is not None else None,
            origin=_origin(origins.get(s.name)),
        )
        for s in sorted(plan.stores, key=lambda s: s.name)
    )
    stores += tuple(
        StoreLock(
            name=g.store,
            kind="global_table",
            type=g.type,
            key=g.key_format,
            value=g.value_format,
            changelog=g.topic,
            window=None,
            window_size_ms=None,
            origin=_origin(origins.get(g.store)),
        )
        for g in plan.global_tables
    )
    changelogs = {s.changelog_topic: s.name for s in plan.stores}
    topics = tuple(
        TopicLock(
            name=t.name,
            kind=_topic_kind(t.name, t.kind),
            partitions=t.partitions,
            partitions_from=t.partitions_from,
            store=changelogs.get(t.name),
            origin=_origin(origins.get(changelogs.get(t.name, t.name))),
        )
        for t in sorted(plan.internal_topics, key=lambda t: t.name)
    )
    return Lock(
        spec=plan.spec_path,
        application_id=plan.app_id,
        # The generated app's group.id is its application id, as in Kafka Streams.
        consumer_group=plan.app_id,
        sources=sources,
        stores=tuple(sorted(stores, key=lambda s: s.name)),
        internal_topics=topics,
        resets=resets,
    )


def _value(value: object) -> str:
    if isinstance(value, str):
        if '"' in value and "'" not in value and value.isprintable():
            return f"'{value}'"  # a TOML literal string: 'store = "counts"'
        return json.dumps(value, ensure_ascii=False)  # a TOML basic string
    if isinstance(value, (tuple, list)):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    return str(value)


def _table(header: str, fields: list[tuple[str, object]]) -> list[str]:
    lines = ["", header]
    lines += [f"{key} = {_value(v)}" for key, v in fields if v is not None and v != ""]
    return lines


def _origin_fields(origin: Origin) -> list[tuple[str, object]]:
    return [
        ("defined_in", origin.defined_in),
        ("defined_at", origin.defined_at),
        ("keep", origin.keep),
    ]


def dumps(lock: Lock) -> str:
    """The lock as TOML, every table in name order."""
    lines = [
        f"# kgen.lock of {lock.application_id}: what carries state from one deployment to the "
        "next.",
        "# Written by `kgen build`; commit it with the app. The next build compares the spec "
        "with it",
        "# and refuses a change that would lose or scatter state, unless it is accepted with",
        "# `kgen build --accept-reset WHAT` (then reset the app: `python -m <app> reset`).",
        f"version = {VERSION}",
        f"spec = {_value(lock.spec)}",
        f"application_id = {_value(lock.application_id)}",
        f"consumer_group = {_value(lock.consumer_group)}",
    ]
    for s in lock.sources:
        lines += _table(
            f"[sources.{_value(s.topic)}]",
            [("key", s.key), ("value", s.value), ("partitions", s.partitions)],
        )
    for st in lock.stores:
        lines += _table(
            f"[stores.{_value(st.name)}]",
            [
                ("kind", st.kind),
                ("type", st.type),
                ("key", st.key),
                ("value", st.value),
                ("changelog", st.changelog),
                ("window", st.window),
                ("window_size_ms", st.window_size_ms),
                *_origin_fields(st.origin),
            ],
        )
    for t in lock.internal_topics:
        lines += _table(
            f"[internal_topics.{_value(t.name)}]",
            [
                ("kind", t.kind),
                ("partitions", t.partitions),
                ("partitions_from", None if t.partitions is not None else t.partitions_from),
                ("store", t.store),
                *_origin_fields(t.origin),
            ],
        )
    for r in lock.resets:
        lines += _table(
            "[[resets]]",
            [("accepted", r.accepted), ("change", r.change), ("spec_sha256", r.spec_sha256)],
        )
    return "\n".join(lines) + "\n"


def _str(data: dict[str, Any], key: str, default: str | None = None) -> str:
    value = data.get(key, default)
    if not isinstance(value, str):
        raise LockError(f"{key!r} is missing or not a string")
    return value


def _int(data: dict[str, Any], key: str) -> int | None:
    value = data.get(key)
    if value is not None and not isinstance(value, int):
        raise LockError(f"{key!r} is not an integer")
    return value


def _origin_of(data: dict[str, Any]) -> Origin:
    return Origin(
        _str(data, "defined_in", ""), _str(data, "defined_at", ""), _str(data, "keep", "")
    )


def _tables(data: dict[str, Any], key: str) -> dict[str, dict[str, Any]]:
    value = data.get(key, {})
    if not isinstance(value, dict) or not all(isinstance(v, dict) for v in value.values()):
        raise LockError(f"{key!r} is not a table of tables")
    return value


def loads(text: str) -> Lock:
    """A lock read back; LockError when it is not one kgen wrote."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise LockError(f"not TOML: {exc}") from None
    if data.get("version") != VERSION:
        raise LockError(f"version {data.get('version')!r}; this kgen reads version {VERSION}")
    try:
        sources = tuple(
            SourceLock(name, _str(s, "key"), _str(s, "value"), _int(s, "partitions"))
            for name, s in _tables(data, "sources").items()
        )
        stores = tuple(
            StoreLock(
                name=name,
                kind=_str(s, "kind"),
                type=_str(s, "type"),
                key=_str(s, "key"),
                value=_str(s, "value"),
                changelog=_str(s, "changelog"),
                window=s.get("window"),
                window_size_ms=_int(s, "window_size_ms"),
                origin=_origin_of(s),
            )
            for name, s in _tables(data, "stores").items()
        )
        topics = tuple(
            TopicLock(
                name=name,
                kind=_str(t, "kind"),
                partitions=_int(t, "partitions"),
                partitions_from=tuple(t.get("partitions_from", ())),
                store=t.get("store"),
                origin=_origin_of(t),
            )
            for name, t in _tables(data, "internal_topics").items()
        )
        resets = tuple(
            ResetRecord(_str(r, "accepted"), _str(r, "change"), _str(r, "spec_sha256", ""))
            for r in data.get("resets", [])
        )
        return Lock(
            spec=_str(data, "spec"),
            application_id=_str(data, "application_id"),
            consumer_group=_str(data, "consumer_group"),
            sources=sources,
            stores=stores,
            internal_topics=topics,
            resets=resets,
        )
    except (TypeError, AttributeError) as exc:
        raise LockError(f"unexpected content: {exc}") from None


def read(path: Path) -> Lock | None:
    """The lock at `path`, or None when there is none."""
    if not path.is_file():
        return None
    try:
        return loads(path.read_text("utf-8"))
    except (LockError, UnicodeDecodeError) as exc:
        raise LockError(f"{path}: {exc}") from None
