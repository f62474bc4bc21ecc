"""A store's cache_max_entries bounds its cache in the instance, all its open partitions
together (as Kafka Streams' record cache is per instance), so the cache's memory does not grow
with the partitions an instance holds. Runs generated/wordcount's real Stores (memory
backends, no broker)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORDCOUNT = ROOT / "generated" / "wordcount"

# Opens `parts` partitions of the word-counts store with --cache-max-entries `limit`, writes
# `keys` keys to each and commits, then closes half of them; prints what each step left.
PROGRAM = """
import sys
from wordcount import state

limit, parts, keys = (int(a) for a in sys.argv[1:])
spec = state.STORES["word-counts"]
topic = spec.source_topics[0]
sent = []
stores = state.Stores(None, lambda *record: sent.append(record), cache_max_entries=limit)
stores.bind(object(), {"word-counts": lambda *update: None})
stores.assign([(topic, p) for p in range(parts)])
opened = [stores.store("word-counts", p) for p in range(parts)]
print("share=%s" % sorted({s.cache_share for s in opened}))
for store in opened:
    for i in range(keys):
        store.put(b"k%d" % i, i, i)
print("flushed early=%d" % len(sent))
stores.flush()
stores.commit({})
print("cached=%d" % sum(len(s.cache) for s in opened))
print("oldest kept=%d" % (min(int(k[1:]) for k in opened[0].cache) if opened[0].cache else -1))
print("values=%s" % all(s.get(b"k%d" % i) == (i, i) for s in opened for i in range(keys)))
stores.close([(topic, p) for p in range(parts // 2)])
kept = [stores.store("word-counts", p) for p in range(parts // 2, parts)]
print("share after close=%s" % sorted({s.cache_share for s in kept}))
"""


def _run(limit: int, parts: int, keys: int) -> dict[str, str]:
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(PROGRAM), str(limit), str(parts), str(keys)],
        env={"PYTHONPATH": str(WORDCOUNT), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    pairs = (line.partition("=") for line in result.stdout.splitlines())
    return {name: value for name, _, value in pairs}


def test_the_store_partitions_of_an_instance_share_its_cache() -> None:
    out = _run(limit=1000, parts=4, keys=400)
    # 1000 entries for the instance: 250 per open partition, for updated keys and kept entries.
    assert out["share"] == "[250]"
    # 400 keys updated in each partition: a partition flushes early past its share.
    assert int(out["flushed early"]) >= 4 * 250
    # After the commit at most the instance's bound stays cached, the keys read last ...
    assert out["cached"] == "1000"
    assert out["oldest kept"] == "150"
    # ... and nothing is lost: the rest is read back from the backend.
    assert out["values"] == "True"
    # Two partitions left: each gets half of the bound.
    assert out["share after close"] == "[500]"


def test_the_share_grows_no_smaller_than_one_entry_and_zero_stays_zero() -> None:
    assert _run(limit=3, parts=4, keys=2)["share"] == "[1]"
    zero = _run(limit=0, parts=2, keys=3)
    assert zero["share"] == "[0]"
    assert zero["flushed early"] == "6"  # every update forwarded at once
    assert zero["cached"] == "0"
