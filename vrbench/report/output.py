"""Where a report goes and what it leaves there: one report per folder, never files of an older one beside it.

A report folder holds a manifest (``.vrbench-report.json``) of the files the reports written into it created, and
the key of what they show (the results directory, the selection of runs and the cells). After a report is written,
the files the manifest lists that the new report did not write are removed: all of them when the new report shows
something else (another results directory, suite or set of numbers), only those of its own format otherwise, so the
Markdown, HTML and LaTeX renderings of one report can sit side by side. Files the manifest does not list (the
user's own) are never touched.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

from vrbench.store.rundir import atomic_write_text

DEFAULT_DIR = "reports"  # inside the results directory: a report belongs to the results it shows
MANIFEST = ".vrbench-report.json"
REPORT_FILES = ("index.md", "index.html", "index.tex", "cells.csv", "prompt_cells.csv")
_SAFE_PART = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def default_out_dir(results: Path) -> Path:
    """``<results>/reports``: reports of two results directories never share a folder."""
    return Path(results) / DEFAULT_DIR


def report_key(*parts: object) -> str:
    """A digest of what a report shows; equal keys mean every format of it shows the same numbers."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(json.dumps(part, sort_keys=True, default=str).encode("utf-8"))
        digest.update(b"\0")
    return digest.hexdigest()


def _read_manifest(out_dir: Path) -> dict:
    try:
        data = json.loads((out_dir / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}  # absent or damaged: nothing is known to be ours, so nothing is removed
    if not isinstance(data, dict) or not isinstance(data.get("formats"), dict):
        return {}
    return data


def _listed(entry: object) -> set[str]:
    return {name for name in entry if isinstance(name, str) and _is_safe(name)} if isinstance(entry, list) else set()


def _is_safe(name: str) -> bool:
    """A relative path made of plain names: a manifest can never point a removal outside its folder."""
    parts = name.split("/")
    return 0 < len(parts) <= 2 and all(_SAFE_PART.fullmatch(part) and part not in (".", "..") for part in parts)


def record_report(out_dir: Path, fmt: str, key: str, written: list[str]) -> list[str]:
    """Record the files a report just wrote (paths relative to ``out_dir``) and remove those of older reports that
    it did not write; return the removed ones. Call after the new files are in place."""
    out_dir = Path(out_dir)
    previous = _read_manifest(out_dir)
    formats: dict[str, list[str]] = {}
    if previous.get("key") == key:  # the same report in other formats stays
        formats = {name: sorted(_listed(files)) for name, files in previous["formats"].items()
                   if name != fmt and isinstance(name, str)}
    formats[fmt] = sorted(written)
    keep = set().union(*formats.values())
    stale = set().union(*(_listed(files) for files in previous.get("formats", {}).values())) - keep
    removed = []
    for name in sorted(stale):
        path = out_dir / name
        if path.is_file() or path.is_symlink():
            path.unlink(missing_ok=True)
            removed.append(name)
    for directory in {name.split("/")[0] for name in stale if "/" in name}:
        try:
            (out_dir / directory).rmdir()  # only when the report's files were all it held
        except OSError:
            pass
    atomic_write_text(out_dir / MANIFEST, json.dumps({"key": key, "formats": formats}, indent=1, sort_keys=True)
                      + "\n")
    return removed


def unrecorded_report_files(out_dir: Path, written: list[str]) -> list[str]:
    """Report-named files in ``out_dir`` that no manifest vouches for (e.g. written by an older vrbench): kept, but
    worth a warning since they may show another experiment."""
    listed = set().union(*(_listed(files) for files in _read_manifest(out_dir).get("formats", {}).values()))
    return [name for name in REPORT_FILES if name not in written and name not in listed
            and (Path(out_dir) / name).is_file()]
