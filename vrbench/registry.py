"""One small typed registry for methods, backbones and datasets.

Registries replace if/elif chains: adding a backbone is one `register` call, and an unknown name
gets an error that lists the known names and suggests the closest one.

A registry with an entry-point ``group`` also holds the entries of installed plugin packages
(:mod:`vrbench.plugins`): they are discovered on the first lookup, never at import, so importing a
catalogue stays cheap, and each entry remembers its `Source` (built-in, a package and its version,
or a local module and the digest of its code) because that source goes into the job hash.
"""

from __future__ import annotations

import difflib
import importlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
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


# Every name, built-in or plugin: lowercase letters, digits and underscores, starting with a letter. Names go into
# suite files, job configs, cache and figure file names, CLI tables and report markup; this keeps each of them plain.
NAME_PATTERN = re.compile(r"[a-z][a-z0-9_]{0,63}")


def check_name(kind: str, name: object) -> str:
    """``name`` if it is a valid registry name, else a ConfigError saying what a name may hold."""
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        raise ConfigError(f"{kind} name {name!r} is not allowed: use 1-64 lowercase letters, digits and underscores, "
                          "starting with a letter (e.g. 'my_mapping')")
    return name


class PluginConflictError(ConfigError):
    """Two sources register one name: which one a job meant would be a guess, so nothing runs until one goes."""


@dataclass(frozen=True)
class Source:
    """Where a registry entry comes from: vrbench itself, an installed plugin package, or a local module."""

    package: str | None = None  # distribution name, e.g. "vrbench-example-plugin"
    version: str | None = None  # the distribution's version, or "sha256:<12 hex>" of a local module's code
    module: str | None = None  # a local plugin module (a suite's `plugins:`), imported by name in the workers
    where: str = ""  # the entry point or module that registered the entry, for messages

    @property
    def builtin(self) -> bool:
        return self.package is None and self.module is None

    def record(self) -> str:
        """What a job's hash holds for this source: 'package==version' or 'local:module==sha256:...'."""
        if self.module is not None:
            return f"local:{self.module}=={self.version}"
        return f"{self.package}=={self.version}"

    def describe(self) -> str:
        if self.builtin:
            return "built-in"
        what = f"local module {self.module}" if self.module else f"package {self.package}"
        return f"{what} {self.version}" + (f" ({self.where})" if self.where else "")


BUILTIN = Source()


class Registry(Generic[T]):
    """A name -> entry mapping with helpful errors; entries are plain metadata objects.

    ``paths`` names the entry fields that hold a lazily imported "module:attribute" implementation; every registry
    is listed in ``Registry.instances`` so one test can import every such path (a dangling one fails CI, not a run).
    ``group`` is the entry-point group plugin packages use to add entries (e.g. "vrbench.mappings");
    ``entry_type`` is the metadata class their entry points must name.
    """

    instances: ClassVar[list[Registry]] = []

    def __init__(self, kind: str, paths: tuple[str, ...] = (), group: str | None = None,
                 entry_type: type | None = None) -> None:
        self.kind = kind
        self.paths = paths
        self.group = group
        self.entry_type = entry_type
        self._entries: dict[str, T] = {}
        self._sources: dict[str, Source] = {}
        Registry.instances.append(self)

    def register(self, name: str, entry: T, source: Source = BUILTIN) -> T:
        check_name(self.kind, name)
        if name in self._entries:
            first = self._sources[name]
            if first.builtin and source.builtin:
                raise ValueError(f"{self.kind} '{name}' is registered twice")
            if first == source:  # the same module imported twice (e.g. by name and through a suite)
                return self._entries[name]
            raise PluginConflictError(
                f"{self.kind} '{name}' is registered twice: by {first.describe()} and by {source.describe()}. "
                "Which one a suite means would be a guess: uninstall one of them (pip uninstall <package>) or "
                "rename the plugin's entry.")
        self._entries[name] = entry
        self._sources[name] = source
        return entry

    def _discover(self) -> None:
        if self.group is not None:
            from vrbench.plugins import discover

            discover()

    def get(self, name: str) -> T:
        self._discover()
        try:
            return self._entries[name]
        except (KeyError, TypeError):
            raise ConfigError(self.unknown(name)) from None

    def unknown(self, name: object, hint: str = "") -> str:
        """The unknown-name message, with what is known about plugins that could have provided ``name``."""
        self._discover()
        message = unknown_name_message(self.kind, name, self.names())
        if self.group is not None:
            from vrbench.plugins import missing_name_hint

            message += missing_name_hint(self, str(name), hint)
        return message

    def source(self, name: str) -> Source:
        self._discover()
        return self._sources.get(name, BUILTIN)

    def __contains__(self, name: object) -> bool:
        self._discover()
        return name in self._entries

    def __iter__(self) -> Iterator[T]:
        self._discover()
        return iter(list(self._entries.values()))

    def names(self) -> list[str]:
        self._discover()
        return list(self._entries)


def load_object(path: str) -> Any:
    """Import 'package.module:attribute' lazily, so metadata stays importable without torch."""
    module_name, _, attribute = path.partition(":")
    return getattr(importlib.import_module(module_name), attribute)
