"""Semantic checks over a whole spec: references, names, cycles, expressions, imports, test cases.

Every check appends a located SpecError and goes on, so the user sees all problems at once; a
mistake that another check already reports (a misspelled stream name also leaves the stream it
meant unread) is reported once. So is a part of the document that did not validate: the checks
see the spec without it and skip what depends on it (see kgen.spec.parts).
"""

from __future__ import annotations

from collections.abc import Sequence

from kgen.spec.checks.base import Checks
from kgen.spec.checks.connectors import check_connectors, check_mirrors
from kgen.spec.checks.imports import check_imports
from kgen.spec.checks.settings import check_app, check_topics
from kgen.spec.checks.steps import check_global_tables, check_step, check_streams, check_tables
from kgen.spec.checks.testcases import check_tests
from kgen.spec.checks.topology import (
    check_copartitioning,
    check_graph,
    check_internal_topics,
    check_stores,
)
from kgen.spec.errors import SpecError
from kgen.spec.locator import Locator
from kgen.spec.models import Spec
from kgen.spec.modules import ModuleLookup
from kgen.spec.parts import Damage, Leftover

__all__ = ["check"]


def check(
    spec: Spec,
    where: Locator,
    *,
    damage: Damage | None = None,
    leftovers: Sequence[Leftover] = (),
    look_up_modules: bool = True,
) -> list[SpecError]:
    """Every semantic problem of `spec` (errors and warnings), located through `where`.

    `spec` may be what validated of a document (`damage` says what did not); `leftovers` are
    what can still be checked of its streams and tables that did not. With
    `look_up_modules` false, the modules of imports and function references are not looked up.
    """
    damage = damage or Damage()
    lookup = ModuleLookup() if look_up_modules else None
    c = Checks(spec, where.reindexed(damage.indexes), damage, lookup)
    check_app(c)
    check_imports(c)
    check_topics(c)
    check_streams(c)
    check_tables(c)
    check_global_tables(c)
    check_stores(c)
    check_graph(c)
    check_tests(c)
    check_connectors(c)
    check_mirrors(c)
    # Leftovers are located in the file as it is, not in the spec without them.
    left = Checks(spec, where, damage, lookup)
    for leftover in leftovers:
        for loc, topic in leftover.topics:
            left.topic_ref(loc, topic)
        for loc, step in leftover.steps:
            check_step(left, loc, step)
    c.problems += left.problems
    if not damage.parts and not any(not p.warning for p in c.problems):
        # The graph is only built from a spec without other errors.
        check_internal_topics(c)
        check_copartitioning(c)
    return c.problems
