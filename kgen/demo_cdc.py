"""`kgen demo --cdc`: change data capture end to end, on this machine.

A real PostgreSQL (Debian's server binaries, a throw-away directory), a local Kafka (or
$KGEN_BOOTSTRAP_SERVERS), a Kafka Connect worker with Debezium's PostgreSQL connector; then
specs/cdc.toml is built, its connector deployed with the generated `python -m cdc connect
apply`, the app started, and rows inserted, updated and deleted in the database. What the
app keeps in its compacted topic is printed beside the database's table, and both must agree.
Everything started here is stopped at the end.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer

from kgen.demo import bootstrap_servers, build, reset_topics, say

EVENTS, TABLE = "shop.public.customers", "customers"
# The demo's story, one statement per line as it is printed; the table ends as ROWS.
CHANGES = (
    "INSERT INTO customers VALUES (3, 'Grace', 'grace@example.com')",
    "UPDATE customers SET email = 'ada@lovelace.org' WHERE id = 1",
    "DELETE FROM customers WHERE id = 2",
)
SEED = (
    "CREATE TABLE customers (id int PRIMARY KEY, name text NOT NULL, email text NOT NULL);"
    "INSERT INTO customers VALUES (1, 'Ada', 'ada@example.com'), (2, 'Alan', 'alan@example.com')"
)
# Two snapshot records (op "r"), then one per change.
EXPECTED_RECORDS = 2 + len(CHANGES)
_WAIT_S = 120.0


def run_cdc_demo(spec_path: Path, generated: Path) -> int:
    from kgen.kafka.connect import ConnectWorker
    from kgen.postgres import LocalPostgres, PostgresError, find_bindir

    try:
        find_bindir()  # before anything starts: the one thing Maven cannot fetch
    except PostgresError as exc:
        say(str(exc))
        return 1
    built = build(spec_path, generated)
    if built is None:
        return 1
    plan, app_dir = built
    with ExitStack() as stack:
        bootstrap = bootstrap_servers(stack)
        reset_topics(bootstrap, plan)

        say("starting PostgreSQL (wal_level=logical) in a temporary directory...")
        pg = LocalPostgres()
        pg.start()
        stack.callback(say, "PostgreSQL stopped")
        stack.callback(pg.stop)
        say(f"PostgreSQL is up at {pg.dsn}")
        _sql(
            pg, SEED, "CREATE TABLE customers ...; INSERT INTO customers VALUES (1, ...), (2, ...)"
        )

        say("starting a Kafka Connect worker with Debezium's PostgreSQL connector")
        say("(Connect's jars and the plugin are fetched with Maven on the first run)...")
        worker = ConnectWorker(bootstrap, group_id=f"kgen-demo-connect-{uuid.uuid4().hex[:8]}")
        worker.start(timeout=180)
        stack.callback(say, "Connect worker stopped")
        stack.callback(worker.stop)
        say(f"Connect is up at {worker.url}")

        env = {
            **os.environ,
            "PYTHONPATH": str(app_dir.resolve()),
            "KAFKA_CONNECT_URL": worker.url,
            "SHOP_DB_HOST": pg.host,
            "SHOP_DB_PORT": str(pg.port),
            "SHOP_DB_USER": pg.user,
            "SHOP_DB_PASSWORD": "",  # the throw-away server trusts loopback connections
            "SHOP_DB_NAME": pg.database,
        }
        connect = [sys.executable, "-m", plan.package, "connect"]
        say(f"running: python -m {plan.package} connect apply   (KAFKA_CONNECT_URL={worker.url})")
        applied = subprocess.run(
            [*connect, "apply"], cwd=app_dir, env=env, timeout=300, check=False
        )
        if applied.returncode != 0:
            say(f"connect apply exited with {applied.returncode}")
            return 1
        stack.callback(
            subprocess.run, [*connect, "delete"], cwd=app_dir, env=env, timeout=120, check=False
        )
        # The app reads Debezium's topic from the start: the snapshot first, then the changes.
        say(f"running: python -m {plan.package} --bootstrap-servers {bootstrap}")
        app = subprocess.Popen(
            [sys.executable, "-m", plan.package, "--bootstrap-servers", bootstrap],
            cwd=app_dir,
            env=env,
        )
        stack.callback(_stop_app, app)
        for statement in CHANGES:
            _sql(pg, statement + ";", statement)

        records = _read(bootstrap, TABLE, EXPECTED_RECORDS)
        say(f"what the app wrote to {TABLE!r} (read_committed), one record per change:")
        kept: dict[int, Any] = {}
        for key, value in records:
            print(f"    key={json.dumps(key)} value={json.dumps(value)}")
            if value is None:
                kept.pop(key["id"], None)
            else:
                kept[key["id"]] = value
        database = _rows(pg)
        say("the table as the topic keeps it (latest value per key, tombstones dropped):")
        for row in kept.values():
            print(f"    {row['id']} | {row['name']} | {row['email']}")
        say("the table in PostgreSQL:")
        for row in database.values():
            print(f"    {row['id']} | {row['name']} | {row['email']}")
        if len(records) != EXPECTED_RECORDS or kept != database:
            say(
                f"they differ ({len(records)} of {EXPECTED_RECORDS} records within {_WAIT_S:.0f} s)"
            )
            return 1
        say("they are equal")
        if _stop_app(app) != 0:
            return 1
    return 0


def _sql(pg: Any, sql: str, shown: str) -> None:
    print(f"    psql> {shown}", flush=True)
    pg.execute(sql)


def _rows(pg: Any) -> dict[int, dict[str, Any]]:
    rows: dict[int, dict[str, Any]] = {}
    for line in filter(
        None, pg.execute("SELECT id, name, email FROM customers ORDER BY id").splitlines()
    ):
        row_id, name, email = line.split("|")
        rows[int(row_id)] = {"id": int(row_id), "name": name, "email": email}
    return rows


def _read(bootstrap: str, topic: str, expected: int) -> list[tuple[Any, Any]]:
    """(key, value) of `topic`'s first `expected` committed records, JSON-decoded (None for a
    tombstone); fewer if they do not come within _WAIT_S."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"kgen-demo-reader-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    records: list[tuple[Any, Any]] = []
    deadline = time.monotonic() + _WAIT_S
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


def _stop_app(app: subprocess.Popen[bytes]) -> int:
    """SIGTERM the app (it commits and exits 0) unless it has exited; its exit code."""
    if app.poll() is not None:
        return app.returncode
    app.send_signal(signal.SIGTERM)
    try:
        app.wait(60)
    except subprocess.TimeoutExpired:
        app.kill()
        app.wait()
    say(f"app stopped (exit {app.returncode})")
    return app.returncode
