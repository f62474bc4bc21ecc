"""Semantic checks over a whole spec: references, names, cycles, expressions, test cases.

Every check appends a located SpecError and goes on, so the user sees all problems at once; a
mistake that another check already reports (a misspelled stream name also leaves the stream it
meant unread) is reported once.
"""

from __future__ import annotations

from kgen.spec.checks.base import Checks
from kgen.spec.checks.settings import check_app, check_topics
from kgen.spec.checks.steps import check_streams, check_tables
from kgen.spec.checks.testcases import check_tests
from kgen.spec.checks.topology import check_graph, check_internal_topics, check_stores
from kgen.spec.errors import SpecError
from kgen.spec.locator import Locator
from kgen.spec.models import Spec

__all__ = ["check"]


def check(spec: Spec, where: Locator) -> list[SpecError]:
    """Every semantic problem of `spec` (errors and warnings), located through `where`."""
    c = Checks(spec, where)
    check_app(c)
    check_topics(c)
    check_streams(c)
    check_tables(c)
    check_stores(c)
    check_graph(c)
    check_tests(c)
    if not any(not p.warning for p in c.problems):
        # The graph is only built from a spec without other errors.
        check_internal_topics(c)
    return c.problems
