"""One small typed registry for methods, backbones and datasets.

Registries replace if/elif chains: adding a backbone is one `register` call, and an unknown name
gets an error that lists the known names and suggests the closest one.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Iterator
from typing import Any, ClassVar, Generic, TypeVar

from vrbench.errors import ConfigError

T = TypeVar("T")


def suggest(name: str, known: list[str]) -> str:
    """Return ' Did you mean 'x'?' for the closest known name, or '' when nothing is close."""
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.5)
    return f" Did you mean '{close[0]}'?" if close else ""


def unknown_name_message(kind: str, name: object, known: list[str]) -> str:
    """The one wording used for every unknown name, so users learn to read it once."""
    plural = kind[:-2] + "es" if kind.endswith("is") else kind + "s"  # "grid axis" -> "grid axes"
    return f"unknown {kind} '{name}'.{suggest(str(name), known)} Known {plural}: {', '.join(sorted(known))}."


class Registry(Generic[T]):
    """A name -> entry mapping with helpful errors; entries are plain metadata objects.

    ``paths`` names the entry fields that hold a lazily imported "module:attribute" implementation; every registry
    is listed in ``Registry.instances`` so one test can import every such path (a dangling one fails CI, not a run).
    """

    instances: ClassVar[list[Registry]] = []

    def __init__(self, kind: str, paths: tuple[str, ...] = ()) -> None:
        self.kind = kind
        self.paths = paths
        self._entries: dict[str, T] = {}
        Registry.instances.append(self)

    def register(self, name: str, entry: T) -> T:
        if name in self._entries:
            raise ValueError(f"{self.kind} '{name}' is registered twice")
        self._entries[name] = entry
        return entry

    def get(self, name: str) -> T:
        try:
            return self._entries[name]
        except (KeyError, TypeError):
            raise ConfigError(unknown_name_message(self.kind, name, self.names())) from None

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[T]:
        return iter(self._entries.values())

    def names(self) -> list[str]:
        return list(self._entries)


def load_object(path: str) -> Any:
    """Import 'package.module:attribute' lazily, so metadata stays importable without torch."""
    module_name, _, attribute = path.partition(":")
    return getattr(importlib.import_module(module_name), attribute)
