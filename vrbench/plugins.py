"""Plugins: entries of the registries that come from other packages or from local modules.

Two ways in, both torch-free until a job runs:

- an installed package declares entry points, one group per registry (``GROUPS``); each entry point names a
  metadata object (an `InputInfo`, `MappingInfo`, `ClipMethodInfo`, `BackboneInfo` or `DatasetInfo`) whose
  ``implementation``/``loader`` is a lazy "module:attr" path, so listing and validating never import torch;
- a suite's ``plugins: [my_lab.vr]`` names local modules to import; they call `vrbench.api.register`.

Discovery runs once per process, on the first lookup in any plugin-aware registry. A package that fails to
import is reported once (with its name and version) and skipped, so the built-ins keep working; two sources
registering one name stop everything with an error naming both. Every entry keeps its `Source`, which goes
into the hash of each job that uses it (``config["plugins"]``), so a changed plugin never reuses old results.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import importlib.metadata as metadata
import importlib.util
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vrbench.errors import ConfigError
from vrbench.registry import BUILTIN, PluginConflictError, Registry, Source, check_name, suggest

# entry-point group -> (catalogue module, registry attribute): the one table discovery reads.
GROUPS: dict[str, tuple[str, str]] = {
    "vrbench.inputs": ("vrbench.methods", "INPUTS"),
    "vrbench.mappings": ("vrbench.methods", "MAPPINGS"),
    "vrbench.clip_methods": ("vrbench.methods.clip_catalog", "CLIP_METHODS"),
    "vrbench.backbones": ("vrbench.backbones", "BACKBONES"),
    "vrbench.datasets": ("vrbench.datasets", "DATASETS"),
}


@dataclass(frozen=True)
class Failure:
    """A plugin entry point that could not be loaded: its package, where it points, and why."""

    package: str
    version: str
    group: str
    name: str
    value: str
    reason: str


class _State:
    done = False
    running = False
    error: PluginConflictError | None = None
    failures: list[Failure] = []
    loaded: list[tuple[str, str, Source]] = []  # (group, name, source) of every plugin entry registered
    local_source: Source | None = None  # set while a local plugin module is being imported


_state = _State()


def registry_of(group: str) -> Registry:
    module, attribute = GROUPS[group]
    return getattr(importlib.import_module(module), attribute)


def _entry_points() -> list[metadata.EntryPoint]:
    everything = metadata.entry_points()  # one scan of the installed distributions for all groups
    return [entry for group in GROUPS for entry in everything.select(group=group)]


def discover() -> None:
    """Register every installed plugin entry once; re-raise a conflict on every later lookup."""
    if _state.error is not None:
        raise _state.error
    if _state.done or _state.running:
        return
    _state.running = True
    try:
        registries = {group: registry_of(group) for group in GROUPS}
        seen: set[tuple[str, str, str]] = set()  # one distribution can sit twice on sys.path
        for entry in _entry_points():
            dist = entry.dist
            package = dist.name if dist is not None else "(unknown package)"
            version = dist.version if dist is not None else "?"
            if (entry.group, entry.name, package) in seen:
                continue
            seen.add((entry.group, entry.name, package))
            registry = registries[entry.group]
            try:
                info = guarded_import(entry.load)
                _check_entry(registry, entry.name, info)
            except PluginConflictError:
                raise
            except Exception as exc:  # noqa: BLE001 - any broken plugin is reported, never fatal for the rest
                first = (str(exc).strip().splitlines() or [""])[0]
                _state.failures.append(Failure(package, version, entry.group, entry.name, entry.value,
                                               f"{type(exc).__name__}: {first}"))
                continue
            source = Source(package=package, version=version, where=f"entry point {entry.group}:{entry.name}")
            registry.register(entry.name, info, source)
            _state.loaded.append((entry.group, entry.name, source))
        _report_failures()
        _state.done = True
    except PluginConflictError as exc:
        _state.error = exc
        raise
    finally:
        _state.running = False


class PluginExitError(RuntimeError):
    """A plugin module ended the process (sys.exit, os._exit aside) or raised another BaseException at import."""


def guarded_import(load: Callable[[], Any]) -> Any:
    """Import plugin code as an ordinary, reportable failure: SystemExit and the other BaseExceptions (but
    KeyboardInterrupt) become PluginExitError, so `ls` and `run` warn and go on with the built-ins instead of
    ending silently with the plugin's exit code; and whatever it prints goes to stderr, so that stdout stays the
    command's own output (tables, `--dry-run --format csv|json`)."""
    try:
        with contextlib.redirect_stdout(sys.stderr):
            return load()
    except (Exception, KeyboardInterrupt):
        raise
    except SystemExit as exc:
        raise PluginExitError(f"it called sys.exit({exc.code!r}) while being imported") from None
    except BaseException as exc:  # noqa: BLE001 - e.g. GeneratorExit or a custom BaseException subclass
        raise PluginExitError(f"it raised {type(exc).__name__} while being imported: {exc}") from None


