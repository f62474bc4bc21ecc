"""The app's fetch buffers, without a broker: the consumers the app builds (the run loop's, the
restore's, the standby replicas' and the global tables') ask for a bounded fetch response and a
bounded local queue (what keeps RSS flat as partitions grow, see bench/README "Memory"), and
librdkafka accepts them, also when -X raises message.max.bytes (it refuses a consumer whose
fetch.max.bytes is below that) or sets fetch.max.bytes itself."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
WORDCOUNT = ROOT / "generated" / "wordcount"
# Has a global table, hence a global-table consumer of its own.
PAYMENTS_IN_EUR = ROOT / "generated" / "payments_in_eur"

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
    runner = runtime.Runner(s)
    plain = lambda conf: {k: v for k, v in conf.items() if isinstance(v, (int, str))}
    others = {}
    stores = getattr(runner, "stores", None)
    if stores is not None:
        others["restore"] = plain(stores.restore_config)
    global_tables = getattr(runner, "global_tables", None)
    if global_tables is not None and global_tables.config is not None:
        others["global"] = plain(global_tables.config)
    for conf in others.values():
        real({**conf, "group.id": "check"})  # librdkafka accepts it
    print(json.dumps({"consumer": seen[0], **others}))
    sys.stdout.flush()
    os._exit(0)  # no broker to say goodbye to
"""


def _settings(tmp_path: Path, *args: str, app: Path = WORDCOUNT) -> dict[str, dict[str, object]]:
    """The settings of each consumer the app's Runner sets up: "consumer" (the run loop's),
    "restore" (the stores' restore and standby consumers), "global" (the global tables')."""
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            textwrap.dedent(BUILD_RUNNER).replace("wordcount", app.name),
            str(tmp_path),
            *args,
        ],
        env={"PYTHONPATH": str(app), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    settings: dict[str, dict[str, object]] = json.loads(result.stdout.splitlines()[-1])
    return settings


def _consumer_settings(tmp_path: Path, *args: str) -> dict[str, object]:
    return _settings(tmp_path, *args)["consumer"]


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


@pytest.mark.parametrize(("app", "consumer"), [(WORDCOUNT, "restore"), (PAYMENTS_IN_EUR, "global")])
def test_the_restore_and_global_consumers_are_bounded_too(
    tmp_path: Path, app: Path, consumer: str
) -> None:
    # A restore reads every assigned store partition at once: unbounded, it fetched 1 MiB of
    # each and queued up to 64 MiB ahead.
    conf = _settings(tmp_path, app=app)[consumer]
    assert conf["fetch.max.bytes"] == 4 * 2**20
    assert conf["queued.min.messages"] == 20_000
    assert conf["queued.max.messages.kbytes"] == 16 * 2**10
    # -X still has the last word.
    raised = _settings(
        tmp_path, "-X", "message.max.bytes=10000000", "-X", "queued.min.messages=5000", app=app
    )[consumer]
    assert raised["fetch.max.bytes"] == 10_000_000
    assert raised["queued.min.messages"] == "5000"
