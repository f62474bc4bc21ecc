"""Micro-benchmark of a generated app's `json` format: `serialize_json` and `deserialize_json`
of the bench's records, timed with timeit (best of R repeats, µs per call).

    python -m bench.json_serde generated/orders/orders/serde.py [more serde.py files ...]

Each file is loaded as a module on its own, so two versions of the template (e.g. a copy of the
serde.py before a change, and the one after) can be timed side by side in one process.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import timeit
from pathlib import Path
from types import ModuleType
from typing import Any

from bench import data


def _load(path: Path, index: int) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"_serde_{index}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _cases() -> dict[str, tuple[str, Any]]:
    """name -> (function, argument): the transform's input value (decode) and its output value
    (encode), the enrich workload's joined value (encode)."""
    _key, value, obj = next(iter(data.records(2)))
    cents = round(obj["amount"] * 100)
    out = {"id": obj["id"], "user": obj["user"], "country": obj["country"]}
    out |= {"amount_cents": cents, "fee_cents": cents * 3 // 100}
    joined = {**obj, "tier": "gold", "user_country": "FR"}
    return {
        f"deserialize_json, input value ({len(value)} B)": ("deserialize_json", value),
        f"serialize_json, transform output ({len(json.dumps(out))} B)": ("serialize_json", out),
        f"serialize_json, enrich output ({len(json.dumps(joined))} B)": ("serialize_json", joined),
        f"serialize_json, input value ({len(value)} B)": ("serialize_json", obj),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.json_serde", description=__doc__)
    parser.add_argument("serde", nargs="+", type=Path, help="a generated app's serde.py")
    parser.add_argument("--number", type=int, default=200_000, help="calls per repeat")
    parser.add_argument("--repeat", type=int, default=7, help="repeats; the best one counts")
    args = parser.parse_args(argv)
    modules = [_load(path, i) for i, path in enumerate(args.serde)]
    print("| call | " + " | ".join(str(p) for p in args.serde) + " |")
    print("| --- |" + " --- |" * len(modules))
    for name, (function, argument) in _cases().items():
        cells = []
        for module in modules:
            call = getattr(module, function)
            times = timeit.repeat(
                "call(argument)",
                globals={"call": call, "argument": argument},
                number=args.number,
                repeat=args.repeat,
            )
            cells.append(f"{min(times) / args.number * 1e6:.2f} µs")
        print(f"| {name} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
