"""Listing class-folder datasets (ImageNet and its variants): one directory scan, reused by later jobs.

ImageNet's training split is 1,000 folders holding 1.28 M files. A listing reads each folder once with
``os.scandir``, whose entries carry their type from the directory itself, so no file is ``stat``-ed. The result is
kept as JSON in ``<cache dir>/listings/`` together with the modification time of every folder it read; a later job
checks those (one ``stat`` per folder: 1,001 for ImageNet train) and reuses the listing when none changed (adding,
removing or renaming a file changes its folder's time). With the cache off (``VRBENCH_CACHE=0``) or not writable,
the listing is simply redone.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from vrbench.datasets.roots import cache_dir, cache_enabled

FORMAT = "vrbench-listing-v1"
FOLDER = "listings"
_scanned = 0  # directories scanned in this process (what the listing tests count)


def scanned_directories() -> int:
    """How many directories this process has scanned so far (a reused listing scans none)."""
    return _scanned


def scan(folder: Path) -> tuple[list[str], list[str]]:
    """(sub-folders, files) of ``folder``, visible entries only, each sorted (Dassl's listdir_nohidden(sort=True))."""
    global _scanned
    _scanned += 1
    folders, files = [], []
    with os.scandir(folder) as entries:
        for entry in entries:
            if entry.name.startswith("."):
                continue
            if entry.is_dir():
                folders.append(entry.name)
            elif entry.is_file():
                files.append(entry.name)
    return sorted(folders), sorted(files)


def _stamp(folder: Path) -> int:
    return os.stat(folder).st_mtime_ns


def _listing_path(root: Path, tag: str) -> Path:
    digest = hashlib.sha256(str(root.absolute()).encode()).hexdigest()[:16]
    return cache_dir() / FOLDER / f"{tag}-{digest}.json"


def _reuse(path: Path, root: Path, subfolders: list[str] | None) -> dict[str, list[str]] | None:
    """The stored listing when every folder it read is unchanged, else None."""
    try:
        stored = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(stored, dict) or stored.get("format") != FORMAT or stored.get("root") != str(root):
        return None
    stamps = stored.get("stamps", {})
    try:
        if stamps.get("") != _stamp(root) or any(stamps.get(name) != _stamp(root / name) for name in stored["files"]):
            return None
    except OSError:
        return None
    if stored.get("wanted") != subfolders:
        return None
    return stored["files"]


def _store(path: Path, root: Path, wanted: list[str] | None, files: dict[str, list[str]],
           stamps: dict[str, int]) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"format": FORMAT, "root": str(root), "wanted": wanted, "stamps": stamps,
                                   "files": files}),
                       encoding="utf-8")
        os.replace(tmp, path)
    except OSError:  # a read-only or full cache only costs the next job a rescan
        pass


def class_folder_files(root: Path, tag: str, subfolders: list[str] | None = None) -> dict[str, list[str]]:
    """{class folder: sorted file names} for the class folders of ``root`` (all visible ones, sorted, unless
    ``subfolders`` names them), from the stored listing when it is still valid, else from one scan per folder."""
    root = Path(root).absolute()
    use = cache_enabled()
    path = _listing_path(root, tag)
    if use:
        found = _reuse(path, root, subfolders)
        if found is not None:
            return found
    stamps = {"": _stamp(root)}
    names = scan(root)[0] if subfolders is None else subfolders
    files: dict[str, list[str]] = {}
    for name in names:
        folder = root / name
        if not folder.is_dir():
            continue
        stamps[name] = _stamp(folder)
        files[name] = scan(folder)[1]
    if use:
        _store(path, root, subfolders, files, stamps)
    return files
