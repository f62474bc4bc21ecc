"""specs/cdc.toml end to end, as committed in generated/cdc: its Debezium connector applied with
`python -m cdc connect apply` to the real Connect worker, reading the real PostgreSQL server;
the app turning the change events into the customers table (rows, and a tombstone for a delete)
in its compacted topic."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer

from kgen import topics
from kgen.kafka.connect import ConnectWorker
from kgen.postgres import LocalPostgres

APP = Path(__file__).resolve().parent.parent / "generated" / "cdc"
CONNECTOR = "shop-customers"
EVENTS, TABLE = "shop.public.customers", "customers"
RANDOM_CHANGES = 150


def _records(bootstrap: str, topic: str, expected: int, timeout: float = 60.0) -> list[Any]:
    """(key, value) of `topic`'s committed records, JSON-decoded (None for a tombstone)."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"check-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed",
        }
    )
    consumer.subscribe([topic])
    records: list[Any] = []
    deadline = time.monotonic() + timeout
    try:
        while len(records) < expected and time.monotonic() < deadline:
            message = consumer.poll(0.2)
            if message is None or message.error() is not None:
                continue
            key, value = message.key(), message.value()
            records.append((key and json.loads(key), value and json.loads(value)))
    finally:
        consumer.close()
    return records


@pytest.mark.broker
def test_cdc_keeps_the_table_with_tombstones(
    connect_worker: ConnectWorker, local_postgres: LocalPostgres
) -> None:
    pg = local_postgres
    # Other tests (the CDC demo, generated/cdc's own) use the same topics and group.
    bootstrap = connect_worker.bootstrap_servers
    topics.recreate_topics(bootstrap, {EVENTS: 1}, ["cdc"])
    topics.recreate_topics(bootstrap, {TABLE: 1}, config={"cleanup.policy": "compact"})
    pg.execute(
        "CREATE TABLE customers (id int PRIMARY KEY, name text NOT NULL, email text NOT NULL);"
        "INSERT INTO customers VALUES (1, 'Ada', 'ada@example.com');"
    )
    env = {
        **os.environ,
        "PYTHONPATH": str(APP),
        "KAFKA_CONNECT_URL": connect_worker.url,
        "SHOP_DB_HOST": pg.host,
        "SHOP_DB_PORT": str(pg.port),
        "SHOP_DB_USER": pg.user,
        "SHOP_DB_PASSWORD": "",  # the local server trusts loopback connections
        "SHOP_DB_NAME": pg.database,
    }
    connect = [sys.executable, "-m", "cdc", "connect"]
    applied = subprocess.run(
        [*connect, "apply"], cwd=APP, env=env, capture_output=True, text=True, check=False
    )
    app = None
    try:
        assert applied.returncode == 0, applied.stdout + applied.stderr
        assert f"{CONNECTOR}: running" in applied.stdout
        # The snapshot's event: the slot exists, later changes are streamed; and the events'
        # topic exists (Debezium creates it), which the app needs at start.
        [(key, event)] = _records(connect_worker.bootstrap_servers, EVENTS, 1)
        assert key == {"id": 1} and event["op"] == "r"
        app = subprocess.Popen(
            [sys.executable, "-m", "cdc", "--bootstrap-servers", connect_worker.bootstrap_servers],
            cwd=APP,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        pg.execute(
            "INSERT INTO customers VALUES (2, 'Alan', 'alan@example.com');"
            "UPDATE customers SET email = 'ada@lovelace.org' WHERE id = 1;"
            "DELETE FROM customers WHERE id = 2;"
        )
        assert _records(connect_worker.bootstrap_servers, TABLE, 4) == [
            ({"id": 1}, {"id": 1, "name": "Ada", "email": "ada@example.com"}),
            ({"id": 2}, {"id": 2, "name": "Alan", "email": "alan@example.com"}),
            ({"id": 1}, {"id": 1, "name": "Ada", "email": "ada@lovelace.org"}),
            ({"id": 2}, None),
        ]
        # Then random inserts, updates and deletes (seeded) in a few transactions: the table
        # the app keeps in its topic must equal the database's, with one record per change.
        rng = random.Random(14)
        present, statements = {1}, []
        for n in range(RANDOM_CHANGES):
            row = rng.randint(1, 25)
            email = f"'c{row}-{n}@example.com'"
            if row not in present:
                statements.append(f"INSERT INTO customers VALUES ({row}, 'c{row}', {email});")
                present.add(row)
            elif rng.random() < 0.3:
                statements.append(f"DELETE FROM customers WHERE id = {row};")
                present.discard(row)
            else:
                statements.append(f"UPDATE customers SET email = {email} WHERE id = {row};")
        for start in range(0, len(statements), 40):
            pg.execute("".join(statements[start : start + 40]))
        rows = pg.execute("SELECT id, name, email FROM customers ORDER BY id")
        expected = {}
        for line in filter(None, rows.splitlines()):
            row_id, name, email = line.split("|")
            expected[int(row_id)] = {"id": int(row_id), "name": name, "email": email}
        assert len(expected) >= 10, rows  # the seed leaves a table worth comparing
        total = 4 + len(statements)
        records = _records(connect_worker.bootstrap_servers, TABLE, total, timeout=90)
        assert len(records) == total
        table: dict[int, Any] = {}
        for key, value in records:
            if value is None:
                table.pop(key["id"], None)
            else:
                table[key["id"]] = value
        assert table == expected
    finally:
        if app is not None:
            app.send_signal(signal.SIGTERM)
            _, errors = app.communicate(timeout=60)
            assert app.returncode == 0, errors[-3000:]
        subprocess.run([*connect, "delete"], cwd=APP, env=env, check=False, timeout=60)
