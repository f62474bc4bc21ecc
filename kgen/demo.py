"""`kgen demo`: the main job end to end, on this machine.

Start a local Kafka (or use $KGEN_BOOTSTRAP_SERVERS), build the spec, produce its test cases'
input records as sample data, run the generated app until it is idle, and print what it wrote
as a read_committed consumer sees it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from confluent_kafka import Producer

from kgen import topics
from kgen.codegen import emit, render
from kgen.plan.models import AppPlan
from kgen.plan.planner import plan as make_plan
from kgen.spec.errors import SpecInvalid
from kgen.spec.load import load_spec


def say(text: str) -> None:
    print(f"[kgen demo] {text}", flush=True)


def bootstrap_servers(stack: ExitStack) -> str:
    """$KGEN_BOOTSTRAP_SERVERS, else a local broker started here and stopped by `stack`."""
    existing = os.environ.get("KGEN_BOOTSTRAP_SERVERS")
    if existing:
        say(f"using the brokers in KGEN_BOOTSTRAP_SERVERS: {existing}")
        return existing
    from kgen.kafka import LocalKafka, fetch, is_fetched

    if not is_fetched():
        say("fetching the Kafka broker jars with Maven (first run only)...")
    fetch()
    broker = LocalKafka()
    say("starting a local single-node Kafka (KRaft)...")
    bootstrap = broker.start()
    stack.callback(broker.stop)
    stack.callback(say, "local Kafka stopped")
    say(f"Kafka is up at {bootstrap}")
    return bootstrap


def _show(value: Any) -> str:
    return "null" if value is None else repr(value)


def build(spec_path: Path, generated: Path) -> tuple[AppPlan, Path] | None:
    """Build `spec_path` into `generated/<package>`: its plan and the app's directory; None
    (the errors printed) for an invalid spec."""
    try:
        loaded = load_spec(spec_path)
    except SpecInvalid as exc:
        print(exc.format(), file=sys.stderr)
        return None
    plan = make_plan(loaded)
    app_dir = generated / plan.package
    changed = emit.write(render.render(plan), app_dir)
    say(f"built {loaded.display_path} -> {app_dir}/ ({len(changed)} files changed)")
    return plan, app_dir


def reset_topics(bootstrap: str, plan: AppPlan) -> None:
    """The app's topics fresh (with their spec config, e.g. compaction) and no committed
    offsets of its group, so a rerun shows this run's records only."""
    topics.recreate_topics(bootstrap, {}, groups=[plan.app_id])
    for t in plan.topics:
        topics.recreate_topics(bootstrap, {t.name: t.partitions or 1}, config=dict(t.config))


def run_demo(spec_path: Path, generated: Path) -> int:
    built = build(spec_path, generated)
    if built is None:
        return 1
    plan, app_dir = built
    inputs = [r for case in plan.tests for r in case.inputs]
    if not inputs:
        say("the spec declares no test cases, so there is no sample data to feed")
        return 1

    with ExitStack() as stack:
        bootstrap = bootstrap_servers(stack)
        # The app's own settings module knows its formats; import it from the generated folder.
        sys.path.insert(0, str(app_dir.resolve()))
        serde = __import__(f"{plan.package}.serde", fromlist=["SERIALIZERS"])
        reset_topics(bootstrap, plan)
        formats = {t.name: t for t in plan.topics}
        producer = Producer({"bootstrap.servers": bootstrap})
        say(f"producing {len(inputs)} sample records:")
        for r in inputs:
            t = formats[r.topic]
            print(f"    {r.topic:<20} key={_show(r.key)} value={_show(r.value)}")
            producer.produce(
                r.topic,
                serde.SERIALIZERS[t.value_format](r.value),
                serde.SERIALIZERS[t.key_format](r.key),
                timestamp=r.timestamp or 0,
            )
        producer.flush(30)
        del producer

        say(f"running: python -m {plan.package} --bootstrap-servers {bootstrap} --stop-when-idle 3")
        env = {**os.environ, "PYTHONPATH": str(app_dir.resolve())}
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                plan.package,
                "--bootstrap-servers",
                bootstrap,
                "--stop-when-idle",
                "3",
            ],
            cwd=app_dir,
            env=env,
            timeout=300,
            check=False,
        )
        if result.returncode != 0:
            say(f"the app exited with {result.returncode}")
            return 1

        deserializers = serde.DESERIALIZERS
        outputs = [t for t in plan.topics if t.is_sink or t.is_dead_letter]
        say("what the app wrote (read_committed):")
        for t in outputs:
            records = topics.read_committed(bootstrap, t.name)
            key_fmt = "bytes" if t.is_dead_letter else t.key_format
            value_fmt = "bytes" if t.is_dead_letter else t.value_format
            print(f"  {t.name}: {len(records)} record{'s' if len(records) != 1 else ''}")
            for rec in sorted(records, key=lambda r: (r.partition, r.offset)):
                key = deserializers[key_fmt](rec.key)
                value = deserializers[value_fmt](rec.value)
                print(f"    key={_show(key)} value={_show(value)}")
    return 0
