"""The last stage of the pipeline: code for a plan, then files on disk.

- `fuse`: a source's chain of processors as straight-line Python, with `fuse_base` (names,
  serdes, expressions, failures) and `fuse_state` (tables, repartitions, aggregations);
  the planner calls it, so a plan carries its finished code;
- `render`: `AppPlan` -> {path: text}, the templates rendered and black-formatted in memory;
- `emit`: those files written to disk, or diffed against it (`kgen check`).

Import the modules themselves: `from kgen.codegen import emit, render`.
"""
