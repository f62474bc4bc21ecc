"""Safe topology evolution: the state an app carries across deployments, kept in a lock beside
the generated app, and a changed spec checked against it.

- `lock`: the lock (application id, consumer group, sources, stores, internal topics, accepted
  resets), made from the AppPlan, written and read as TOML;
- `compare`: two locks -> the changes, the unsafe ones as located errors;
- `guard`: what `kgen build` and `kgen check` do with the committed lock;
- `report`: `kgen diff`, a change in topology terms.
"""
