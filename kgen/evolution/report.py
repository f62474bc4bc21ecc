"""`kgen diff OLD NEW`: a spec change in topology terms (processors added, removed or changed;
stores and internal topics affected) and whether the app's state must be reset."""

from __future__ import annotations

from kgen.evolution import compare, lock
from kgen.plan.models import AppPlan, Processor


def _processors(plan: AppPlan) -> dict[str, Processor]:
    return {p.name: p for sub in plan.subtopologies for p in sub.processors}


def _node(p: Processor) -> str:
    return f"{p.name} ({p.detail})" if p.detail else p.name


def diff(old: AppPlan, new: AppPlan) -> tuple[str, bool]:
    """The report, and whether some change needs a reset."""
    before, after = _processors(old), _processors(new)
    lines = [f"kgen diff {old.spec_path} -> {new.spec_path}", "", "processors:"]
    nodes = [f"  + {_node(after[n])}" for n in sorted(set(after) - set(before))]
    nodes += [f"  - {_node(before[n])}" for n in sorted(set(before) - set(after))]
    for name in sorted(set(before) & set(after)):
        a, b = before[name], after[name]
        parts = []
        if a.detail != b.detail:
            parts.append(f"{a.detail} -> {b.detail}")
        if a.topics != b.topics:
            parts.append(f"topics {', '.join(a.topics)} -> {', '.join(b.topics)}")
        if a.successors != b.successors:
            then = ", ".join(a.successors) or "nothing", ", ".join(b.successors) or "nothing"
            parts.append(f"then {then[0]} -> {then[1]}")
        if parts:
            nodes.append(f"  ~ {name}: {'; '.join(parts)}")
    lines += nodes or ["  (unchanged)"]
    changes = compare.changes(lock.from_plan(old), lock.from_plan(new))
    lines += ["", "state:"]
    lines += [f"  {'  ' if c.safe else '! '}{c.message}" for c in changes] or ["  (unchanged)"]
    unsafe = [c for c in changes if not c.safe]
    lines.append("")
    if unsafe:
        accept = " ".join(f"--accept-reset {s}" for s in dict.fromkeys(c.subject for c in unsafe))
        lines += [
            f"reset needed: {len(unsafe)} change{'s' if len(unsafe) != 1 else ''} marked ! "
            "lose or misread state.",
            f"  keep the old names (see `kgen build`'s errors), or accept: kgen build {accept}",
            f"  then stop every instance and run `python -m {new.package} reset --yes` before "
            "deploying",
        ]
    else:
        lines.append("safe: no reset needed")
    return "\n".join(lines) + "\n", bool(unsafe)
