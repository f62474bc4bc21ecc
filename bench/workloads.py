"""Workloads: what the systems under test do to the same input topic."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.data import Expectation

SPECS = Path(__file__).resolve().parent / "specs"
INPUT_TOPIC = "bench-input"
INPUT_PARTITIONS = 6


@dataclass(frozen=True)
class Workload:
    name: str
    # The kgen spec of this workload; its app name is the kgen app's group id.
    spec: Path
    # Where the kgen app (and any system doing the same work) writes.
    output_topic: str
    expect: Expectation
    description: str


def _keep(_key: bytes, value: bytes, obj: dict[str, Any]) -> Iterable[bytes]:
    # The filter forwards the input bytes unchanged.
    return (value,) if obj["kind"] == "keep" else ()


WORKLOADS: dict[str, Workload] = {
    "filter": Workload(
        name="filter",
        spec=SPECS / "filter.toml",
        output_topic="bench-filter-out",
        expect=_keep,
        description="keep JSON records whose kind is 'keep' (about half)",
    ),
}
