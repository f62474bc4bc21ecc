"""Two locks compared: what a spec change does to the state an app carries across deployments.

A change is unsafe when the new app would lose state or misread it: a store or internal topic
renamed or removed, a store's formats, kind or windows changed, a source topic's partition
count or formats changed, the application id changed. Each unsafe change names what to pass
to `kgen build --accept-reset` to go ahead anyway (`store:NAME`, `topic:NAME`, `source:NAME`,
`app`) and, where one field keeps the old name, that field's line.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from kgen.evolution.lock import Lock, Origin, SourceLock, StoreLock, TopicLock
from kgen.spec import Spec
from kgen.spec.errors import Loc, SpecError
from kgen.spec.locator import Locator

_SECTIONS = ("streams", "tables", "global_tables")


@dataclass(frozen=True)
class Change:
    # What --accept-reset takes for it: "store:NAME", "topic:NAME", "source:NAME" or "app".
    subject: str
    # What changed, and (unsafe changes) what it would break.
    message: str
    safe: bool
    # Where in the new spec: a path (the entry or step is found by name in the new spec when
    # `origin` is set, else `loc` is taken as is).
    loc: Loc = ()
    origin: Origin | None = None
    # The line that keeps the old name (renamed and removed stores and topics).
    keep: str = ""
    # Else the first way forward, in words.
    instead: str = ""
    # Where the change is, from the origin's step: -1 for a window (the step before).
    step_offset: int = 0


def _rename_key(origin: Origin) -> tuple[str, str]:
    return origin.defined_in, origin.defined_at


class _Entry(Protocol):
    @property
    def origin(self) -> Origin: ...


def _diff(
    before: Mapping[str, _Entry], after: Mapping[str, _Entry]
) -> tuple[list[str], list[str], dict[str, str]]:
    """The names only `before` has, those only `after` has, and the renames among them."""
    removed = [n for n in before if n not in after]
    added = [n for n in after if n not in before]
    old = {n: before[n].origin for n in removed}
    new = {n: after[n].origin for n in added}
    return removed, added, _pair(removed, added, old, new)


def _pair(
    removed: list[str], added: list[str], old: dict[str, Origin], new: dict[str, Origin]
) -> dict[str, str]:
    """Old names -> new names made by the same step: a rename. Matched by the entry's name and
    the step's place, then (a renamed entry) by the place alone."""
    pairs: dict[str, str] = {}
    free = list(added)
    for match in (_rename_key, lambda o: ("", o.defined_at)):
        for name in removed:
            if name in pairs or not old[name].defined_at:
                continue
            key = match(old[name])
            found = next((a for a in free if match(new[a]) == key), None)
            if found is not None:
                pairs[name] = found
                free.remove(found)
    return pairs


def _store_words(store: StoreLock) -> str:
    return f"store '{store.name}' ({store.kind}, changelog {store.changelog})"


def _stores(old: Lock, new: Lock) -> list[Change]:
    out: list[Change] = []
    before = {s.name: s for s in old.stores}
    after = {s.name: s for s in new.stores}
    removed, added, pairs = _diff(before, after)
    # A windowed aggregation's final-results buffer follows its store: reported with it.
    reported: set[str] = set()
    for name in removed:
        store = before[name]
        if store.kind == "global_table":
            out.append(Change(f"store:{name}", f"global store '{name}' is removed", True))
            continue
        if name in pairs:
            new_name = pairs[name]
            reported.add(new_name)
            out.append(
                Change(
                    f"store:{name}",
                    f"{_store_words(store)} is renamed to '{new_name}': its state would stay "
                    f"behind in {store.changelog} and '{new_name}' would start empty",
                    False,
                    origin=after[new_name].origin,
                    keep=store.origin.keep,
                )
            )
        else:
            out.append(
                Change(
                    f"store:{name}",
                    f"{_store_words(store)} is removed: its state would be lost (and a store "
                    "of that name added later would start from stale state)",
                    False,
                    origin=store.origin,
                    keep=store.origin.keep,
                )
            )
    for name in added:
        if name not in reported:
            out.append(Change(f"store:{name}", f"store '{name}' is new: it starts empty", True))
    for name in sorted(set(before) & set(after)):
        if before[name].kind == after[name].kind == "global_table":
            continue  # filled from its topic at every start: the topic's changes are the source's
        out += _store_changes(before[name], after[name])
    return [c for c in out if not _follows_parent(c, out)]


def _follows_parent(change: Change, changes: list[Change]) -> bool:
    """A '-final' buffer's change when its aggregation's store is reported already."""
    name = change.subject.removeprefix("store:")
    parent = f"store:{name.removesuffix('-final')}"
    return name.endswith("-final") and any(
        c.subject == parent and not c.safe for c in changes if c is not change
    )


