"""The run loop's fetch buffers, without a broker: the consumer the app builds asks for a bounded
fetch response and a bounded local queue (what keeps RSS flat as partitions grow, see
bench/README "Memory"), and librdkafka accepts it, also when -X raises message.max.bytes (it
refuses a consumer whose fetch.max.bytes is below that) or sets fetch.max.bytes itself."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
WORDCOUNT = ROOT / "generated" / "wordcount"

# Builds the app's Runner (consumer, producer, admin client: none connects before it is used)
# and prints the consumer settings librdkafka was given and accepted.
BUILD_RUNNER = """
    import json, os, sys
    from wordcount import runtime, settings
    seen = []
    real = runtime.Consumer
    def recording(conf):
        consumer = real(conf)  # librdkafka checks the settings here
        seen.append({k: v for k, v in conf.items() if isinstance(v, (int, str))})
        return consumer
    runtime.Consumer = recording
    args = ["--bootstrap-servers", "127.0.0.1:1", "--state-dir", sys.argv[1], *sys.argv[2:]]
    s = settings.parse(args)
    runtime.Runner(s)
    print(json.dumps(seen[0]))
    sys.stdout.flush()
    os._exit(0)  # no broker to say goodbye to
"""


def _consumer_settings(tmp_path: Path, *args: str) -> dict[str, object]:
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(BUILD_RUNNER), str(tmp_path), *args],
        env={"PYTHONPATH": str(WORDCOUNT), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    settings: dict[str, object] = json.loads(result.stdout.splitlines()[-1])
    return settings


def test_the_consumer_fetches_and_queues_a_bounded_amount(tmp_path: Path) -> None:
    conf = _consumer_settings(tmp_path)
    # librdkafka's defaults: 52428800, 100000 and 65536 (per response, queued records, KiB).
    assert conf["fetch.max.bytes"] == 4 * 2**20
    assert conf["queued.min.messages"] == 20_000
    assert conf["queued.max.messages.kbytes"] == 16 * 2**10


@pytest.mark.parametrize(
    ("args", "fetch_max_bytes"),
    [
        (["-X", "message.max.bytes=10000000"], 10_000_000),
        (["-X", "message.max.bytes=1000"], 4 * 2**20),
        (["-X", "fetch.max.bytes=2000000"], "2000000"),
    ],
)
def test_x_settings_keep_the_consumer_valid(
    tmp_path: Path, args: list[str], fetch_max_bytes: object
) -> None:
    assert _consumer_settings(tmp_path, *args)["fetch.max.bytes"] == fetch_max_bytes
