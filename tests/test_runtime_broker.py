"""A generated app's run loop against the real broker: missing topics, the `fail` policy,
at-least-once mode, and two instances sharing the work."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from conftest import BuildApp
from example_apps import build_example, committed_offsets

from kgen import topics

pytestmark = pytest.mark.broker


def _app(
    app_dir: Path, bootstrap: str, *args: str, log: Path | None = None
) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            next(m.parent.name for m in app_dir.glob("*/__main__.py")),
            "--bootstrap-servers",
            bootstrap,
            *args,
        ],
        cwd=app_dir,
        env={**os.environ, "PYTHONPATH": str(app_dir)},
        stdout=log.open("ab") if log else subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def test_missing_topics_are_named(kafka_bootstrap: str, build_app: BuildApp) -> None:
    app = build_app(
        """
app = "missing-topics"
[topics.nowhere-in]
[topics.nowhere-out]
[[streams]]
name = "s"
from = "nowhere-in"
steps = [{ to = "nowhere-out" }]
""",
        "missing-topics",
    ).root
    proc = _app(app, kafka_bootstrap)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 1
    assert b"missing topics: nowhere-in, nowhere-out" in out


def test_fail_policy_stops_before_the_bad_record(kafka_bootstrap: str, build_app: BuildApp) -> None:
    app = build_app(
        """
app = "fail-fast"
on_error = "fail"
[topics.ff-in]
value = "json"
[topics.ff-out]
value = "json"
[[streams]]
name = "s"
from = "ff-in"
steps = [{ map_values = "value['n'] * 2" }, { to = "ff-out" }]
""",
        "fail-fast",
    ).root
    topics.recreate_topics(kafka_bootstrap, {"ff-in": 1, "ff-out": 1}, groups=["fail-fast"])
    records = [(b"a", b'{"n": 1}'), (b"b", b"not json"), (b"c", b'{"n": 3}')]
    topics.produce_all(kafka_bootstrap, "ff-in", records)
    proc = _app(app, kafka_bootstrap, "--stop-when-idle", "5")
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 1, out.decode()[-3000:]
    assert b"record ff-in-0@1 failed" in out
    # Nothing at or past the bad record is committed: offsets, and output, stop before it.
    assert committed_offsets(kafka_bootstrap, "fail-fast", "ff-in", 1)[0] in (-1001, 0, 1)
    assert [r.value for r in topics.read_committed(kafka_bootstrap, "ff-out")] in (
        [],
        [b"2"],
    )


def test_at_least_once_mode(kafka_bootstrap: str, tmp_path: Path) -> None:
    topics.recreate_topics(
        kafka_bootstrap, {"payment": 2, "unknown-payment": 2}, groups=["payments-alos"]
    )
    keys = [b"unknown" if i % 2 else b"known" for i in range(2000)]
    topics.produce_all(
        kafka_bootstrap, "payment", ((k, str(i).encode()) for i, k in enumerate(keys))
    )
    app = build_example("payments", "payments-alos", tmp_path)
    proc = _app(app, kafka_bootstrap, "--guarantee", "at_least_once", "--stop-when-idle", "3")
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, out.decode()[-3000:]
    assert b"at_least_once" in out
    values = [r.value for r in topics.read_committed(kafka_bootstrap, "unknown-payment")]
    assert sorted(values) == sorted(str(i).encode() for i in range(1, 2000, 2))
    assert sum(committed_offsets(kafka_bootstrap, "payments-alos", "payment", 2)) == 2000


def _last_assignment(log: Path) -> int:
    """How many partitions the instance writing `log` was last given (-1: none yet)."""
    lines = [ln for ln in log.read_text().splitlines() if "assigned: " in ln or "revoked: " in ln]
    if not lines or "revoked: " in lines[-1]:
        return -1
    return lines[-1].count("payment-")


def test_two_instances_share_the_partitions(kafka_bootstrap: str, tmp_path: Path) -> None:
    topics.recreate_topics(
        kafka_bootstrap, {"payment": 6, "unknown-payment": 6}, groups=["payments-scale"]
    )
    app = build_example("payments", "payments-scale", tmp_path)
    logs = [tmp_path / "one.log", tmp_path / "two.log"]
    apps = [
        _app(
            app, kafka_bootstrap, "--instance-id", f"i{n}", "-X", "session.timeout.ms=6000", log=log
        )
        for n, log in enumerate(logs)
    ]
    total = 6000
    try:
        # Feed them only once the group has settled with three partitions each.
        deadline = time.monotonic() + 90
        while [_last_assignment(log) for log in logs] != [3, 3]:
            assert time.monotonic() < deadline, [log.read_text()[-2000:] for log in logs]
            time.sleep(0.2)
        # Keys spread the records over all partitions; only "unknown" ones come out.
        records = (
            (b"unknown" if i % 2 == 0 else f"u{i}".encode(), str(i).encode()) for i in range(total)
        )
        topics.produce_all(kafka_bootstrap, "payment", records)
        deadline = time.monotonic() + 120
        while (
            sum(
                max(o, 0)
                for o in committed_offsets(kafka_bootstrap, "payments-scale", "payment", 6)
            )
            < total
        ):
            assert time.monotonic() < deadline, [log.read_text()[-2000:] for log in logs]
            time.sleep(0.2)
    finally:
        for proc in apps:
            proc.send_signal(signal.SIGTERM)
        codes = [proc.wait(60) for proc in apps]
    assert codes == [0, 0], [log.read_text()[-2000:] for log in logs]
    processed = [int(log.read_text().split("stopped: ")[1].split()[0]) for log in logs]
    # Both did real work, and together exactly all of it, once.
    assert all(n > 0 for n in processed) and sum(processed) == total, processed
    values = Counter(r.value for r in topics.read_committed(kafka_bootstrap, "unknown-payment"))
    assert sorted(values) == sorted(str(i).encode() for i in range(0, total, 2))
    assert set(values.values()) == {1}


def test_refused_output_aborts_rewinds_then_gives_up(
    kafka_bootstrap: str, build_app: BuildApp
) -> None:
    """The broker refuses an output record (larger than the sink topic allows): each commit
    fails and is aborted, the input is rewound and processed again; after a few failed commits
    in a row the app stops (exit 1, the record's output is at fault, one line, no traceback)
    and nothing is committed, output or offsets."""
    app = build_app(
        """
app = "refused-output"
[topics.ro-in]
[topics.ro-out]
[[streams]]
name = "s"
from = "ro-in"
steps = [{ map_values = "value * 2000" }, { to = "ro-out" }]
""",
        "refused-output",
    ).root
    topics.recreate_topics(kafka_bootstrap, {"ro-in": 1}, groups=["refused-output"])
    topics.recreate_topics(kafka_bootstrap, {"ro-out": 1}, config={"max.message.bytes": "1000"})
    topics.produce_all(kafka_bootstrap, "ro-in", [(b"k", b"ok"), (b"k", b"big")])
    proc = _app(app, kafka_bootstrap)
    out, _ = proc.communicate(timeout=180)
    text = out.decode()
    assert proc.returncode == 1, text[-3000:]
    # Each failure goes back to the last commit; the warning's repeats are summarised.
    assert "10 records processed, 0 commits, 4 recoveries" in text, text[-3000:]
    assert "5 commits in a row failed on KafkaError{code=MSG_SIZE_TOO_LARGE" in text
    assert "Traceback" not in text, text[-3000:]
    assert topics.read_committed(kafka_bootstrap, "ro-out") == []
    assert committed_offsets(kafka_bootstrap, "refused-output", "ro-in", 1) == [-1001]
