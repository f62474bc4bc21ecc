"""A foreign-key join killed twice mid-stream (SIGKILL) and restarted on the same state: read
with read_committed, every order comes out exactly once, with its product, on the real broker.
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
from example_apps import build_example, committed_offsets, start_app

from kgen import topics

pytestmark = pytest.mark.broker

PRODUCTS = 1_000
ORDERS = 20_000


def _product(j: int) -> dict[str, object]:
    return {"name": f"n{j}", "price": j % 50 + 1}


def _order(i: int) -> dict[str, object]:
    return {"product": f"p{i % PRODUCTS}", "qty": 1 + i % 5}


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
    topics.produce_all(
        kafka_bootstrap,
        "order-rows",
        [(f"o{i}".encode(), json.dumps(_order(i)).encode()) for i in range(ORDERS)],
        timestamp=2_000,
    )
    app_dir = build_example("orders-with-products", app_id, tmp_path)
    log = tmp_path / "app.log"
    state = str(tmp_path / "state")
    responses = f"{app_id}-orders-fk-join-subscription-response-topic"
    kills = []
    # The second run starts where the first was killed: it is killed 8,000 results later.
    for threshold in (4_000, 12_000):
        app = start_app(app_dir, kafka_bootstrap, log, "--state-dir", state, "--batch-size", "200")
        deadline = time.monotonic() + 180
        while True:
            # Answers taken back on the orders' side: results written.
            done = sum(max(o, 0) for o in committed_offsets(kafka_bootstrap, app_id, responses, 3))
            if done >= threshold:
                break
            assert app.poll() is None and time.monotonic() < deadline, log.read_text()[-4000:]
            time.sleep(0.05)
        os.kill(app.pid, signal.SIGKILL)
        app.wait(30)
        kills.append(done)
    app = start_app(app_dir, kafka_bootstrap, log, "--state-dir", state, "--stop-when-idle", "8")
    assert app.wait(300) == 0, log.read_text()[-4000:]
    out = topics.read_committed(kafka_bootstrap, "orders-priced")
    priced = [json.loads(r.value) for r in out if r.value is not None]
    seen = [p["order"] for p in priced]
    assert len(seen) == ORDERS and len(set(seen)) == ORDERS, (len(seen), len(set(seen)))
    for p in priced:
        i = int(p["order"][1:])
        product = _product(i % PRODUCTS)
        qty = _order(i)["qty"]
        assert p == {
            "order": p["order"],
            "qty": qty,
            "product": product["name"],
            "total": qty * product["price"],  # type: ignore[operator]
        }, p
    print(f"fk join killed after {kills[0]} and {kills[1]} orders; {ORDERS} out, once each")
    assert "Traceback" not in log.read_text()
