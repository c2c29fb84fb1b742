"""Name -> factory registries, one per kind of extension point, with did-you-mean errors.

Owns the mapping from the names users write in YAML and on the command line (`--format moshi-finetune`,
`loss: dpo_ln`) to the Python objects that implement them. `duplexalign ls` lists every registry. A
module registers its components at import; `Registry.get` imports the modules listed for its kind first,
so that heavy backends are only imported when asked for.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from duplexalign.errors import ConfigError

T = TypeVar("T")

_ALL: dict[str, Registry[Any]] = {}


class Registry(Generic[T]):
    """A named dict of components with `register`/`get` and near-miss suggestions.

    Args:
        kind: what the registry holds, e.g. "ingest format".
        modules: modules that register into it, imported lazily on first lookup.
    """

    def __init__(self, kind: str, modules: tuple[str, ...] = ()):
        self.kind = kind
        self._modules = modules
        self._items: dict[str, T] = {}
        self._loaded = False
        _ALL[kind] = self

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator that registers `obj` under `name`."""

        def deco(obj: T) -> T:
            if name in self._items and self._items[name] is not obj:
                raise ValueError(f"{self.kind} {name!r} registered twice")
            self._items[name] = obj
            return obj

        return deco

    def add(self, name: str, obj: T) -> T:
        """Register `obj` under `name` (non-decorator form)."""
        return self.register(name)(obj)

    def _load(self) -> None:
        if self._loaded:
            return
        for mod in self._modules:
            try:
                importlib.import_module(mod)
            except ModuleNotFoundError as e:
                if e.name != mod:  # a real missing dependency inside the module: say so
                    raise
                # a listed module that is not there is a packaging bug, not an empty registry
                raise ImportError(f"{self.kind} registry lists module {mod!r}, which does not "
                                  "exist") from e
        self._loaded = True

    def get(self, name: str) -> T:
        """Return the component called `name`; raise ConfigError with suggestions if unknown."""
        self._load()
        if name not in self._items:
            close = difflib.get_close_matches(name, list(self._items), n=3, cutoff=0.5)
            hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
            raise ConfigError(
                f"unknown {self.kind} {name!r}{hint} (known: {', '.join(sorted(self._items))})"
            )
        return self._items[name]

    def names(self) -> list[str]:
        """Sorted names of every registered component."""
        self._load()
        return sorted(self._items)

    def __contains__(self, name: str) -> bool:
        self._load()
        return name in self._items


def all_registries() -> dict[str, Registry[Any]]:
    """Every registry created so far, by kind (import the stage packages first to see them all)."""
    return dict(_ALL)
