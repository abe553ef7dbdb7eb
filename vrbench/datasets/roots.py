"""Where vrbench looks for datasets and keeps its decoded-image cache (no torch import: `vrbench data ls` uses it).

The data root, first match wins:

1. ``--data-root DIR`` on the command line;
2. the ``VRBENCH_DATA`` environment variable;
3. ``data_root:`` in the config file: ``$VRBENCH_CONFIG`` if set, else ``$XDG_CONFIG_HOME/vrbench/config.yaml``
   (``~/.config/vrbench/config.yaml``);
4. ``./data``.

The decoded-image cache: ``VRBENCH_CACHE_DIR``, else ``cache_dir:`` in the config file, else
``$XDG_CACHE_HOME/vrbench/decoded`` (``~/.cache/vrbench/decoded``). ``VRBENCH_CACHE=0`` turns it off.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from vrbench.errors import ConfigError
from vrbench.switches import switch_on

DATA_ENV = "VRBENCH_DATA"
CONFIG_ENV = "VRBENCH_CONFIG"
CACHE_DIR_ENV = "VRBENCH_CACHE_DIR"
CACHE_ENV = "VRBENCH_CACHE"
DEFAULT_ROOT = Path("data")
CONFIG_KEYS = ("data_root", "cache_dir")


@dataclass(frozen=True)
class DataRoot:
    """A resolved data root and the rule that chose it (shown by `vrbench data ls`)."""

    path: Path
    source: str  # "--data-root", "$VRBENCH_DATA", "config file <path>", "default ./data"


def config_path() -> Path:
    """The config file vrbench reads (it need not exist)."""
    explicit = os.environ.get(CONFIG_ENV)
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base).expanduser() / "vrbench" / "config.yaml"


def read_config() -> dict[str, Any]:
    """The config file as a dict ({} when absent); a malformed file is a ConfigError naming it."""
    path = config_path()
    if not path.is_file():
        return {}
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot read the vrbench config file: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the vrbench config file must be a YAML mapping, e.g. 'data_root: /datasets'")
    unknown = sorted(set(data) - set(CONFIG_KEYS))
    if unknown:
        raise ConfigError(f"{path}: unknown key(s) {', '.join(unknown)}; known keys: {', '.join(CONFIG_KEYS)}")
    return data


def resolve_data_root(option: Path | str | None = None) -> DataRoot:
    """Apply the documented order: option, $VRBENCH_DATA, config file, ./data."""
    if option is not None:
        return DataRoot(Path(option).expanduser(), "--data-root")
    env = os.environ.get(DATA_ENV)
    if env:
        return DataRoot(Path(env).expanduser(), f"${DATA_ENV}")
    configured = read_config().get("data_root")
    if configured:
        return DataRoot(Path(str(configured)).expanduser(), f"config file {config_path()}")
    return DataRoot(DEFAULT_ROOT, "default ./data")


def cache_enabled() -> bool:
    """The decoded-image cache is on unless VRBENCH_CACHE is 0/false/no/off."""
    return switch_on(CACHE_ENV)


def cache_dir() -> Path:
    env = os.environ.get(CACHE_DIR_ENV)
    if env:
        return Path(env).expanduser()
    configured = read_config().get("cache_dir")
    if configured:
        return Path(str(configured)).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "vrbench" / "decoded"