def _check_entry(registry: Registry, name: str, info: Any) -> None:
    check_name(registry.kind, name)  # a bad name skips this entry with a warning, like any other broken entry
    if registry.entry_type is not None and not isinstance(info, registry.entry_type):
        raise TypeError(f"the entry point names a {type(info).__name__}, not a {registry.entry_type.__name__}")
    if getattr(info, "name", name) != name:
        raise ValueError(f"the entry point is called '{name}' but its {registry.kind} is named '{info.name}'")


def _report_failures() -> None:
    """One warning per broken package, on stderr (stdout stays the command's own output)."""
    by_package: dict[tuple[str, str], list[Failure]] = {}
    for failure in _state.failures:
        by_package.setdefault((failure.package, failure.version), []).append(failure)
    for (package, version), failures in by_package.items():
        entries = "; ".join(f"{f.group}:{f.name} = {f.value} ({f.reason})" for f in failures)
        print(f"warning: plugin package {package} {version} failed to load and is skipped (built-in methods "
              f"still work): {entries}. Reinstall or fix it (pip install --force-reinstall {package}), or "
              f"uninstall it (pip uninstall {package}).", file=sys.stderr, flush=True)


def failures() -> list[Failure]:
    discover()
    return list(_state.failures)


def loaded() -> list[tuple[str, str, Source]]:
    discover()
    return list(_state.loaded)


# ----------------------------------------------------------------------------------------- local modules


def module_digest(name: str) -> str:
    """'sha256:<12 hex>' of a local module's code (every .py file of a package): its version in job hashes."""
    spec = importlib.util.find_spec(name)
    if spec is None or spec.origin is None:
        raise ConfigError(f"plugin module '{name}' cannot be found: put it on PYTHONPATH or next to the suite file")
    origin = Path(spec.origin)
    files = sorted(origin.parent.rglob("*.py")) if origin.name == "__init__.py" else [origin]
    digest = hashlib.sha256()
    for path in files:
        digest.update(str(path.relative_to(origin.parent)).encode() + b"\0" + path.read_bytes())
    return f"sha256:{digest.hexdigest()[:12]}"


def import_local(name: str, search: Path | None = None) -> None:
    """Import a local plugin module (a suite's `plugins:` entry); its `vrbench.api.register` calls are sourced.

    ``search`` (the suite's directory) is put on sys.path and PYTHONPATH, so the worker processes that the
    run starts import the same module.
    """
    discover()
    if search is not None:
        _add_search_path(search.resolve())
    if name in sys.modules:
        return
    source = Source(module=name, version=module_digest(name), where=f"module {name}")
    previous, _state.local_source = _state.local_source, source
    try:
        guarded_import(lambda: importlib.import_module(name))
    except PluginConflictError:
        raise
    except Exception as exc:  # noqa: BLE001 - the suite names it: the user must see why it fails
        sys.modules.pop(name, None)
        raise ConfigError(f"plugin module '{name}' failed to import: {type(exc).__name__}: {exc}") from None
    finally:
        _state.local_source = previous


def _add_search_path(path: Path) -> None:
    text = str(path)
    if text not in sys.path:
        sys.path.insert(0, text)
    parts = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    if text not in parts:
        os.environ["PYTHONPATH"] = os.pathsep.join([text, *parts])


