"""A processor's window and session stores in the in-memory driver: a key's windows in start
order (never a longer key's), every key's by key then start, sessions found by end and start,
expiry `retention` behind the latest window or session written (a write to an expired one is
dropped and logged), and the located errors of their declarations. Kafka Streams' own
judgement is the conformance twin (`processor-windows` in test_conformance.py)."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import App, BuildApp

from kgen.spec.errors import SpecInvalid
from kgen.spec.load import load_spec

OPS = '''
from __future__ import annotations

from typing import Any


class Ops:
    """Runs the store operation a record's value names; forwards what it returns."""

    def init(self, context: Any) -> None:
        self.context = context
        self.windows = context.window_store("hits")
        self.sessions = context.session_store("visits")

    def process(self, record: Any) -> None:
        op, args = next(iter(record.value.items()))
        key, w, s = record.key, self.windows, self.sessions
        if op == "wput":
            w.put(key, args[1], args[0])
            return
        if op == "sput":
            s.put(self.window(key, args[0], args[1]), args[2])
            return
        if op == "sremove":
            s.remove(self.window(key, args[0], args[1]))
            return
        result: Any = {
            "wget": lambda: w.get(key, args),
            "wfetch": lambda: [list(x) for x in w.fetch(key, args[0], args[1])],
            "wall": lambda: [[k.key, k.start, k.end, v] for k, v in w.fetch_all(*args)],
            "sget": lambda: s.fetch_session(key, args[0], args[1]),
            "sfind": lambda: [[k.start, k.end, v] for k, v in s.find_sessions(key, *args)],
            "sall": lambda: [[k.key, k.start, k.end, v] for k, v in s.all()],
            "kind": lambda: self.wrong(args),
        }[op]()
        self.context.forward(record.with_value({op: result}))

    def window(self, key: Any, start: int, end: int) -> Any:
        from importlib import import_module

        package = type(self.context).__module__.rsplit(".", 1)[0]
        return import_module(package + ".processors").Windowed(key, start, end)

    def wrong(self, name: str) -> str:
        try:
            self.context.store(name)
        except TypeError as exc:
            return str(exc)
        return "no error"

    def close(self) -> None:
        pass