def _store_changes(old: StoreLock, new: StoreLock) -> list[Change]:
    subject = f"store:{old.name}"
    out: list[Change] = []
    here = new.origin
    if old.kind != new.kind:
        return [
            Change(
                subject,
                f"store '{old.name}' was written by {_a(old.kind)}, now by {_a(new.kind)}: the "
                "new code would misread the state the old one left",
                False,
                origin=here,
                instead=f"keep {_a(old.kind)} here, and give the new step a store of its own",
            )
        ]
    windows_changed = (old.window, old.window_size_ms) != (new.window, new.window_size_ms)
    for what, a, b in (("keys", old.key, new.key), ("values", old.value, new.value)):
        # A windowed key's format names the window's size: reported as the windows' change.
        if a != b and not (windows_changed and what == "keys" and old.window and new.window):
            out.append(
                Change(
                    subject,
                    f"store '{old.name}' keeps its {what} as {b} now, as {a} before: the app "
                    f"could not read the state in {old.changelog}",
                    False,
                    origin=here,
                    instead=f"keep its {what} as {a}, or give this step a store of a new name "
                    "(and accept the old one's removal)",
                )
            )
    if windows_changed:
        out.append(
            Change(
                subject,
                f"store '{old.name}' has {_windows(new)} now, {_windows(old)} before: the "
                "windows stored would be misread",
                False,
                origin=here,
                instead=f"keep {_windows(old)}",
                step_offset=-1 if new.window is not None else 0,
            )
        )
    if old.type != new.type:
        out.append(
            Change(
                subject,
                f"store '{old.name}' moves from {old.type} to {new.type}: it is restored from "
                "its changelog",
                True,
            )
        )
    return out


def _a(kind: str) -> str:
    return f"an {kind}" if kind[:1] in "aeiou" else f"a {kind}"


def _windows(store: StoreLock) -> str:
    if store.window is None:
        return "no windows"
    return f"{store.window} windows of {store.window_size_ms} ms"


def _topics(old: Lock, new: Lock) -> list[Change]:
    """Internal topics but changelogs (a changelog follows its store)."""
    out: list[Change] = []
    before = {t.name: t for t in old.internal_topics if t.kind != "changelog"}
    after = {t.name: t for t in new.internal_topics if t.kind != "changelog"}
    removed, added, pairs = _diff(before, after)
    lost = "the records in flight in it would be lost"
    for name in removed:
        topic = before[name]
        if name in pairs:
            out.append(
                Change(
                    f"topic:{name}",
                    f"{topic.kind} topic {name} is renamed to {pairs[name]}: {lost}",
                    False,
                    origin=after[pairs[name]].origin,
                    keep=topic.origin.keep,
                )
            )
        else:
            out.append(
                Change(
                    f"topic:{name}",
                    f"{topic.kind} topic {name} is removed: {lost}",
                    False,
                    origin=topic.origin,
                    keep=topic.origin.keep,
                )
            )
    paired = set(pairs.values())
    for name in added:
        if name not in paired:
            out.append(Change(f"topic:{name}", f"{after[name].kind} topic {name} is new", True))
    for name in sorted(set(before) & set(after)):
        a, b = partitions(old, name), partitions(new, name)
        fixed = (before[name].partitions, after[name].partitions) != (None, None)
        # (Counts copied from a source that changed are reported with the source.)
        if a != b and fixed:
            out.append(_topic_partitions(before[name], after[name], a, b))
    return out


def partitions(found: Lock, topic: str, depth: int = 0) -> int | None:
    """A topic's partition count as far as the lock knows it: the spec's, or the most of the
    topics it copies (None: some are not the spec's to say)."""
    source = found.source(topic)
    if source is not None:
        return source.partitions
    internal = found.topic(topic)
    if internal is None or depth > 20:
        return None
    if internal.partitions is not None:
        return internal.partitions
    counts = [partitions(found, t, depth + 1) for t in internal.partitions_from]
    return None if not counts or None in counts else max(c for c in counts if c is not None)


def _count(n: int | None) -> str:
    return "an unknown number of" if n is None else str(n)


def _topic_partitions(old: TopicLock, new: TopicLock, a: int | None, b: int | None) -> Change:
    origin = new.origin
    loc = (*origin.loc, "partitions")
    return Change(
        f"topic:{old.name}",
        f"{old.kind} topic {old.name} has {_count(b)} partitions now, {_count(a)} "
        "before: the existing topic would not fit (the app stops at start), and records in "
        "flight would reach other partitions",
        False,
        loc=_relocated(origin, loc),
        origin=None,
        instead=f"keep {_count(a)} partitions"
        + (f": `partitions = {a}` in this step" if a is not None else ""),
    )


def _relocated(origin: Origin, loc: Loc) -> Loc:
    """A path by its origin's entry name; see `where`."""
    return (*origin.loc[:1], f"name:{origin.defined_in}", *loc[2:]) if origin.defined_in else loc


