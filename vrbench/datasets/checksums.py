"""File checksums and the record of what `vrbench data prepare` fetched (bottom layer: prepare, verify and the
animal_shapes loader all use it, so none of them has to import another for it).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

RECORD = ".vrbench-prepared.json"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_record(folder: Path) -> dict[str, str]:
    try:
        data = json.loads((folder / RECORD).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def record_checksum(folder: Path, path: Path) -> None:
    """Remember a fetched file's sha256 (trust on first use) for `vrbench data verify`."""
    record = read_record(folder)
    record[path.name] = sha256_file(path)
    (folder / RECORD).write_text(json.dumps(record, indent=2, sort_keys=True) + "\n", encoding="utf-8")
