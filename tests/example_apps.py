"""Building example apps under another application.id for broker tests, so that tests sharing
one broker never share a consumer group (or its lingering static members)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from kgen import emit, render
from kgen.load import load_spec
from kgen.planner import plan

ROOT = Path(__file__).resolve().parent.parent


def build_example(name: str, app_id: str, out: Path) -> Path:
    """specs/<name>.toml built as app `app_id` into `out`; returns the app's folder."""
    loaded = load_spec(ROOT / "specs" / f"{name}.toml", f"specs/{name}.toml")
    loaded = dataclasses.replace(loaded, spec=loaded.spec.model_copy(update={"app": app_id}))
    app_plan = plan(loaded)
    app_dir = out / app_plan.package
    emit.write(render.render(app_plan), app_dir)
    return app_dir
