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
    # Round-trip through JSON so the stored config is exactly what was hashed (tuples become lists, etc.).
    frozen = json.loads(canonical_json(config))
    return JobSpec(run_id_of(frozen), frozen, list(selection), label)