def current_local_source(caller: str) -> Source:
    """The source of a `vrbench.api.register` call: the local plugin being imported, else the caller's module."""
    if _state.local_source is not None:
        return _state.local_source
    return Source(module=caller, version=module_digest(caller), where=f"module {caller}")


# ------------------------------------------------------------------------------------------ job records


def job_record(sources: dict[str, Source]) -> dict[str, str]:
    """``config["plugins"]``: role -> 'package==version' for the roles a plugin fills (built-ins: nothing,
    so the hashes of built-in jobs are the same as before plugins existed)."""
    return {role: source.record() for role, source in sources.items() if not source.builtin}


def check_job_sources(config: dict[str, Any]) -> None:
    """In the worker: import the job's local plugin modules, and refuse to run a job planned with another
    version of a plugin than the one installed now (its results would be filed under the wrong hash)."""
    for role, record in (config.get("plugins") or {}).items():
        name, _, version = record.partition("==")
        if name.startswith("local:"):
            module = name.removeprefix("local:")
            import_local(module)
            now = module_digest(module)
        else:
            try:
                now = metadata.version(name)
            except metadata.PackageNotFoundError:
                raise ConfigError(f"this job's {role} comes from plugin package {name} {version}, which is not "
                                  f"installed here: pip install '{name}=={version}'") from None
        if now != version:
            raise ConfigError(f"this job was planned with {name} {version} for its {role}, but {now} is installed "
                              "now: run the suite again to plan jobs for the installed version")


# ------------------------------------------------------------------------------------------ error hints


def missing_name_hint(registry: Registry, name: str, requires_hint: str = "") -> str:
    """Why ``name`` may be unknown: its plugin failed to load, a required package is missing, or none says."""
    broken = [f for f in _state.failures if registry_of(f.group) is registry and f.name == name]
    if broken:
        f = broken[0]
        return (f" It comes from plugin package {f.package} {f.version}, which failed to load ({f.reason}): "
                f"fix or reinstall it (pip install --force-reinstall {f.package}).")
    if requires_hint:
        return requires_hint
    return (" If it comes from a plugin, install its package (pip install <package>), or name its module under "
            "`plugins:` in the suite; `vrbench ls methods` lists what is installed.")


def missing_requirements(requires: list[str]) -> list[str]:
    """The packages of a suite's `requires:` that are not installed."""
    missing = []
    for requirement in requires:
        try:
            metadata.version(requirement)
        except metadata.PackageNotFoundError:
            missing.append(requirement)
    return missing


def requires_hint(requires: list[str]) -> str:
    missing = missing_requirements(requires)
    if missing:
        installed = sorted({s.package for _, _, s in loaded() if s.package})
        close = "".join(suggest(m, installed) for m in missing)
        return (f" The suite requires {', '.join(missing)}, which {'is' if len(missing) == 1 else 'are'} not "
                f"installed: pip install {' '.join(missing)} (or pip install ./path/to/its/checkout).{close}")
    return ""


# ----------------------------------------------------------------------------------------- inventory


def inventory() -> dict[str, Any]:
    """What env.json records: every plugin entry loaded in this process and every one that failed."""
    return {
        "loaded": [{"group": g, "name": n, "source": s.record()} for g, n, s in loaded()],
        "failed": [{"group": f.group, "name": f.name, "package": f.package, "version": f.version,
                    "reason": f.reason} for f in failures()],
    }


def source_of(registry: Registry, name: str) -> Source:
    return registry.source(name) if name in registry else BUILTIN


@contextmanager
def isolated_state() -> Iterator[None]:
    """For tests: run discovery afresh and restore the registries afterwards."""
    registries = [registry_of(group) for group in GROUPS]
    saved = [(dict(r._entries), dict(r._sources)) for r in registries]
    state = (_state.done, _state.running, _state.error, list(_state.failures), list(_state.loaded))
    _state.done, _state.running, _state.error, _state.failures, _state.loaded = False, False, None, [], []
    try:
        yield
    finally:
        for registry, (entries, sources) in zip(registries, saved, strict=True):
            registry._entries, registry._sources = entries, sources
        _state.done, _state.running, _state.error, _state.failures, _state.loaded = state
