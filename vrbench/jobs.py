"""A job is its canonical resolved config; its id is a content hash of that config.

Only settings that can change a job's numbers go into the hash (method versions included); paths,
worker counts, devices and log settings do not, so the same job has the same id on every machine.
Keys that joined the hash after results existed (an input's ``late_params``, a dataset's revision under a resize
mode as ``versions.data``) are written only where they differ from the behaviour before them, so a correction
changes the ids of exactly the jobs it changes.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

ENGINE_VERSION = 1
RUN_ID_LENGTH = 16


def canonical_json(config: dict[str, Any]) -> str:
    """Key-sorted, whitespace-free JSON: the byte string the run id is computed from."""
    return json.dumps(config, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)


def run_id_of(config: dict[str, Any]) -> str:
    return hashlib.sha256(canonical_json(config).encode()).hexdigest()[:RUN_ID_LENGTH]


@dataclass(frozen=True)
class JobSpec:
    run_id: str
    config: dict[str, Any]
    selection: list[str] = field(default_factory=list)
    display_name: str | None = None  # the suite's `label` for this variant; reports use it as the method name

    @property
    def method(self) -> str:
        if self.display_name:
            return self.display_name
        if "method" in self.config:  # a CLIP prompt-learning job
            return self.config["method"]
        return f"{self.config['input']}+{self.config['mapping']}"

    @property
    def depends_on(self) -> str | None:
        """The run this job needs finished first (an evaluation job's training run), else None."""
        return self.config.get("train_run")

    def label(self) -> str:
        c = self.config
        extra = ""
        if "stage" in c:
            shots = f" {c['shots']}-shot" if c.get("shots") else ""
            part = f" {c['subsample']}" if c.get("subsample") not in (None, "all") else ""
            source = f" (from {c['source_dataset']})" if c.get("source_dataset") else ""
            extra = f"{shots}{part}{source}"
        return f"{self.method} {c['backbone']} {c['dataset']}{extra} seed={c['seed']}"


def make_job(config: dict[str, Any], selection: list[str], label: str | None = None) -> JobSpec:
    """The job whose stored config is exactly what was hashed (tuples become lists, keys sorted)."""
    text = canonical_json(config)  # also refuses what JSON cannot hold (NaN, objects)
    frozen = _json_copy(config)
    if frozen is _NOT_PLAIN:
        frozen = json.loads(text)
    return JobSpec(hashlib.sha256(text.encode()).hexdigest()[:RUN_ID_LENGTH], frozen, list(selection), label)


_SCALARS = frozenset({str, int, float, bool, type(None)})  # exact types: an IntEnum would not survive JSON as is
_NOT_PLAIN = object()


def _json_copy(value: Any) -> Any:
    """What ``json.loads(canonical_json(value))`` returns, built directly for plain values (_NOT_PLAIN for anything
    else): the same dict keys and strings are shared by every job of a suite instead of decoded anew for each,
    which halves a 200,000-job suite's memory and time."""
    kind = type(value)
    if kind in _SCALARS:
        return value
    if kind is dict:
        copied = {}
        for key in sorted(value):
            if type(key) is not str:
                return _NOT_PLAIN
            item = value[key]
            if type(item) not in _SCALARS:
                item = _json_copy(item)
                if item is _NOT_PLAIN:
                    return _NOT_PLAIN
            copied[key] = item
        return copied
    if kind is list or kind is tuple:
        items = [item if type(item) in _SCALARS else _json_copy(item) for item in value]
        return _NOT_PLAIN if any(item is _NOT_PLAIN for item in items) else items
    return _NOT_PLAIN
