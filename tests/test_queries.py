"""Interactive queries answered by the instance that owns the key's partition (here: the test
driver's stores, one partition): a key's value, a windowed key's windows (filtered by start),
a missing key, a store that answers no queries, a bad key, and one instance's part of a range,
paged. Forwarding between instances and a rebalance are in test_queries_broker.py."""

from __future__ import annotations

import json
from typing import Any

import pytest
from conftest import App, BuildApp

SPEC = """
app = "iq"

[topics.clicks]
partitions = 1

[topics.per-minute]
value = "long"

[topics.totals]
value = "long"

[[streams]]
name = "minutes"
from = "clicks"
steps = [
  { group_by_key = true },
  { tumbling = "1m", grace = "1m" },
  { count = true, store = "per-minute" },
  { to_stream = true },
  { to = "per-minute" },
]

[[streams]]
name = "totals"
from = "clicks"
steps = [
  { group_by_key = true },
  { count = true, store = "totals" },
  { suppress = "1s", store = "totals-held" },
  { to_stream = true },
  { to = "totals" },
]
"""


@pytest.fixture(scope="module")
def app(build_app: BuildApp) -> App:
    return build_app(SPEC, "iq")


@pytest.fixture
def ask(app: App) -> Any:
    driver = app.module("driver").TopologyTestDriver()
    records = [("a", 1_000), ("a", 2_000), ("b", 3_000), ("a", 61_000), ("é /?%", 5)]
    for i, (key, ts) in enumerate(records):
        driver.pipe_input("clicks", key, f"v{i}", timestamp=ts)
    queries = app.module("queries").Queries(driver.stores, None, "me", lambda t: 1, lambda: True)
    dispatch = app.module("server").dispatch

    def get(path: str) -> tuple[int, Any]:
        response = dispatch(queries.routes(), "GET", path)
        return response.status, json.loads(response.body)

    return get


def test_a_keys_value_with_its_timestamp(ask: Any) -> None:
    assert ask("/stores/totals/keys/a") == (
        200,
        {"store": "totals", "key": "a", "partition": 0, "value": 3, "timestamp": 61_000},
    )
    # A key in the path is percent-encoded, as a client sends it.
    assert ask("/stores/totals/keys/%C3%A9%20%2F%3F%25")[1]["key"] == "é /?%"
    status, body = ask("/stores/totals/keys/zz")
    assert status == 404 and body["error"] == "no such key"


def test_a_windowed_keys_windows_filtered_by_start(ask: Any) -> None:
    status, body = ask("/stores/per-minute/keys/a")
    assert status == 200
    assert [(w["start"], w["end"], w["value"]) for w in body["windows"]] == [
        (0, 60_000, 2),
        (60_000, 120_000, 1),
    ]
    status, body = ask("/stores/per-minute/keys/a?from=30000&to=90000")
    assert [w["start"] for w in body["windows"]] == [60_000]
    assert ask("/stores/per-minute/keys/c")[0] == 404
    assert ask("/stores/per-minute/range")[0] == 400  # windowed: by key only


def test_stores_that_answer_no_queries_and_bad_input(ask: Any) -> None:
    status, body = ask("/stores/totals-held/keys/a")  # a suppression buffer
    assert status == 404 and body["stores"] == ["per-minute", "totals"]
    assert ask("/stores/totals/range?limit=0")[0] == 400


def test_one_instances_part_of_a_range_paged(ask: Any) -> None:
    status, body = ask("/stores/totals/all?local=1&limit=1")
    assert status == 200 and body["partitions"] == [0]
    assert [bytes.fromhex(k) for k, _ in body["entries"]] == [b"a"]
    status, body = ask("/stores/totals/range?local=1&after=a")
    assert [(bytes.fromhex(k), v["value"]) for k, v in body["entries"]] == [
        (b"b", 1),
        ("é /?%".encode(), 1),
    ]
    status, body = ask("/stores/totals/range?local=1&from=b&to=b")
    assert [bytes.fromhex(k) for k, _ in body["entries"]] == [b"b"]


def test_not_ready_is_503_with_retry_after(app: App) -> None:
    driver = app.module("driver").TopologyTestDriver()
    queries = app.module("queries").Queries(driver.stores, None, "me", lambda t: 1, lambda: False)
    response = app.module("server").dispatch(queries.routes(), "GET", "/stores/totals/all?local=1")
    assert response.status == 503 and response.headers == {"Retry-After": "1"}
