"""What a job asks of the scheduler: time limit, GPUs, CPUs, memory, partition.

Resources never change a job's numbers, so they stay out of the job hash. They come in layers, later ones
winning: built-in defaults, then the suite's `resources:` section (its top-level keys, then its `overrides`
in order, each where its `match` holds), then the command line. The local pool reads only `timeout_min`;
Slurm reads all of them. No torch import: `vrbench status` and `--dry-run` expand suites.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

# name -> (kind, help); the kinds are checked by check_resource.
RESOURCE_KEYS: dict[str, tuple[str, str]] = {
    "timeout_min": ("positive number", "wall-clock limit of one job in minutes"),
    "gpus_per_job": ("non-negative integer", "GPUs per job (Slurm --gpus-per-node)"),
    "cpus_per_job": ("positive integer", "CPU cores per job (Slurm --cpus-per-task; also the job's threads)"),
    "mem_gb": ("positive number", "memory per job in GB (Slurm --mem)"),
    "partition": ("string", "Slurm partition"),
}
# Slurm needs some time limit; submitit's own default (5 min) would requeue every real job. Jobs checkpoint
# every epoch, so a limit that is too short costs requeues, not work.
DEFAULT_TIMEOUT_MIN = 120.0


@dataclass(frozen=True)
class Resources:
    timeout_min: float | None = None
    gpus_per_job: int | None = None
    cpus_per_job: int | None = None
    mem_gb: float | None = None
    partition: str | None = None

    def updated(self, values: dict[str, Any]) -> Resources:
        """A copy with the non-None values of `values` applied on top."""
        return replace(self, **{k: v for k, v in values.items() if v is not None})

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}

    def key(self) -> tuple[Any, ...]:
        """Jobs with equal keys can share one Slurm job array (an array has one set of resources)."""
        return tuple(getattr(self, f.name) for f in fields(self))


def check_resource(key: str, value: Any) -> str | None:
    """None when `value` is valid for `key`, else what is wrong (the caller adds file and line)."""
    kind = RESOURCE_KEYS[key][0]
    is_int = isinstance(value, int) and not isinstance(value, bool)
    is_number = (is_int or isinstance(value, float)) and math.isfinite(value)
    ok = {
        "positive number": is_number and value > 0,
        "non-negative integer": is_int and value >= 0,
        "positive integer": is_int and value >= 1,
        "string": isinstance(value, str) and bool(value.strip()),
    }[kind]
    return None if ok else f"resource '{key}' must be a {kind}, got {value!r}"


def merge_resources(suite: Resources | None, command_line: Resources | None) -> Resources:
    """Built-in default < the suite's `resources:` < the command line (the most specific intent wins)."""
    merged = Resources(timeout_min=DEFAULT_TIMEOUT_MIN)
    for layer in (suite, command_line):
        if layer is not None:
            merged = merged.updated(layer.as_dict())
    return merged
