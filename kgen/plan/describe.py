"""Pictures of a plan's topology: text in the spirit of Kafka Streams' Topology.describe(),
Mermaid and Graphviz dot."""

from __future__ import annotations

import json

from kgen.plan.models import AppPlan, Processor


def _predecessors(plan: AppPlan) -> dict[str, list[str]]:
    preds: dict[str, list[str]] = {}
    for sub in plan.subtopologies:
        for proc in sub.processors:
            for succ in proc.successors:
                preds.setdefault(succ, []).append(proc.name)
    return preds


def _label(proc: Processor) -> str:
    if proc.kind in ("source", "table_source", "global_source"):
        store = f", {proc.detail}" if proc.kind != "source" else ""
        return f"Source: {proc.name} (topics: [{', '.join(proc.topics)}]{store})"
    if proc.kind in ("sink", "dynamic_sink", "repartition"):
        which = (
            proc.topics[0]
            if proc.kind != "dynamic_sink"
            else "one of [" + ", ".join(proc.topics) + "]"
        )
        return f"Sink: {proc.name} (topic: {which})"
    return f"Processor: {proc.name} ({proc.detail})"


def text(plan: AppPlan) -> str:
    preds = _predecessors(plan)
    lines = [f"Topology of {plan.app_id} ({plan.guarantee}):", "Topologies:"]
    for sub in plan.subtopologies:
        suffix = " for global store (will not generate tasks)" if sub.global_store else ""
        lines.append(f"   Sub-topology: {sub.index}{suffix}")
        for proc in sub.processors:
            lines.append(f"    {_label(proc)}")
            if proc.successors:  # Kafka Streams prints no arrow out of a sink
                lines.append(f"      --> {', '.join(proc.successors)}")
            if proc.name in preds:
                lines.append(f"      <-- {', '.join(preds[proc.name])}")
    return "\n".join(lines) + "\n"


def _ids(plan: AppPlan) -> dict[str, str]:
    names = [p.name for sub in plan.subtopologies for p in sub.processors]
    topics = sorted({t for sub in plan.subtopologies for p in sub.processors for t in p.topics})
    ids = {f"proc:{n}": f"p{i}" for i, n in enumerate(names)}
    ids.update({f"topic:{t}": f"t{i}" for i, t in enumerate(topics)})
    return ids


def _mermaid_text(s: str) -> str:
    # Mermaid labels in double quotes take HTML entities; escape what could end the label.
    return (
        s.replace("&", "&amp;")
        .replace('"', "&quot;")
        .replace("\n", " ")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
    )


def mermaid(plan: AppPlan) -> str:
    ids = _ids(plan)
    lines = ["flowchart LR"]
    for key, node_id in ids.items():
        if key.startswith("topic:"):
            lines.append(f'    {node_id}[("{_mermaid_text(key[6:])}")]')
    for sub in plan.subtopologies:
        lines.append(f'    subgraph s{sub.index}["sub-topology {sub.index}"]')
        for proc in sub.processors:
            lines.append(
                f'        {ids["proc:" + proc.name]}["{_mermaid_text(proc.name)}<br/>{proc.kind}"]'
            )
        lines.append("    end")
    lines.extend(_edges(plan, ids, "    {a} --> {b}"))
    return "\n".join(lines) + "\n"


def _dot_text(s: str) -> str:
    # A JSON string is a valid dot string (quotes and backslashes escaped, a newline as \n,
    # which Graphviz prints as a line break); non-ASCII text stays as it is, since Graphviz
    # does not read \u escapes.
    return json.dumps(s, ensure_ascii=False)


def dot(plan: AppPlan) -> str:
    ids = _ids(plan)
    lines = [f"digraph {_dot_text(plan.app_id)} {{", "    rankdir=LR;"]
    for key, node_id in ids.items():
        if key.startswith("topic:"):
            lines.append(f"    {node_id} [shape=cylinder, label={_dot_text(key[6:])}];")
    for sub in plan.subtopologies:
        lines.append(f"    subgraph cluster_{sub.index} {{")
        lines.append(f"        label={_dot_text(f'sub-topology {sub.index}')};")
        for proc in sub.processors:
            label = _dot_text(f"{proc.name}\n{proc.kind}")
            lines.append(f"        {ids['proc:' + proc.name]} [shape=box, label={label}];")
        lines.append("    }")
    lines.extend(_edges(plan, ids, "    {a} -> {b};"))
    lines.append("}")
    return "\n".join(lines) + "\n"


def _edges(plan: AppPlan, ids: dict[str, str], fmt: str) -> list[str]:
    out: list[str] = []
    for sub in plan.subtopologies:
        for proc in sub.processors:
            me = ids["proc:" + proc.name]
            if proc.kind in ("source", "table_source", "global_source"):
                out.extend(fmt.format(a=ids["topic:" + t], b=me) for t in proc.topics)
            if proc.kind in ("sink", "dynamic_sink", "repartition"):
                out.extend(fmt.format(a=me, b=ids["topic:" + t]) for t in proc.topics)
            out.extend(fmt.format(a=me, b=ids["proc:" + s]) for s in proc.successors)
    return out
