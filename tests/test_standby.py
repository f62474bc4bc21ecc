"""Where standby copies go (the generated standby module's `choose`): the same placement on
every instance, never the owner, N copies per partition when there are enough members."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from conftest import BuildApp

SPEC = """
app = "standbys"
[topics.in]
partitions = 4
[topics.out]
value = "long"
[stores.memory-counts]
type = "memory"
[[streams]]
name = "s"
from = "in"
steps = [
  { group_by_key = true },
  { count = true, store = "counts" },
  { to_stream = true },
  { to = "out" },
]
[[streams]]
name = "t"
from = "in"
steps = [
  { group_by_key = true },
  { count = true, store = "memory-counts" },
  { to_stream = true },
  { to = "out" },
]
"""


@pytest.fixture(scope="module")
def standby(build_app: BuildApp) -> Any:
    return build_app(SPEC, "standbys").module("standby")


def members(*owned: tuple[str, tuple[int, ...]]) -> list[Any]:
    return [(client, frozenset(("in", p) for p in parts)) for client, parts in owned]


@pytest.mark.parametrize("count", [1, 2])
def test_each_partition_gets_count_copies_never_on_its_owner(standby: Any, count: int) -> None:
    group = members(("c", (0,)), ("a", (1, 2)), ("b", (3,)))
    placed = {me: standby.choose(group, me, count) for me in ("a", "b", "c")}
    copies = Counter(p for mine in placed.values() for _, p in mine)
    assert copies == dict.fromkeys(range(4), count)
    for me, parts in (("a", (1, 2)), ("b", (3,)), ("c", (0,))):
        assert {p for _, p in placed[me]}.isdisjoint(parts)
    # Only the RocksDB store is copied; the memory one restores in full anyway.
    assert {name for mine in placed.values() for name, _ in mine} == {"counts"}


def test_placement_is_the_same_on_every_instance_and_spreads(standby: Any) -> None:
    group = members(("a", (0, 1)), ("b", (2, 3)), ("c", ()))
    assert standby.choose(group, "c", 1) == standby.choose(list(reversed(group)), "c", 1)
    # Partitions 0 and 1 of 'a' go to different members ('b', 'c'), rotated by the partition.
    assert {p for _, p in standby.choose(group, "b", 1)} & {0, 1}
    assert {p for _, p in standby.choose(group, "c", 1)} & {0, 1}


def test_a_lone_instance_keeps_no_copies(standby: Any) -> None:
    assert standby.choose(members(("a", (0, 1, 2, 3))), "a", 1) == set()
