"""Python modules looked up (and imported) the way a generated app will import them: on the
Python path of the running interpreter, each once per lookup."""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType


class ModuleLookup:
    """Finds and imports modules for one run of the checks, each once."""

    def __init__(self) -> None:
        self._found: dict[str, str] = {}
        self._loaded: dict[str, ModuleType | str] = {}

    def find(self, module: str) -> str:
        """'' when `module` can be imported, else why not."""
        if module not in self._found:
            self._found[module] = _find(module)
        return self._found[module]

    def load(self, module: str) -> ModuleType | str:
        """The module, imported; or why it cannot be."""
        if module not in self._loaded:
            self._loaded[module] = self.find(module) or _import(module)
        return self._loaded[module]


def _find(module: str) -> str:
    try:
        found = importlib.util.find_spec(module)
    except ModuleNotFoundError as exc:  # a parent package is missing
        return f"no module named {exc.name or module!r}"
    except Exception as exc:  # a parent package fails to import
        return f"importing {module!r} fails: {type(exc).__name__}: {exc}"
    return "" if found is not None else f"no module named {module!r}"


def _import(module: str) -> ModuleType | str:
    try:
        return importlib.import_module(module)
    except (Exception, SystemExit) as exc:  # user code: anything can go wrong at import
        return f"importing {module!r} fails: {type(exc).__name__}: {exc}"
