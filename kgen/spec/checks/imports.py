"""The modules a generated app imports at start: those of `imports` and of function references.
One that cannot be imported would stop the app with a traceback, so kgen reports it here.

kgen looks modules up on the Python path it runs with, as the app will when it imports them:
the active environment, PYTHONPATH, and the current directory under `python -m kgen` (not the
spec's directory). A module of `imports` is only found (importlib.util.find_spec, which imports
its parent packages); a function reference's module is imported, to see that it defines the
function, so its top-level code runs at build time. Modules listed in runtime_only_modules, and
their submodules, are not looked up; nor is any module with --no-import-check.
"""

from __future__ import annotations

import sys

from kgen.spec import expr
from kgen.spec.checks.base import Checks, did_you_mean
from kgen.spec.errors import Loc
from kgen.spec.models import Spec

_OPT_OUT = (
    "if it exists only where the app runs, list it in runtime_only_modules (or pass "
    "--no-import-check)"
)


def _runtime_only(spec: Spec, module: str) -> bool:
    return any(module == m or module.startswith(f"{m}.") for m in spec.runtime_only_modules)


def _looked_up(c: Checks, module: str) -> bool:
    # Without a valid runtime_only_modules, any module may be one of them.
    return not (
        c.lookup is None or c.damage.broken("runtime_only_modules") or _runtime_only(c.spec, module)
    )


def _missing_hint(problem: str, module: str) -> str:
    """What to do about a module that cannot be found."""
    if not problem.startswith("no module named"):
        return f"fix the module: the app imports it at start; {_OPT_OUT}"
    close = ""
    if "." not in module:
        # A misspelled standard library module: 'datetim'.
        close = did_you_mean(module, sorted(sys.stdlib_module_names))
    where = (
        "install it where kgen and the app run (kgen looks modules up on the Python path it "
        f"runs with); {_OPT_OUT}"
    )
    return f"{close} If not, {where}" if close else where


def check_imports(c: Checks) -> None:
    """Every module of `imports` can be found."""
    for i, module in enumerate(c.spec.imports):
        if c.lookup is None or not _looked_up(c, module):
            continue
        if module.split(".")[0] in expr.RECORD_NAMES:
            continue  # reported as hiding a record field
        problem = c.lookup.find(module)
        if problem:
            c.error(("imports", i), problem, _missing_hint(problem, module))


def check_function(c: Checks, loc: Loc, ref: str) -> None:
    """The module of `ref` ('module:function') imports and defines the function."""
    module, name = ref.split(":")
    if c.lookup is None or not _looked_up(c, module):
        return
    found = c.lookup.load(module)
    if isinstance(found, str):
        c.error(loc, f"{found} (for {ref!r})", _missing_hint(found, module))
        return
    if not hasattr(found, name):
        defined = [n for n in vars(found) if not n.startswith("_") and callable(vars(found)[n])]
        c.error(loc, f"module {module!r} has no function {name!r}", did_you_mean(name, defined))
    elif not callable(getattr(found, name)):
        c.error(
            loc,
            f"{name!r} in module {module!r} is not a function",
            "the app calls it with the record's key and value",
        )


def check_class(c: Checks, loc: Loc, ref: str) -> None:
    """The module of `ref` ('module:Class') imports and defines a class with the methods a
    processor has."""
    module, name = ref.split(":")
    if c.lookup is None or not _looked_up(c, module):
        return
    found = c.lookup.load(module)
    if isinstance(found, str):
        c.error(loc, f"{found} (for {ref!r})", _missing_hint(found, module))
        return
    cls = getattr(found, name, None)
    if cls is None:
        defined = [n for n, v in vars(found).items() if isinstance(v, type)]
        c.error(loc, f"module {module!r} has no class {name!r}", did_you_mean(name, defined))
    elif not isinstance(cls, type):
        c.error(
            loc,
            f"{name!r} in module {module!r} is not a class",
            "the app makes one instance of it per task: class X with init(context), "
            "process(record) and close()",
        )
    else:
        missing = [m for m in ("init", "process", "close") if not callable(getattr(cls, m, None))]
        if missing:
            c.error(
                loc,
                f"class {name!r} has no method {', '.join(missing)}",
                "a processor has init(self, context), process(self, record) and close(self)",
            )
