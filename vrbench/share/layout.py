"""Where shared results live in a results directory, and what makes two results of one job the same.

    results/runs/<run_id>/provenance.json              an imported run: which bundle, host and time it came from
    results/alternates/<run_id>/<result_key>/          a second (third, ...) result of a job that is done here

A job's *result* is its result.json, metrics.jsonl, env.json and mapping.json: two copies of a run whose files
agree are the same result (config.json is not compared: its ``runtime`` part, paths and worker counts, differs
between machines while the hashed config cannot). ``result_key`` names a result by those files' digests.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from vrbench.datasets.checksums import sha256_file  # noqa: F401 (re-exported for bundle.py and importer.py)
from vrbench.store.provenance import PROVENANCE, parse_time  # noqa: F401 (re-exported)
from vrbench.store.rundir import CHECKPOINT, CONFIG, ENV, MAPPING, METRICS, RESULT

ALTERNATES = "alternates"
VAL_SPLIT = "val_split.json"
RESULT_FILES: tuple[str, ...] = (RESULT, METRICS, ENV, MAPPING)
# What a bundle carries of a run: what its page shows and what re-indexes it; checkpoints only on request.
EXPORT_FILES: tuple[str, ...] = (CONFIG, ENV, METRICS, MAPPING, VAL_SPLIT, RESULT, PROVENANCE)
CHECKPOINT_FILES: tuple[str, ...] = (CHECKPOINT,)


def result_key(file_digests: dict[str, str]) -> str:
    """16 hex digits naming a result by the sha256 of its RESULT_FILES (``file_digests``: name -> sha256 hex)."""
    digest = hashlib.sha256()
    for name in RESULT_FILES:
        digest.update(f"{name}:{file_digests.get(name, '-')}\n".encode())
    return digest.hexdigest()[:16]


def result_key_of(directory: Path) -> str:
    """``result_key`` of the result files in a run directory (or an alternate's)."""
    return result_key({name: sha256_file(directory / name) for name in RESULT_FILES if (directory / name).is_file()})


def alternates_root(results: Path) -> Path:
    return Path(results) / ALTERNATES


def read_json_object(path: Path) -> dict[str, Any] | None:
    """A JSON object file, or None when absent or unreadable (callers report what they need)."""
    try:
        data = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
