"""Interactive queries on three instances of wordcount (--http-port 0 each), on the real
broker: every word's count is answered through one instance, whichever owns its partition
(forwarded to the owner); a paged `all` through another gathers every partition; while a
fourth instance joins (a rebalance: partitions move, stores close and restore) queries answer
503 with Retry-After, or the right count: never a wrong one."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path
from urllib.parse import quote

import pytest
from example_apps import build_example, committed_offsets, start_app

from kgen import topics

pytestmark = pytest.mark.broker

PARTITIONS = 6
LINES = 6_000


def _get(url: str) -> tuple[int, dict[str, object], dict[str, str]]:
    try:
        with urllib.request.urlopen(url, timeout=10) as reply:
            return reply.status, json.loads(reply.read()), dict(reply.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read()), dict(exc.headers)


def _url(log: Path, deadline: float) -> str:
    while True:
        found = re.search(r"/stores on (http://\S+)", log.read_text())
        if found:
            return found.group(1)
        assert time.monotonic() < deadline, log.read_text()[-3000:]
        time.sleep(0.1)


def test_any_instance_answers_for_any_key_and_503_while_partitions_move(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    bootstrap, app_id = kafka_bootstrap, "wc-queries"
    topics.recreate_topics(
        bootstrap,
        {"lines": PARTITIONS, "word-counts": PARTITIONS},
        groups=[app_id],
        config={"cleanup.policy": "compact"},
    )
    lines = [f"w{i % 331} x{(i * 7) % 113} common" for i in range(LINES)]
    expected = Counter(word for line in lines for word in line.split())
    topics.produce_all(
        bootstrap, "lines", ((f"l{i}".encode(), ln.encode()) for i, ln in enumerate(lines))
    )
    app = build_example("wordcount", app_id, tmp_path)
    logs = [tmp_path / f"instance{i}.log" for i in range(4)]

    def start(i: int) -> subprocess.Popen[bytes]:
        state = ("--state-dir", str(tmp_path / f"state{i}"), "--instance-id", f"q{i}")
        return start_app(app, bootstrap, logs[i], *state, "--http-port", "0")

    apps = [start(i) for i in range(3)]
    try:
        deadline = time.monotonic() + 120
        urls = [_url(log, deadline) for log in logs[:3]]
        while sum(max(o, 0) for o in committed_offsets(bootstrap, app_id, "lines", 6)) < LINES:
            assert time.monotonic() < deadline, logs[0].read_text()[-3000:]
            time.sleep(0.2)
        while not all(re.search(r"assigned: \S", log.read_text()) for log in logs[:3]):
            assert time.monotonic() < deadline, "the instances never shared the partitions"
            time.sleep(0.2)

        # Every word through the first instance: the answers come from all three.
        served: Counter[int] = Counter()
        for word, count in expected.items():
            for _ in range(100):  # bounded: the first commits may still be on their way
                status, body, _ = _get(f"{urls[0]}/stores/word-counts/keys/{quote(word)}")
                if status == 200 and body["value"] == count:
                    break
                assert status in (200, 503, 404), body
                time.sleep(0.1)
            assert (status, body.get("value")) == (200, count), (word, body)
            served[int(str(body["partition"]))] += 1
        assert set(served) == set(range(PARTITIONS))
        assert _get(f"{urls[0]}/stores/word-counts/keys/absent")[0] == 404

        # Every key, paged, through the second instance.
        table: dict[str, int] = {}
        after = ""
        for _ in range(50):
            query = f"?limit=100{'&after=' + quote(after) if after else ''}"
            status, body, _ = _get(f"{urls[1]}/stores/word-counts/all{query}")
            assert status == 200, body
            entries = body["entries"]
            assert isinstance(entries, list)
            table.update({e["key"]: e["value"] for e in entries})
            if body["next"] is None:
                break
            after = str(body["next"])
        assert table == dict(expected)
        status, body, _ = _get(f"{urls[2]}/stores/word-counts/range?from=w1&to=w2")
        assert status == 200
        assert [e["key"] for e in body["entries"]] == sorted(  # type: ignore[union-attr]
            w for w in expected if "w1" <= w <= "w2"
        )

        # A fourth instance joins: partitions move while queries go on.
        answers: list[tuple[int, object, str, int]] = []
        stop = threading.Event()

        def ask() -> None:
            words = sorted(expected)
            i = 0
            while not stop.is_set() and len(answers) < 100_000:
                word = words[i % len(words)]
                status, body, headers = _get(f"{urls[0]}/stores/word-counts/keys/{quote(word)}")
                retry = headers.get("Retry-After", "")
                answers.append((status, body.get("value"), retry, expected[word]))
                i += 1

        asking = threading.Thread(target=ask, daemon=True)
        asking.start()
        time.sleep(1)
        apps.append(start(3))
        deadline = time.monotonic() + 120
        while not re.search(r"assigned: \S", logs[3].read_text()):
            assert time.monotonic() < deadline, logs[3].read_text()[-3000:]
            time.sleep(0.2)
        time.sleep(3)
        stop.set()
        asking.join(30)
        wrong = [a for a in answers if a[0] == 200 and a[1] != a[3]]
        unavailable = [a for a in answers if a[0] == 503]
        assert not wrong
        assert {a[0] for a in answers} <= {200, 503}, Counter(a[0] for a in answers)
        assert unavailable, f"no query fell into the rebalance ({len(answers)} asked)"
        assert all(a[2] == "1" for a in unavailable)
        print(f"queries during the rebalance: {Counter(a[0] for a in answers)}")
    finally:
        for proc in apps:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in apps:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
