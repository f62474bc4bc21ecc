"""Foreign-key joins: the spec's mistakes, located; hand-written cases through the driver (an
order before its product exists, a product deleted and created again, an order that changes
product twice, a null foreign key, an order deleted); the names of the internal topics and of
the subscription store. (Their semantics: the conformance twin fk-join, diffed against Kafka
Streams; the crash test: tests/test_fk_join_broker.py.)"""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import BuildApp

from kgen.plan.planner import plan
from kgen.spec.errors import SpecInvalid
from kgen.spec.load import load_spec

SPEC_PATH = Path(__file__).parent.parent / "specs" / "orders-with-products.toml"

HEAD = (
    'app = "bad"\n[topics.a]\n[topics.b]\n[topics.o]\n'
    '[[tables]]\nname = "t"\nfrom = "b"\nstore = "t"\n'
)


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        (
            '[[streams]]\nname = "s"\nfrom = "a"\nsteps = [{ join = "t", foreign_key = "value", '
            'joiner = "other" }, { to = "o" }]\n',
            "foreign_key joins a table with a [[tables]] entry",
        ),
        (
            '[[tables]]\nname = "u"\nfrom = "a"\nstore = "u"\nsteps = [{ join = "t", '
            'foreign_key = "value", joiner = "other", how = "outer" }, { to = "o" }]\n',
            "a foreign-key join is inner or left",
        ),
        (
            '[[tables]]\nname = "u"\nfrom = "a"\nstore = "u"\nsteps = [{ join = "t", '
            'foreign_key = "valu", joiner = "other" }, { to = "o" }]\n',
            "unknown name 'valu'",
        ),
    ],
)
def test_foreign_key_mistakes_are_located(tmp_path: Path, entry: str, message: str) -> None:
    spec = tmp_path / "bad.toml"
    spec.write_text(HEAD + entry, encoding="utf-8")
    with pytest.raises(SpecInvalid) as info:
        load_spec(spec)
    text = info.value.format()
    assert message in text and ".steps[0]" in text and "bad.toml:1" in text, text


def test_internal_topics_and_store_are_named_like_kafka_streams() -> None:
    app = plan(load_spec(SPEC_PATH))
    internal = {t.name: t for t in app.internal_topics}
    sub = internal["orders-with-products-orders-fk-join-subscription-registration-topic"]
    resp = internal["orders-with-products-orders-fk-join-subscription-response-topic"]
    # Partitioned like the table whose key they carry.
    assert (sub.kind, sub.partitions_from) == ("repartition", ("products",))
    assert (resp.kind, resp.partitions_from) == ("repartition", ("order-rows",))
    assert "orders-with-products-orders-fk-join-subscription-store-changelog" in internal
    assert "orders-fk-join-subscription-store" in {s.name for s in app.stores}
    # No co-partitioning needed between the two tables.
    assert app.copartitioned == ()


def test_orders_follow_their_products(build_app: BuildApp) -> None:
    spec = SPEC_PATH.read_text(encoding="utf-8")
    driver = build_app(spec, "fk_cases").module("driver").TopologyTestDriver()

    def order(key: str, product: str | None, ts: int) -> None:
        value = None if product == "-" else {"product": product, "qty": 2}
        driver.pipe_input("order-rows", key, value, timestamp=ts)

    def product(key: str, price: int | None, ts: int) -> None:
        value = None if price is None else {"name": key.upper(), "price": price}
        driver.pipe_input("products", key, value, timestamp=ts)

    def out() -> list[tuple[str, object, int]]:
        return [
            (
                r.key,
                None if r.value is None else (r.value["product"], r.value["total"]),
                r.timestamp,
            )
            for r in driver.read_records("orders-priced")
        ]

    order("o1", "p1", 10)  # before its product exists: a left join shows it unknown
    assert out() == [("o1", ("unknown", 0), 10)]
    product("p1", 5, 20)
    assert out() == [("o1", ("P1", 10), 20)]
    product("p1", None, 30)  # deleted ...
    assert out() == [("o1", ("unknown", 0), 30)]
    product("p1", 7, 40)  # ... and created again
    assert out() == [("o1", ("P1", 14), 40)]
    product("p2", 1, 45)
    order("o1", "p2", 50)  # changes product twice
    order("o1", "p1", 60)
    # Each change: the old subscription goes quietly, the new one answers (at the later time
    # of the two rows).
    assert out() == [("o1", ("P2", 2), 50), ("o1", ("P1", 14), 60)]
    product("p2", 3, 70)  # o1 no longer follows p2
    assert out() == []
    order("o1", None, 80)  # a null foreign key: no product
    assert out() == [("o1", ("unknown", 0), 80)]
    product("p1", 9, 90)  # nor does it follow p1 any more
    assert out() == []
    order("o1", "-", 100)  # the order deleted: a tombstone
    assert out() == [("o1", None, 100)]
