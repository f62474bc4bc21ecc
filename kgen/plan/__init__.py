"""The second stage of the pipeline: a checked spec resolved into an `AppPlan`.

- `flow`: what flows between a stream's steps (stream, grouped stream, table, grouped table);
- `graph`: the spec's streams and steps wired into processor nodes;
- `planner`: spec -> `AppPlan`: names, topics, formats, sub-topologies, stores, and the fused
  code of each source (written by `kgen.codegen.fuse`);
- `models`: the plan itself, frozen dataclasses the templates only print;
- `describe`: the plan as text, Mermaid or dot (`kgen describe`, the generated README).

`kgen.spec.checks` uses `flow` and `graph` too, so a spec is checked on the same graph it is
planned from. Import the modules themselves: `from kgen.plan.planner import plan`.
"""