def _sources(old: Lock, new: Lock) -> list[Change]:
    out: list[Change] = []
    after = {s.topic: s for s in new.sources}
    for source in old.sources:
        now = after.get(source.topic)
        if now is None:
            out.append(
                Change(
                    f"source:{source.topic}",
                    f"source topic {source.topic} is no longer read (the group's committed "
                    "offsets of it stay)",
                    True,
                )
            )
            continue
        out += _source_changes(source, now)
    before = {s.topic for s in old.sources}
    for source in new.sources:
        if source.topic not in before:
            out.append(
                Change(
                    f"source:{source.topic}",
                    f"source topic {source.topic} is new: read from its earliest offset",
                    True,
                )
            )
    return out


def _source_changes(old: SourceLock, new: SourceLock) -> list[Change]:
    out: list[Change] = []
    subject = f"source:{old.topic}"
    for field, what, a, b in (
        ("key", "keys", old.key, new.key),
        ("value", "values", old.value, new.value),
    ):
        if a != b:
            out.append(
                Change(
                    subject,
                    f"source topic {old.topic} has {b} {what} now, {a} before: the records "
                    "already in it (and in the app's internal topics and stores) would not "
                    "decode",
                    False,
                    loc=("topics", old.topic, field),
                    instead=f'keep `{field} = "{a}"`, or read a new topic in the new format',
                )
            )
    if (
        old.partitions is not None
        and new.partitions is not None
        and old.partitions != new.partitions
    ):
        out.append(
            Change(
                subject,
                f"source topic {old.topic} has {new.partitions} partitions now, "
                f"{old.partitions} before: keys would move to other partitions, away from "
                "their state, and the committed offsets would not cover the new partitions",
                False,
                loc=("topics", old.topic, "partitions"),
                instead=f"keep `partitions = {old.partitions}`",
            )
        )
    return out


def changes(old: Lock, new: Lock) -> list[Change]:
    """Every change from `old` to `new`, safe ones too. A new application id changes every
    internal name with it: it is reported alone."""
    if old.application_id != new.application_id:
        return [
            Change(
                "app",
                f"the application id is {new.application_id!r} now, {old.application_id!r} "
                f"before: the new app would start as a new consumer group "
                f"({new.consumer_group}) with empty stores and new internal topics, and "
                "read its sources from the start",
                False,
                loc=("app",),
                keep=f"app = {old.application_id!r}".replace("'", '"'),
            )
        ]
    return [*_sources(old, new), *_stores(old, new), *_topics(old, new)]


def where(change: Change, spec: Spec) -> Loc:
    """The path in `spec` that a change is about: its origin's entry found by name (the entry
    may have moved), else by its old place."""
    loc = change.loc
    if change.origin is not None and change.origin.defined_at:
        loc = change.origin.loc
        if change.step_offset and len(loc) == 4 and isinstance(loc[3], int):
            loc = (*loc[:3], max(loc[3] + change.step_offset, 0))
        field = change.keep.split(" = ")[0] if change.keep else ""
        if field and field not in loc:
            loc = (*loc, field)
        loc = (*loc[:1], f"name:{change.origin.defined_in}", *loc[2:])
    if len(loc) >= 2 and isinstance(loc[1], str) and loc[1].startswith("name:"):
        section, name = str(loc[0]), loc[1].removeprefix("name:")
        names = {
            "streams": [e.name for e in spec.streams],
            "tables": [e.name for e in spec.tables],
            "global_tables": [e.name for e in spec.global_tables],
        }.get(section, [])
        index = names.index(name) if name in names else _old_index(change)
        loc = (section, index, *loc[2:])
    return loc


def _old_index(change: Change) -> int:
    if change.origin is not None and len(change.origin.loc) >= 2:
        index = change.origin.loc[1]
        if isinstance(index, int):
            return index
    return 0


def problems(
    found: list[Change], spec: Spec, where_: Locator, app_package: str, accepted: frozenset[str]
) -> list[SpecError]:
    """The unsafe changes not accepted, as located errors with the two ways forward."""
    out = []
    for change in found:
        if change.safe or change.subject in accepted:
            continue
        loc = where(change, spec)
        # Down to what is written, where the spec has it (a removed entry is not).
        while len(loc) > 1 and loc not in where_.positions:
            loc = loc[:-1]
        if change.keep and "steps" in loc:
            keep = f"keep the old name: write `{change.keep}` in this step"
        elif change.keep and (len(loc) >= 2 or change.origin is None):
            keep = f"keep the old name: write `{change.keep}` here"
        elif change.keep:
            keep = f"keep it: put back the step that makes it, with `{change.keep}`"
        else:
            keep = change.instead or "undo the change"
        hint = (
            f"{keep}; or accept losing the state: `kgen build --accept-reset {change.subject}`, "
            f"then stop every instance and run `python -m {app_package} reset --yes` before "
            "deploying"
        )
        out.append(where_.error(loc, change.message, hint))
    return out
