"""A foreign-key join killed twice mid-stream (SIGKILL) and restarted on the same state: read
with read_committed, every order comes out exactly once, with its product, on the real broker;
orders that change product twice end with the last one.
Orders and products are not co-partitioned (the join needs none): each order's subscription
travels to its product's partition and the answer back, both through internal topics, inside
the same transactions as everything else."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest
from example_apps import build_example, committed_offsets, kill_at_thresholds, start_app

from kgen import topics

pytestmark = pytest.mark.broker

PRODUCTS = 1_000
ORDERS = 20_000
CHANGED = 2_000


def _product(j: int) -> dict[str, object]:
    return {"name": f"n{j}", "price": j % 50 + 1}


def _order(i: int, step: int = 0) -> dict[str, object]:
    return {"product": f"p{(i + step) % PRODUCTS}", "qty": 1 + i % 5}


def test_fk_join_killed_twice_writes_each_order_once_with_its_product(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    app_id = "fk-crash"
    # Not co-partitioned on purpose: 3 partitions of orders, 2 of products.
    topics.recreate_topics(
        kafka_bootstrap, {"order-rows": 3, "products": 2, "orders-priced": 3}, [app_id]
    )
    topics.produce_all(
        kafka_bootstrap,
        "products",
        [(f"p{j}".encode(), json.dumps(_product(j)).encode()) for j in range(PRODUCTS)],
        timestamp=1_000,
    )
    app_dir = build_example("orders-with-products", app_id, tmp_path)
    log = tmp_path / "app.log"
    state = str(tmp_path / "state")
    args = ("--state-dir", state, "--batch-size", "200")
    # Every product row is taken, committed and out of the store's cache before the first order
    # comes: a row whose update is still cached when an order subscribes answers that order
    # twice at the flush (the same result, as in Kafka Streams with its record cache), which
    # would hide a duplicate made by a crash.
    first = start_app(app_dir, kafka_bootstrap, log, *args)
    deadline = time.monotonic() + 120
    while (
        sum(max(o, 0) for o in committed_offsets(kafka_bootstrap, app_id, "products", 2)) < PRODUCTS
    ):
        assert first.poll() is None and time.monotonic() < deadline, log.read_text()[-4000:]
        time.sleep(0.1)
    topics.produce_all(
        kafka_bootstrap,
        "order-rows",
        [(f"o{i}".encode(), json.dumps(_order(i)).encode()) for i in range(ORDERS)],
        timestamp=2_000,
    )
    # The first orders change product twice, back to back: most pairs land between two
    # commits, where the second change replaces the first before it is ever subscribed.
    for step, timestamp in ((1, 3_000), (2, 3_001)):
        topics.produce_all(
            kafka_bootstrap,
            "order-rows",
            [(f"o{i}".encode(), json.dumps(_order(i, step)).encode()) for i in range(CHANGED)],
            timestamp=timestamp,
        )
    # Killed once results (answers taken back on the orders' side) reach 4,000, then once more
    # 8,000 later, in a second run.
    responses = f"{app_id}-orders-fk-join-subscription-response-topic"
    while (
        done := sum(max(o, 0) for o in committed_offsets(kafka_bootstrap, app_id, responses, 3))
    ) < 4_000:
        assert first.poll() is None and time.monotonic() < deadline + 60, log.read_text()[-4000:]
        time.sleep(0.05)
    os.kill(first.pid, signal.SIGKILL)
    first.wait(30)
    second = kill_at_thresholds(
        app_dir, kafka_bootstrap, log, (app_id, responses, 3), (12_000,), *args
    )
    kills = [done, *second]
    app = start_app(app_dir, kafka_bootstrap, log, "--state-dir", state, "--stop-when-idle", "8")
    assert app.wait(300) == 0, log.read_text()[-4000:]
    out = topics.read_committed(kafka_bootstrap, "orders-priced")
    priced = [json.loads(r.value) for r in out if r.value is not None]
    assert len(priced) == len(out), "no order was deleted: no tombstone"
    latest = {p["order"]: p for p in priced}
    assert len(latest) == ORDERS
    for p in priced:  # every result pairs an order with the product it named, priced right
        j = int(p["product"][1:])
        assert p["total"] == p["qty"] * _product(j)["price"], p  # type: ignore[operator]
    for order, p in latest.items():  # and the last one is the order's latest product
        i = int(order[1:])
        product = _product((i + (2 if i < CHANGED else 0)) % PRODUCTS)
        assert (p["product"], p["qty"]) == (product["name"], 1 + i % 5), p
    # Orders that never changed come out exactly once, however often the app was killed.
    once = [p["order"] for p in priced if int(p["order"][1:]) >= CHANGED]
    assert len(once) == len(set(once)) == ORDERS - CHANGED
    print(f"fk join killed after {kills[0]} and {kills[1]} orders; {len(priced)} results")
    assert "Traceback" not in log.read_text()
