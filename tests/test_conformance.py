"""Conformance: Kafka Streams itself judges kgen's semantics.

Each spec in tests/conformance/specs/ has a Java twin (tests/conformance/java/). Seeded cases
(tests/conformance/cases.py) go through the generated app's in-memory driver and through Kafka
Streams' TopologyTestDriver (record cache off, one JVM for every case), one input record at a
time in the same order. After each input record every output topic is read on both sides, and
the records (key, value, timestamp, and the input record that produced them) are compared per
output topic, in order; a table's output is the sequence of its updates.

What Kafka Streams writes is the reference. A difference that is known (KNOWN_DIFFERENCES) is
asserted as exactly that difference: its `predict` turns Kafka Streams' records into what kgen
writes instead, and kgen must write exactly that. A known difference that no case shows any
more fails too (it was fixed: remove it from the list and the README). Anything else fails.

KGEN_CONFORMANCE_CASES (default 100) cases per topology, seeds from KGEN_CONFORMANCE_SEED
(default 0). The Java jar is built once with Maven and cached (see conformance.kafka_streams).
"""

from __future__ import annotations

import os
import shutil
import sys
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from conformance import cases as case_gen
from conformance import kafka_streams
from conftest import BuildApp

SPECS = Path(__file__).resolve().parent / "conformance" / "specs"
TOPOLOGIES = tuple(sorted(case_gen.GENERATORS))
CASES = int(os.environ.get("KGEN_CONFORMANCE_CASES", "100"))
SEED = int(os.environ.get("KGEN_CONFORMANCE_SEED", "0"))

Case = list[dict[str, Any]]
# One output record: (input index, key, value, timestamp); an error: (input index, "error", text).
Out = tuple[Any, ...]
# What one case wrote, per output topic (every output topic present, maybe empty).
Written = dict[str, list[Out]]


# -- known differences --------------------------------------------------------------------------


def _last_update_per_key(case: Case, written: Written) -> Written:
    """kgen's driver de-duplicates the updates of one key that one input record causes (its
    store cache flushes once per input record): only each key's last update of that input
    record is forwarded, in the order of the keys' first updates."""
    predicted: Written = {}
    for topic, records in written.items():
        out: list[Out] = []
        for record in records:
            same = next(
                (i for i, o in enumerate(out) if o[0] == record[0] and o[1] == record[1]), None
            )
            if same is None:
                out.append(record)
            else:
                out[same] = record
        predicted[topic] = out
    return predicted


def _regroup_intermediates(case: Case, written: Written) -> Written:
    """When a table row is updated and stays in its group, Kafka Streams (KIP-904) sends the
    subtraction and the addition as one record, so the group's aggregate changes once. kgen
    used to send two: a visible intermediate update (the aggregate without the row: a count
    one lower, a total without the old amount) before the final one."""
    rows: dict[str, dict[Any, Any]] = {"members": {}, "accounts": {}}
    sink = {"members": "region-counts", "accounts": "region-totals"}
    predicted = {topic: list(records) for topic, records in written.items()}
    for index, record in enumerate(case):
        topic, key, new = record["topic"], record["key"], record["value"]
        if key is None:
            continue
        old = rows[topic].get(key)
        if new is None:
            rows[topic].pop(key, None)
        else:
            rows[topic][key] = new
        if old is None or new is None or old.get("region") is None:
            continue
        if old.get("region") != new.get("region"):
            continue
        out = predicted[sink[topic]]
        updates = [i for i, o in enumerate(out) if o[0] == index]
        if len(updates) != 1:  # not the one combined update: nothing to predict
            continue
        at = updates[0]
        _, group, value, timestamp = out[at]
        without = value - 1 if topic == "members" else value - new["amount"]
        out.insert(at, (index, group, without, timestamp))
    return predicted


@dataclass(frozen=True)
class KnownDifference:
    """Where Kafka Streams writes some records, kgen writes `predict(case, those records)`."""

    topologies: tuple[str, ...]
    what: str
    why: str
    fix: str
    predict: Callable[[Case, Written], Written]


# kgen's differences from Kafka Streams today: each is asserted exactly (kgen must write what
# `predict` makes of Kafka Streams' records) and must still show in some case.
KNOWN_DIFFERENCES: dict[str, KnownDifference] = {}

