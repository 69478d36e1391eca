"""Running a function right after a module is first imported, so that a framework is
instrumented when the program imports it, and a program that never does pays nothing.

:func:`when_imported` runs ``hook(module)`` at once if the module is already imported, else
right after its first import finishes (from a finder on ``sys.meta_path`` that wraps the real
loader for that one import and puts it back on the module). A hook that raises is logged,
never raised into the importing code. Thread-safe: registration takes a lock; an import runs
its hooks in the importing thread, once.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import sys
import threading
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any

from spanhooks.util.log import logger

__all__ = ["cancel", "when_imported"]

Hook = Callable[[ModuleType], object]

_lock = threading.Lock()
_hooks: dict[str, list[Hook]] = {}
_finding = threading.local()


def when_imported(name: str, hook: Hook) -> bool:
    """Run ``hook(module)`` when module ``name`` is imported; True if it ran now (the module
    was already imported), False if it waits for the import."""
    module = sys.modules.get(name)
    if module is not None:
        _run(name, module, [hook])
        return True
    with _lock:
        _hooks.setdefault(name, []).append(hook)
        if not any(isinstance(finder, _Finder) for finder in sys.meta_path):
            sys.meta_path.insert(0, _Finder())
    return False


def cancel(name: str, hook: Hook) -> None:
    """Forget ``hook`` for ``name`` if it has not run yet."""
    with _lock:
        waiting = _hooks.get(name)
        if waiting and hook in waiting:
            waiting.remove(hook)
            if not waiting:
                del _hooks[name]


def _run(name: str, module: ModuleType, hooks: Sequence[Hook]) -> None:
    for hook in hooks:
        try:
            hook(module)
        except Exception:
            logger.warning("spanhooks: hook after importing %s failed", name, exc_info=True)


class _Finder(importlib.abc.MetaPathFinder):
    """Finds nothing itself: for a module with waiting hooks, it asks the other finders for
    the real spec and wraps that spec's loader."""

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in _hooks or getattr(_finding, "name", None) == fullname:
            return None
        _finding.name = fullname  # the lookup below comes back through this finder
        try:
            spec = importlib.util.find_spec(fullname)
        finally:
            _finding.name = None
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return None
        spec.loader = _Loader(spec.loader, fullname)
        return spec


class _Loader(importlib.abc.Loader):
    """The real loader, then the hooks; the module keeps the real loader."""

    def __init__(self, loader: Any, name: str) -> None:
        self.loader = loader
        self.name = name

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        created: ModuleType | None = self.loader.create_module(spec)
        return created

    def exec_module(self, module: ModuleType) -> None:
        module.__loader__ = self.loader
        if module.__spec__ is not None:
            module.__spec__.loader = self.loader
        self.loader.exec_module(module)
        with _lock:
            hooks = _hooks.pop(self.name, [])
        _run(self.name, module, hooks)
