"""RocksDB's memory budget and its missing write-ahead log, without a broker: the spec's
rocksdb_memory_mib and the app's --rocksdb-memory-mib reach every store partition's options
(RocksDB's own LOG file says so), and a store partition killed mid-write reopens with data and
changelog offset that agree (the atomic flush of both column families)."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import textwrap
from pathlib import Path

from kgen.codegen import render
from kgen.plan.planner import plan
from kgen.spec.load import load_spec

ROOT = Path(__file__).resolve().parent.parent
WORDCOUNT = ROOT / "generated" / "wordcount"


def _python(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        env={"PYTHONPATH": str(WORDCOUNT), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_specs_budget_is_the_apps_default() -> None:
    loaded = load_spec(ROOT / "specs" / "wordcount.toml", "specs/wordcount.toml")
    spec = loaded.spec.model_copy(update={"rocksdb_memory_mib": 32})
    files = render.render(plan(dataclasses.replace(loaded, spec=spec)))
    settings = next(text for name, text in files.items() if name.endswith("/settings.py"))
    backends = next(text for name, text in files.items() if name.endswith("/backends.py"))
    assert "DEFAULT_ROCKSDB_MEMORY_MIB = 32\n" in settings
    assert "DEFAULT_MEMORY_MIB = 32\n" in backends


def test_the_flag_reaches_every_store_partitions_options(tmp_path: Path) -> None:
    # What the app's run loop does with its settings (runtime.py), then two store partitions.
    result = _python(
        """
        import sys
        from wordcount import backends, settings
        s = settings.parse(["--bootstrap-servers", "localhost:1", "--rocksdb-memory-mib", "96"])
        backends.set_memory_budget(s.rocksdb_memory_mib)
        for p in (0, 1):
            b = backends.RocksDBBackend(f"{sys.argv[1]}/{p}")
            b.write({b"k%d" % i: b"v" for i in range(1000)}, 7)
            b.close()
        print(backends.memory().write_buffers.get_buffer_size())
        """,
        str(tmp_path),
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [str(48 * 2**20)]  # half the budget for memtables
    for p in (0, 1):
        log = (tmp_path / str(p) / "LOG").read_text()
        # One cache of the budget's size for both partitions (the same address in both).
        assert "capacity : 100663296" in log, log[-2000:]
        assert "Options.atomic_flush: 1" in log
    caches = {
        line.split()[-1]
        for p in (0, 1)
        for line in (tmp_path / str(p) / "LOG").read_text().splitlines()
        if line.strip().startswith("block_cache:")
    }
    assert len(caches) == 1, caches
    # No write-ahead log: the changelog is the log.
    wal = [f for p in (0, 1) for f in (tmp_path / str(p)).glob("*.log")]
    assert wal and all(f.stat().st_size == 0 for f in wal), [(f, f.stat().st_size) for f in wal]


KEYS = 3000


def _value(key: int, offset: int) -> bytes | None:
    """Batch `offset` writes 300 keys: every seventh one it deletes."""
    return None if (key + offset) % 7 == 0 else b"%d@%d" % (key, offset)


def _batch(offset: int) -> dict[int, bytes | None]:
    return {
        (offset * 300 + j) % KEYS: _value((offset * 300 + j) % KEYS, offset) for j in range(300)
    }


def test_a_store_partition_killed_mid_write_reopens_with_data_and_offset_that_agree(
    tmp_path: Path,
) -> None:
    # Flushes every 40 offsets (RocksDB's own flushes too, once its memtables fill), then
    # the process is SIGKILLed after offset 1,000: what was written since the last flush
    # is lost, but the store reopens at a (data, offset) pair that belong together.
    result = _python(
        """
        import os, signal, sys
        from wordcount import backends
        backends.FLUSH_EVERY_OFFSETS = 40
        backends.set_memory_budget(8)
        b = backends.RocksDBBackend(sys.argv[1])
        KEYS = 3000
        def value(key, offset):
            return None if (key + offset) % 7 == 0 else b"%d@%d" % (key, offset)
        for offset in range(1001):
            keys = [(offset * 300 + j) % KEYS for j in range(300)]
            b.write({str(k).encode(): value(k, offset) for k in keys}, offset)
        os.kill(os.getpid(), signal.SIGKILL)
        """,
        str(tmp_path / "store"),
    )
    assert result.returncode == -9, result.stderr
    reopened = _python(
        """
        import sys
        from wordcount import backends
        b = backends.RocksDBBackend(sys.argv[1])
        print(b.offset)
        for k, v in b.items():
            print(k.decode(), v.decode())
        """,
        str(tmp_path / "store"),
    )
    assert reopened.returncode == 0, reopened.stderr
    first, *rows = reopened.stdout.splitlines()
    offset = int(first)
    assert 0 < offset < 1000  # flushed on the way; not all (the last writes were lost)
    expected: dict[int, bytes | None] = {}
    for o in range(offset + 1):
        expected.update(_batch(o))
    want = {str(k): v.decode() for k, v in expected.items() if v is not None}
    got = dict(row.split(" ", 1) for row in rows)
    assert got == want
