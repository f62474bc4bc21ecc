"""`python -m bench failover` without a broker: the phases it reads from the instances' log
lines, when it calls the group settled, its summary table, and its refusal of an unknown
variant. (A run needs three instances, a session time-out and a 1M-key store: see
bench/README.md, "Failover".)"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import __main__ as cli
from bench.failover import (
    FailoverResult,
    Phase,
    _balanced,
    _fresh,
    observe,
    table,
)

REPARTITION = "bench-count-counts-repartition"
CHANGELOG = "bench-count-counts-changelog"


def test_kgen_phases_come_from_the_instances_that_took_the_dead_partitions() -> None:
    lines = [
        (0, 99.0, "INFO bench-count: processed 100 records (10/s), 3 commits"),  # before the kill
        (0, 110.0, "INFO bench-count: revoked: bench-count-counts-repartition-0, bench-input-0"),
        (2, 110.1, "INFO bench-count: revoked: bench-count-counts-repartition-4"),
        (2, 110.2, f"INFO bench-count: assigned: {REPARTITION}-4, {REPARTITION}-5, bench-input-4"),
        (0, 110.3, f"INFO bench-count: assigned: {REPARTITION}-0, {REPARTITION}-2, bench-input-0"),
        (0, 111.0, "INFO bench-count: waited 0.7 s for the committed offsets of x (...)"),
        (
            0,
            112.5,
            "INFO bench-count: 3 store partitions ready in 1.50 s: opened in 0.40 s, "
            "170000 changelog records restored in 1.10 s",
        ),
        # Instance 2 took nothing of the dead instance's: its lines are not the failover's.
        (
            2,
            110.4,
            "INFO bench-count: 2 store partitions ready in 0.20 s: opened in 0.10 s, "
            "0 changelog records restored in 0.10 s",
        ),
    ]
    seen = observe("kgen", lines, 100.0, [2, 3], repartition=REPARTITION, changelog=CHANGELOG)
    assert seen.detected_s == 10.0
    assert seen.assigned_s is not None and abs(seen.assigned_s - 10.3) < 1e-9
    assert seen.offsets_wait_s == 0.7
    assert (seen.open_s, seen.restore_s, seen.restored) == (0.4, 1.1, 170_000)
    assert seen.ready_s is not None and abs(seen.ready_s - 12.5) < 1e-9
    assert [p.what.split(":")[0] for p in seen.phases] == ["instance 0"] * 4


def test_kafka_streams_phases_are_its_state_transitions_and_restores() -> None:
    changelog = "bench-failover-ks-counts-changelog"
    lines = [
        (
            0,
            145.0,
            "INFO KafkaStreams - stream-client [x] State transition from RUNNING to REBALANCING",
        ),
        (
            2,
            145.1,
            "INFO KafkaStreams - stream-client [y] State transition from RUNNING to REBALANCING",
        ),
        (
            0,
            147.0,
            "INFO StoreChangelogReader - Finished restoring changelog "
            f"{changelog}-3 to store counts with a total number of 166000 records",
        ),
        (
            0,
            147.5,
            "INFO StoreChangelogReader - Finished restoring changelog "
            f"{changelog}-1 to store counts with a total number of 5 records",  # not dead
        ),
        (0, 148.0, "INFO KafkaStreams - State transition from REBALANCING to RUNNING"),
    ]
    seen = observe("kafka-streams", lines, 100.0, [3], repartition="r", changelog=changelog)
    assert (seen.detected_s, seen.restore_s, seen.restored, seen.ready_s) == (
        45.0,
        47.0,
        166_000,
        48.0,
    )


def test_the_group_is_settled_when_balanced_and_every_partition_has_new_output() -> None:
    assert _balanced({0: [0, 1], 1: [2, 3], 2: [4, 5]})
    assert not _balanced({0: [0, 1, 2, 3, 4, 5]})
    assert not _balanced({0: [0, 1, 2], 1: [3, 4, 5]})
    last = {p: 10.0 + p for p in range(6)}
    assert _fresh(last, 9.0)
    assert not _fresh(last, 10.5)  # partition 0 had nothing since
    assert not _fresh({p: 20.0 for p in range(5)}, 0.0)  # partition 5 never


def _result(variant: str, seconds: float | None, note: str = "") -> FailoverResult:
    return FailoverResult(
        variant=variant,
        round=1,
        keys=1000,
        dead_partitions=[2, 3],
        outputs={2: seconds, 3: seconds},
        seconds=seconds,
        detected_s=None if seconds is None else seconds - 1,
        assigned_s=None,
        offsets_wait_s=0.0,
        open_s=None,
        restore_s=None,
        restored=10,
        ready_s=None,
        load=(1.0, 1.0, 1.0),
        phases=[Phase(1.0, "x")],
        note=note,
    )


def test_the_summary_takes_medians_of_the_rounds_that_worked() -> None:
    text = table(
        [
            _result("kgen-classic", 10.0),
            _result("kgen-classic", 12.0),
            _result("kgen-classic", 30.0),
            _result("kafka-streams", None, "no new output for every dead partition"),
        ]
    )
    rows = text.splitlines()
    assert rows[2].startswith("| kgen-classic | **12.0** | 10.0 .. 30.0 | 11.0 |")
    assert rows[2].endswith("| 3/3 |")
    assert rows[3] == "| kafka-streams | failed | | | | | | | | 0/1 |"


def test_an_unknown_variant_is_refused_before_any_broker(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = cli.main(
        [
            "failover",
            "--variants",
            "kgen-classic,nope",
            "--bootstrap-servers",
            "127.0.0.1:9",
            "--results-dir",
            str(tmp_path / "results"),
        ]
    )
    assert code == 2
    assert "unknown variants ['nope']" in capsys.readouterr().err
    assert not (tmp_path / "results").exists()