# Differences fixed since: kgen now agrees. Kept so that a regression is named: an unexplained
# difference that one of these predicts exactly is reported as that regression.
FIXED_DIFFERENCES: dict[str, KnownDifference] = {
    "merged-updates": KnownDifference(
        topologies=("wordcount",),
        what=(
            "several updates of one key caused by one input record: Kafka Streams (cache off) "
            "forwards each, kgen forwarded only the last (the line 'a a' at 1000: Kafka "
            "Streams writes (a,1) then (a,2), kgen wrote only (a,2))"
        ),
        why="kgen's driver flushed the store cache once per input record",
        fix="fixed by 6cdc822 (issue 10, item 1: every update forwarded at once and in order)",
        predict=_last_update_per_key,
    ),
    "regroup-intermediate": KnownDifference(
        topologies=("regroup",),
        what=(
            "a table row updated within its group: Kafka Streams writes one update of the "
            "group, kgen wrote an intermediate one first (u1 {region: eu} then u1 {region: "
            "eu, x: 1}: Kafka Streams writes (eu,1) twice, kgen wrote (eu,1), (eu,0), (eu,1))"
        ),
        why="kgen's regrouping sent the subtraction and the addition as two records",
        fix="fixed by 8e9b3e8 (issue 10, item 2: KIP-904, one record with both values)",
        predict=_regroup_intermediates,
    ),
}

# Operations without a conformance twin, and why.
NOT_COVERED = {
    "dead_letter / on_error": "kgen's own error policy (KIP-1034 headers): not part of the suite",
    "several partitions": "both drivers have one partition per topic and take records in order",
}


# -- running both sides -------------------------------------------------------------------------


def _cases(topology: str) -> list[Case]:
    return [case_gen.generate(topology, SEED + i) for i in range(CASES)]


def _run_kgen(driver_class: Any, sinks: tuple[str, ...], case: Case) -> Written:
    """The case through a fresh kgen driver: what each input record made it write."""
    driver = driver_class()
    topics = sys.modules[driver_class.__module__.rsplit(".", 1)[0] + ".settings"].TOPICS
    written: Written = {topic: [] for topic in sinks}
    for index, record in enumerate(case):
        try:
            if "advance" in record:
                driver.advance_wall_clock(record["advance"])
            else:
                driver.pipe_input(
                    record["topic"], record["key"], record["value"], timestamp=record["timestamp"]
                )
        except Exception as exc:
            written.setdefault("<error>", []).append((index, "error", repr(exc)))
            break
        for topic in sinks:
            written[topic].extend(
                (index, _plain_key(r.key, topics[topic].key_format), r.value, r.timestamp)
                for r in driver.read_records(topic)
            )
    return written


def _plain_key(key: Any, key_format: str) -> Any:
    """A windowed key as the Java side prints one: {"key", "start"} read with TimeWindowedSerde
    (which has no end without the window size), {"key", "start", "end"} for a session."""
    if isinstance(key, tuple) and getattr(key, "_fields", None) == ("key", "start", "end"):
        if key_format.startswith("session_"):
            return {"key": key[0], "start": key[1], "end": key[2]}
        return {"key": key[0], "start": key[1]}
    return key


def _from_java(lines: list[dict[str, Any]], sinks: tuple[str, ...], count: int) -> list[Written]:
    written: list[Written] = [{topic: [] for topic in sinks} for _ in range(count)]
    for line in lines:
        case = written[line["case"]]
        if "error" in line:
            case.setdefault("<error>", []).append((line["input"], "error", line["error"]))
        else:
            case[line["topic"]].append(
                (line["input"], line["key"], line["value"], line["timestamp"])
            )
    return written


@dataclass
class Result:
    """One topology's run: the cases, what each side wrote, and how they compare."""

    topology: str
    cases: list[Case]
    java: list[Written]
    kgen: list[Written]
    records: int = 0  # output records compared
    # known difference -> cases where kgen showed it, exactly as predicted
    seen: dict[str, int] = field(default_factory=dict)
    # fixed difference -> cases where it would show: the suite still exercises it
    exercised: dict[str, int] = field(default_factory=dict)
    unexplained: list[str] = field(default_factory=list)


def _describe(case: Case, index: int, topic: str, java: list[Out], kgen: list[Out]) -> str:
    inputs = "\n".join(f"      {i}: {r}" for i, r in enumerate(case))
    return (
        f"  case {index}, topic {topic}\n    inputs:\n{inputs}\n"
        f"    Kafka Streams: {java}\n    kgen:          {kgen}"
    )


def _compare(result: Result) -> None:
    known = [(n, d) for n, d in KNOWN_DIFFERENCES.items() if result.topology in d.topologies]
    for index, (case, java, kgen) in enumerate(
        zip(result.cases, result.java, result.kgen, strict=True)
    ):
        predicted, applied = java, []
        for name, difference in known:
            before, predicted = predicted, difference.predict(case, predicted)
            if predicted != before:
                applied.append(name)
        result.records += sum(len(v) for v in java.values())
        for name, difference in FIXED_DIFFERENCES.items():
            if result.topology in difference.topologies and difference.predict(case, java) != java:
                result.exercised[name] = result.exercised.get(name, 0) + 1
        mismatched = [
            t for t in sorted(set(predicted) | set(kgen)) if predicted.get(t, []) != kgen.get(t, [])
        ]
        if not mismatched:
            for name in applied:  # the known difference showed, exactly as predicted
                result.seen[name] = result.seen.get(name, 0) + 1
        for topic in mismatched:
            if applied and java.get(topic, []) == kgen.get(topic, []):
                note = (
                    f"  kgen now writes what Kafka Streams writes: known difference(s) "
                    f"{', '.join(applied)} look fixed (take them off KNOWN_DIFFERENCES and the "
                    "README's Semantics section, into FIXED_DIFFERENCES):\n"
                )
            else:
                note = _regression(result.topology, case, predicted, kgen, topic)
            result.unexplained.append(
                note + _describe(case, index, topic, java.get(topic, []), kgen.get(topic, []))
            )