'''

SPEC = """
app = "pstores"

[topics.in]
key = "string"
value = "json"

[topics.out]
key = "string"
value = "json"

[stores.hits]
kind = "window"
key = "string"
value = "long"
window_size = "10ms"
retention = "100ms"

[stores.visits]
kind = "session"
key = "string"
value = "string"
retention = "50ms"

[[streams]]
name = "ops"
from = "in"
steps = [{ process = "kgen_pstores_udfs:Ops", stores = ["hits", "visits"] }, { to = "out" }]
"""


@pytest.fixture(scope="module")
def app(build_app: BuildApp, tmp_path_factory: pytest.TempPathFactory) -> Iterator[App]:
    folder = tmp_path_factory.mktemp("pstores")
    (folder / "kgen_pstores_udfs.py").write_text(OPS)
    sys.path.insert(0, str(folder))
    built = build_app(SPEC, "pstores")
    yield built
    sys.path.remove(str(folder))
    sys.modules.pop("kgen_pstores_udfs", None)


@pytest.fixture
def run(app: App) -> Any:
    driver = app.module("driver").TopologyTestDriver()

    def run(key: str, op: str, args: Any = None, timestamp: int = 0) -> Any:
        driver.pipe_input("in", key, {op: args}, timestamp=timestamp)
        out = driver.read_records("out")
        if op in ("wput", "sput", "sremove"):
            assert out == []
            return None
        assert len(out) == 1, out  # a query's answer, None included
        return out[0].value[op]

    run.driver = driver  # type: ignore[attr-defined]
    return run


def test_a_keys_windows_come_in_start_order_and_never_a_longer_keys(run: Any) -> None:
    for key, start, value in (("a", 30, 3), ("a", 10, 1), ("ab", 20, 9), ("a", 20, 2), ("b", 0, 7)):
        run(key, "wput", [start, value])
    assert run("a", "wfetch", [0, 100]) == [[10, 1], [20, 2], [30, 3]]
    assert run("a", "wfetch", [15, 30]) == [[20, 2], [30, 3]]
    assert run("a", "wget", 20) == 2
    assert run("a", "wget", 25) is None
    # Every key's, by key bytes then start; a window ends `window_size` after it starts.
    assert run("x", "wall", [0, 25]) == [
        ["a", 10, 20, 1],
        ["a", 20, 30, 2],
        ["ab", 20, 30, 9],
        ["b", 0, 10, 7],
    ]
    run("a", "wput", [20, None])  # None deletes
    assert run("a", "wfetch", [0, 100]) == [[10, 1], [30, 3]]


def test_windows_expire_retention_behind_the_latest_written(run: Any, app: App) -> None:
    run("a", "wput", [0, 1])
    run("a", "wput", [100, 2])  # 0 is 100 behind: expired
    assert run("a", "wfetch", [0, 200]) == [[100, 2]]
    assert run("a", "wget", 0) is None
    run("b", "wput", [50, 5])  # within retention: kept
    run("b", "wput", [0, 5])  # expired: dropped and logged
    assert run("b", "wfetch", [0, 200]) == [[50, 5]]
    store = run.driver.stores.store("hits", 0)
    assert store.store_time == 100
    # Committed: the expired window has left the database too.
    assert sorted(
        app.module("serde").DESERIALIZERS["windowed_string_10"](k).start for k in store.read_all()
    ) == [50, 100]


def test_sessions_are_found_by_end_and_start(run: Any) -> None:
    for start, end, value in ((0, 5, "s1"), (10, 20, "s2"), (12, 15, "s3"), (30, 30, "s4")):
        run("u", "sput", [start, end, value])
    run("uv", "sput", [1, 2, "other"])
    # Ends at or after 15, starts at or before 25: by end, then start.
    assert run("u", "sfind", [15, 25]) == [[12, 15, "s3"], [10, 20, "s2"]]
    assert run("u", "sfind", [0, 100]) == [
        [0, 5, "s1"],
        [12, 15, "s3"],
        [10, 20, "s2"],
        [30, 30, "s4"],
    ]
    assert run("u", "sget", [10, 20]) == "s2"
    run("u", "sremove", [10, 20])
    assert run("u", "sget", [10, 20]) is None
    assert [s[:3] for s in run("x", "sall")] == [
        ["u", 0, 5],
        ["u", 12, 15],
        ["u", 30, 30],
        ["uv", 1, 2],
    ]
    run("u", "sput", [60, 80, "late"])  # sessions ending at 30 or before expire
    assert run("u", "sfind", [0, 100]) == [[60, 80, "late"]]
    run("u", "sput", [0, 30, "again"])  # ends at 30: expired, dropped
    assert run("u", "sfind", [0, 100]) == [[60, 80, "late"]]


def test_the_wrong_kind_of_store_is_a_clear_error(run: Any) -> None:
    assert (
        run("k", "kind", "hits")
        == "store 'hits' is a window store: use context.window_store('hits')"
    )


def test_windows_survive_a_restart_from_rocksdb(app: App, tmp_path: Path) -> None:
    """The store reopened on its database finds the key's windows and its latest window
    (so expiry goes on from there)."""
    state, backends = app.module("state"), app.module("backends")
    spec = state.STORES["hits"]
    serialize = app.module("serde").SERIALIZERS["windowed_string_10"]
    windowed = app.module("serde").Windowed
    backend = backends.RocksDBBackend(str(tmp_path / "db"))
    store = state.WindowStore(spec, 0, backend, lambda *a: None, lambda *a: None, print)
    for start in (0, 40, 80):
        store.put(serialize(windowed("a", start, start + 10)), start, start)
    store.flush()
    store.commit(3)
    backend.close()
    backend = backends.RocksDBBackend(str(tmp_path / "db"))
    store = state.WindowStore(spec, 0, backend, lambda *a: None, lambda *a: None, print)
    view = app.module("processors").WindowStore(lambda: store, "hits", lambda: 0)
    assert store.store_time == 80
    assert list(view.fetch("a", 0, 100)) == [(0, 0), (40, 40), (80, 80)]
    view.put("a", 190, 190)  # 80 and before: expired
    assert list(view.fetch("a", 0, 200)) == [(190, 190)]
    backend.close()


@pytest.mark.parametrize(
    ("store", "message"),
    [
        ('kind = "window"\nretention = "1h"', "window store 'w' has no window_size"),
        ('kind = "window"\nwindow_size = "1m"', "window store 'w' has no retention"),
        (
            'kind = "window"\nwindow_size = "1h"\nretention = "1m"',
            "window store 'w' keeps windows 1m, less than their size (1h)",
        ),
        (
            'kind = "session"\nwindow_size = "1m"\nretention = "1h"',
            "session store 'w' has no window size",
        ),
        ('retention = "1h"', "store 'w' is a key-value store: it has no retention"),
    ],
)
def test_window_and_session_store_declarations_are_checked(
    tmp_path: Path, store: str, message: str
) -> None:
    spec = tmp_path / "bad.toml"
    spec.write_text(
        f'app = "bad"\n[topics.in]\n[topics.out]\n[stores.w]\nkey = "string"\nvalue = "long"\n'
        f"{store}\n"
        '[[streams]]\nname = "s"\nfrom = "in"\n'
        'steps = [{ process = "collections:OrderedDict", stores = ["w"] }, { to = "out" }]\n'
    )
    with pytest.raises(SpecInvalid) as caught:
        load_spec(spec, look_up_modules=False)
    assert message in str(caught.value.errors), caught.value.errors


def test_interactive_queries_answer_a_keys_windows_and_sessions(run: Any, app: App) -> None:
    """A processor's window and session stores are queried as windowed aggregations' are."""
    run("a", "wput", [10, 1])
    run("a", "wput", [20, 2])
    run("a", "sput", [5, 8, "s"])
    queries = app.module("queries").Queries(
        run.driver.stores, None, "me", lambda t: 1, lambda: True
    )
    dispatch = app.module("server").dispatch

    def ask(path: str) -> tuple[int, Any]:
        response = dispatch(queries.routes(), "GET", path)
        return response.status, json.loads(response.body)

    status, body = ask("/stores/hits/keys/a")
    assert status == 200
    assert [(w["start"], w["end"], w["value"]) for w in body["windows"]] == [
        (10, 20, 1),
        (20, 30, 2),
    ]
    status, body = ask("/stores/visits/keys/a")
    assert status == 200
    assert [(w["start"], w["end"], w["value"]) for w in body["windows"]] == [(5, 8, "s")]
