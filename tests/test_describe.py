"""Pictures of a topology: describe() text, Mermaid and dot, on the examples and on names
that could break the picture's syntax."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from kgen.plan import describe
from kgen.plan.models import AppPlan
from kgen.plan.planner import plan as make_plan
from kgen.spec.load import load_spec

ROOT = Path(__file__).resolve().parent.parent


def plan_of(tmp_path: Path, text: str) -> AppPlan:
    path = tmp_path / "spec.toml"
    path.write_text(text, encoding="utf-8")
    return make_plan(load_spec(path))


@pytest.fixture(scope="module")
def orders() -> AppPlan:
    return make_plan(load_spec(ROOT / "specs/orders.toml", display_path="specs/orders.toml"))


def _blocks(text: str) -> dict[str, tuple[str, list[str], list[str]]]:
    """describe() text -> {name: (label, successors, predecessors)}."""
    out: dict[str, tuple[str, list[str], list[str]]] = {}
    current = ""
    for line in text.splitlines()[3:]:
        if m := re.match(r"^    (Source|Processor|Sink): (\S+) \((.*)\)$", line):
            current = m.group(2)
            out[current] = (f"{m.group(1)} ({m.group(3)})", [], [])
        elif m := re.match(r"^      (-->|<--) (.*)$", line):
            names = m.group(2).split(", ")
            out[current][1 if m.group(1) == "-->" else 2].extend(names)
        else:
            assert re.match(r"^   Sub-topology: \d+$", line), line
    return out


def test_orders_text_is_consistent(orders: AppPlan) -> None:
    text = describe.text(orders)
    assert text.startswith("Topology of orders (exactly_once):\nTopologies:\n   Sub-topology: 0\n")
    assert "   Sub-topology: 1\n" in text
    assert "   Sub-topology: 2\n" not in text
    blocks = _blocks(text)
    # Every arrow is drawn from both ends.
    for name, (_, successors, predecessors) in blocks.items():
        for succ in successors:
            assert name in blocks[succ][2], f"{name} --> {succ} without {succ} <-- {name}"
        for pred in predecessors:
            assert name in blocks[pred][1]
    assert blocks["orders-source"][0] == "Source (topics: [orders])"
    assert blocks["orders-select-key"][1] == ["items-flat-map", "sizes-branch", "totals-map-values"]
    assert blocks["sizes-branch"][0] == "Processor (branch sizes.large, sizes.small)"
    assert blocks["sizes.large-to"][0] == "Sink (topic: large-orders)"
    # The merge has both inputs; sources have no inputs, sinks no outputs.
    assert sorted(blocks["returns-merge"][2]) == ["returns-map-values", "returns-us-map-values"]
    assert all(not p for label, _, p in blocks.values() if label.startswith("Source"))
    assert all(not s for label, s, _ in blocks.values() if label.startswith("Sink"))


def test_orders_mermaid_and_dot_draw_every_topic_and_edge(orders: AppPlan) -> None:
    mermaid = describe.mermaid(orders)
    dot = describe.dot(orders)
    topics = re.findall(r'^    (t\d+)\[\("([^"]*)"\)\]$', mermaid, re.M)
    assert sorted(name for _, name in topics) == sorted(
        {*orders.source_topics, *orders.sink_topics}
    )
    mermaid_edges = re.findall(r"^    (\w+) --> (\w+)$", mermaid, re.M)
    dot_edges = re.findall(r"^    (\w+) -> (\w+);$", dot, re.M)
    assert mermaid_edges == dot_edges
    procs = [p for s in orders.subtopologies for p in s.processors]
    successors = sum(len(p.successors) for p in procs)
    topic_edges = sum(len(p.topics) for p in procs if p.kind in ("source", "sink"))
    # Processor edges plus one per source topic read and one per sink topic written.
    assert len(mermaid_edges) == successors + topic_edges == 18 + 3 + 5
    assert mermaid.count("<br/>") == len(procs)
    assert dot.count("subgraph cluster_") == len(orders.subtopologies) == 2


WEIRD = 'we"ird <b>&amp;\\n\nend é'


def test_names_cannot_break_the_pictures(tmp_path: Path) -> None:
    topic = json.dumps(WEIRD)  # also a valid TOML basic string
    plan = plan_of(
        tmp_path,
        f"""
app = "pics"
[topics.{topic}]
[topics.out]
[[streams]]
name = "s"
from = {topic}
steps = [{{ to = "out" }}]
""",
    )
    mermaid = describe.mermaid(plan)
    assert '    t1[("we&quot;ird &lt;b&gt;&amp;amp;\\n end é")]\n' in mermaid
    # One line per node: the newline did not split the label.
    assert len(mermaid.splitlines()) == 10

    dot = describe.dot(plan)
    assert '    t1 [shape=cylinder, label="we\\"ird <b>&amp;\\\\n\\nend é"];\n' in dot
    for line in dot.splitlines():
        # Every quote inside a line is escaped or delimits a string: an even count of bare ones.
        assert len(re.findall(r'(?<!\\)"', line.replace("\\\\", ""))) % 2 == 0, line

    text = describe.text(plan)
    assert f"Source: s-source (topics: [{WEIRD}])" in text


def test_dynamic_sink_and_branches_are_labelled(tmp_path: Path) -> None:
    plan = plan_of(
        tmp_path,
        """
app = "labels"
[topics.a]
[topics.b]
[topics.c]
[[streams]]
name = "s"
from = "a"
steps = [{ branch = [{ name = "one", when = "key == '1'" }, { name = "rest", to = "c" }] }]
[[streams]]
name = "route"
from_stream = "s.one"
steps = [{ name = "pick", to = { topic = "'b'", topics = ["b", "c"] } }]
""",
    )
    blocks = _blocks(describe.text(plan))
    assert blocks["s-branch"] == (
        "Processor (branch s.one, s.rest)",
        ["s.one", "s.rest"],
        ["s-source"],
    )
    assert blocks["s.one"] == ("Processor (branch_child)", ["route-pick"], ["s-branch"])
    assert blocks["route-pick"] == ("Sink (topic: one of [b, c])", [], ["s.one"])
    dot = describe.dot(plan)
    pick = re.search(r'(p\d+) \[shape=box, label="route-pick\\ndynamic_sink"\];', dot)
    assert pick is not None
    targets = re.findall(rf"^    {pick.group(1)} -> (t\d+);$", dot, re.M)
    assert len(targets) == 2