def _regression(topology: str, case: Case, predicted: Written, kgen: Written, topic: str) -> str:
    """'regression of NAME: ' when a fixed difference explains this one exactly."""
    for name, difference in FIXED_DIFFERENCES.items():
        if topology in difference.topologies:
            again = difference.predict(case, predicted)
            if again.get(topic, []) == kgen.get(topic, []):
                return f"  regression of {name} ({difference.fix}):\n"
    return ""


@pytest.fixture(scope="module")
def results(build_app: BuildApp, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Result]:
    """Every topology's cases through both drivers, compared."""
    if shutil.which("java") is None:
        pytest.fail("java is not on PATH: the conformance suite runs Kafka Streams")
    jar = kafka_streams.build()
    all_cases = {t: _cases(t) for t in TOPOLOGIES}
    # The Java twins run in their JVM while the kgen apps are built and driven here: two
    # cores, half the wait.
    with ThreadPoolExecutor(1) as pool:
        java = pool.submit(
            kafka_streams.run, jar, all_cases, tmp_path_factory.mktemp("conformance")
        )
        ours: dict[str, tuple[tuple[str, ...], list[Written]]] = {}
        for topology in TOPOLOGIES:
            spec = (SPECS / f"{topology}.toml").read_text(encoding="utf-8")
            app = build_app(spec, f"conformance_{topology}")
            driver_class = app.module("driver").TopologyTestDriver
            sinks = tuple(sorted(app.module("settings").SINK_TOPICS))
            ours[topology] = (
                sinks,
                [_run_kgen(driver_class, sinks, case) for case in all_cases[topology]],
            )
        lines = java.result()
    by_topology: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for line in lines:
        by_topology[line["topology"]].append(line)
    out: dict[str, Result] = {}
    for topology in TOPOLOGIES:
        sinks, written = ours[topology]
        cases = all_cases[topology]
        result = Result(
            topology, cases, _from_java(by_topology[topology], sinks, len(cases)), written
        )
        _compare(result)
        out[topology] = result
    return out


@pytest.mark.parametrize("topology", TOPOLOGIES)
def test_kgen_writes_what_kafka_streams_writes(results: dict[str, Result], topology: str) -> None:
    result = results[topology]
    shown = "\n".join(result.unexplained[:5])
    more = len(result.unexplained) - 5
    assert not result.unexplained, (
        f"{topology}: {len(result.unexplained)} unexplained differences from Kafka Streams"
        f"{f' ({more} more)' if more > 0 else ''}:\n{shown}"
    )
    for name, difference in KNOWN_DIFFERENCES.items():
        if topology in difference.topologies:
            assert result.seen.get(name), (
                f"known difference {name!r} ({difference.what}) no longer shows in {topology}: "
                "update KNOWN_DIFFERENCES and the README's Semantics section"
            )
    for name, difference in FIXED_DIFFERENCES.items():
        if topology in difference.topologies:
            assert result.exercised.get(name), (
                f"no case of {topology} exercises the fixed difference {name!r} any more: "
                "its regression would go unnoticed"
            )


def test_summary(results: dict[str, Result], capsys: pytest.CaptureFixture[str]) -> None:
    """One line per topology: cases, records compared, known and unexplained differences."""
    lines = ["", "conformance with Kafka Streams 4.4.0 (TopologyTestDriver, cache off):"]
    for topology, r in results.items():
        known = ", ".join(f"{n} in {c} cases" for n, c in sorted(r.seen.items())) or "none"
        fixed = "".join(
            f"; fixed {n}: checked in {c} cases" for n, c in sorted(r.exercised.items())
        )
        lines.append(
            f"  {topology:10} {len(r.cases)} cases, {r.records} records compared; "
            f"known differences: {known}{fixed}; unexplained: {len(r.unexplained)}"
        )
    total_cases = sum(len(r.cases) for r in results.values())
    total_records = sum(r.records for r in results.values())
    total_unexplained = sum(len(r.unexplained) for r in results.values())
    lines.append(
        f"  {len(results)} topologies, {total_cases} cases, {total_records} records compared, "
        f"{total_unexplained} unexplained differences"
    )
    with capsys.disabled():  # shown without -s
        print("\n".join(lines))
    assert len(results) == len(TOPOLOGIES)
