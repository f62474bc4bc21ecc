"""The resolved plan: every decision about a generated app, made in Python.

Templates receive one `AppPlan` and only print it. Everything here is immutable and ordered
deterministically, so the same spec always renders the same bytes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class TopicPlan:
    name: str
    key_format: str
    value_format: str
    # Set when the app creates the topic at start if it is missing.
    partitions: int | None
    replication_factor: int | None
    config: tuple[tuple[str, str], ...]
    is_source: bool
    is_sink: bool
    is_dead_letter: bool


@dataclass(frozen=True)
class FunctionImport:
    module: str
    function: str
    alias: str


@dataclass(frozen=True)
class Processor:
    """One node of the topology, for `describe` and the pictures."""

    name: str
    kind: str
    detail: str
    topics: tuple[str, ...]
    successors: tuple[str, ...]


@dataclass(frozen=True)
class SubTopology:
    index: int
    processors: tuple[Processor, ...]


@dataclass(frozen=True)
class SourceBlock:
    """Fused code for the records of some source topics: lines, indented relative to 0."""

    topics: tuple[str, ...]
    lines: tuple[str, ...]


@dataclass(frozen=True)
class RecordPlan:
    topic: str
    key: Any
    value: Any
    timestamp: int | None
    headers: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class TestCasePlan:
    name: str
    function_name: str
    inputs: tuple[RecordPlan, ...]
    # Expected records per topic, topics sorted; every sink topic appears (maybe empty).
    expected: tuple[tuple[str, tuple[RecordPlan, ...]], ...]


@dataclass(frozen=True)
class AppPlan:
    app_id: str
    package: str
    description: str
    guarantee: str
    commit_interval_ms: int
    on_error: str
    dead_letter_topic: str | None
    topics: tuple[TopicPlan, ...]
    source_topics: tuple[str, ...]
    sink_topics: tuple[str, ...]
    formats: tuple[str, ...]
    serde_imports: tuple[str, ...]
    module_imports: tuple[str, ...]
    function_imports: tuple[FunctionImport, ...]
    blocks: tuple[SourceBlock, ...]
    # Some `to` chooses its topic per record (the code raises UnknownTopicError).
    dynamic_routing: bool
    # Source topics whose code decodes a record before anything else: a malformed record
    # there always fails, which the generated tests use to exercise the error policy.
    malformed_sources: tuple[str, ...]
    subtopologies: tuple[SubTopology, ...]
    tests: tuple[TestCasePlan, ...]
    kgen_version: str
    spec_path: str
    spec_sha256: str
