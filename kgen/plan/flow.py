"""What flows between steps: a stream, a grouped stream, a table or a grouped table.

Kafka Streams types these (KStream, KGroupedStream, KTable, KGroupedTable); a spec's steps are a
flat list, so the kind before each step is computed here, for the checks and the graph alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from kgen.spec import (
    Aggregate,
    BranchStep,
    Count,
    Filter,
    FilterNot,
    GroupBy,
    GroupByKey,
    Hopping,
    Join,
    MapValues,
    Reduce,
    Session,
    Sliding,
    StepBase,
    Suppress,
    To,
    ToStream,
    Tumbling,
)

Flow = Literal[
    "stream", "grouped", "table", "grouped_table", "windowed", "windowed_table", "joined_table"
]
AGGREGATIONS = (Count, Reduce, Aggregate)
WINDOWS = (Tumbling, Hopping, Sliding, Session)
# What each kind of flow may go on with, for error messages.
ALLOWED: dict[Flow, str] = {
    "stream": "any stream step, join, group_by_key or group_by",
    "grouped": "count, reduce, aggregate, or a window (tumbling, hopping, sliding, session)",
    "table": "filter, filter_not, map_values, group_by, suppress, to_stream or to",
    "grouped_table": "count, reduce or aggregate (with subtract)",
    "windowed": "count, reduce or aggregate",
    "windowed_table": "suppress, to_stream or to",
    "joined_table": "to_stream or to",
}


def step_allowed(flow: Flow, step: StepBase) -> bool:
    if flow == "stream":
        return not isinstance(step, (*AGGREGATIONS, *WINDOWS, Suppress, ToStream))
    if flow == "grouped":
        return isinstance(step, (*AGGREGATIONS, *WINDOWS))
    if flow in ("grouped_table", "windowed"):
        return isinstance(step, AGGREGATIONS)
    if flow == "windowed_table":
        return isinstance(step, (Suppress, ToStream, To))
    if flow == "joined_table":
        return isinstance(step, (ToStream, To))
    return isinstance(step, (Filter, FilterNot, MapValues, GroupBy, Suppress, Join, ToStream, To))


def after(flow: Flow, step: StepBase) -> Flow:
    """The flow after `step` (assumed allowed)."""
    if isinstance(step, (GroupBy, GroupByKey)):
        return "grouped_table" if flow == "table" else "grouped"
    if isinstance(step, WINDOWS):
        return "windowed"
    if isinstance(step, AGGREGATIONS):
        return "windowed_table" if flow == "windowed" else "table"
    if isinstance(step, ToStream):
        return "stream"
    if isinstance(step, Join) and flow == "table":
        return "joined_table"
    return flow


def flows(start: Flow, steps: Sequence[StepBase]) -> list[Flow]:
    """The flow before each step, then the flow at the end; a step that is not allowed leaves
    the flow as it was (the checks report it)."""
    out = [start]
    for step in steps:
        flow = out[-1]
        out.append(after(flow, step) if step_allowed(flow, step) else flow)
    return out


def is_terminal(step: object) -> bool:
    return isinstance(step, (To, BranchStep))
