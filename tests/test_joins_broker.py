"""A stream-table enrichment killed twice mid-stream (SIGKILL) and restarted on the same state:
read with read_committed, every order comes out exactly once, with the customer row it must
see, on the real broker."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from example_apps import build_example, kill_at_thresholds, start_app

from kgen import topics

pytestmark = pytest.mark.broker

PARTITIONS = 3
CUSTOMERS = 2_000
ORDERS = 30_000


def _customer(i: int) -> dict[str, str]:
    return {"name": f"n{i}", "tier": ("gold", "silver", "bronze")[i % 3]}


def test_enrichment_killed_twice_writes_each_order_once_with_its_customer(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    app_id = "join-crash"
    topics.recreate_topics(
        kafka_bootstrap,
        {"orders-by-customer": PARTITIONS, "customers": PARTITIONS, "orders-enriched": PARTITIONS},
        [app_id],
    )
    # Every row is on the broker, stamped before every order: each order sees its customer.
    topics.produce_all(
        kafka_bootstrap,
        "customers",
        [(f"c{i}".encode(), json.dumps(_customer(i)).encode()) for i in range(CUSTOMERS)],
        timestamp=1_000,
    )
    topics.produce_all(
        kafka_bootstrap,
        "orders-by-customer",
        [(f"c{i % CUSTOMERS}".encode(), json.dumps({"order": i}).encode()) for i in range(ORDERS)],
        timestamp=2_000,
    )
    app_dir = build_example("orders-with-customers", app_id, tmp_path)
    log = tmp_path / "app.log"
    state = str(tmp_path / "state")
    kills = kill_at_thresholds(
        app_dir,
        kafka_bootstrap,
        log,
        (app_id, "orders-by-customer", PARTITIONS),
        (6_000, 18_000),
        *("--state-dir", state, "--batch-size", "500"),
    )
    app = start_app(app_dir, kafka_bootstrap, log, "--state-dir", state, "--stop-when-idle", "5")
    assert app.wait(240) == 0, log.read_text()[-4000:]
    out = topics.read_committed(kafka_bootstrap, "orders-enriched")
    orders = [json.loads(r.value) for r in out if r.value is not None]
    seen = [o["order"] for o in orders]
    assert len(seen) == ORDERS and len(set(seen)) == ORDERS, (len(seen), len(set(seen)))
    for o in orders:
        customer = _customer(o["order"] % CUSTOMERS)
        assert (o["customer"], o["tier"]) == (customer["name"], customer["tier"]), o
    print(f"enrichment killed after {kills[0]} and {kills[1]} orders; {ORDERS} out, once each")
    assert "Traceback" not in log.read_text()
