"""``vrbench export``: pack finished runs into a bundle, a tar archive any tar tool can list and unpack.

    manifest.json                         what the bundle holds (first member; format in docs/leaderboard.md)
    runs/<run_id>/config.json ...         each finished run's files (EXPORT_FILES; checkpoint.pt on request)
    alternates/<run_id>/<result_key>/...  the other results of jobs that have more than one

The manifest lists every run with its id, result key and each file's sha256 and size, plus the vrbench version,
the exporting host and the export time, so ``vrbench import`` can check everything before it writes anything.
``.tar.gz``/``.tgz`` names are gzip-compressed, other names plain tar.
"""

from __future__ import annotations

import io
import json
import os
import socket
import tarfile
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vrbench import __version__
from vrbench.errors import ResultsError
from vrbench.share.conflicts import alternate_dirs
from vrbench.share.layout import CHECKPOINT_FILES, EXPORT_FILES, result_key, sha256_file
from vrbench.store.rundir import RESULT, now_iso, run_dir, runs_root

FORMAT = "vrbench-bundle"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"


@dataclass
class ExportStats:
    runs: int
    alternates: int
    files: int
    path: Path

    def summary(self) -> str:
        extra = f" and {self.alternates} other result(s) of them" if self.alternates else ""
        return f"exported {self.runs} run(s){extra} ({self.files} files) to {self.path}"


def compression(path: Path) -> str:
    """tarfile's write mode for a bundle name: gzip for .tar.gz / .tgz, plain tar otherwise."""
    return "w:gz" if path.name.endswith((".tar.gz", ".tgz")) else "w"


def _entry(results: Path, directory: Path, run_id: str, names: tuple[str, ...]) -> dict[str, Any]:
    files = {}
    for name in names:
        path = directory / name
        if path.is_symlink() or (path.exists() and not path.is_file()):
            raise ResultsError(f"{path} is not a regular file: refusing to export it (bundles hold plain files)")
        if path.is_file():
            files[name] = {"sha256": sha256_file(path), "size": path.stat().st_size}
    return {"run_id": run_id, "path": directory.relative_to(results).as_posix(),
            "result_key": result_key({name: meta["sha256"] for name, meta in files.items()}), "files": files}


def select_runs(results: Path, run_ids: Iterable[str] | None) -> list[str]:
    """The done runs to export: all of them, or ``run_ids`` (each must be done here)."""
    if run_ids is not None:
        wanted = sorted(set(run_ids))
        missing = [r for r in wanted if not (run_dir(results, r) / RESULT).is_file()]
        if missing:
            raise ResultsError(f"not done in {results}, so not exported: {', '.join(missing[:10])}"
                               + (f" and {len(missing) - 10} more" if len(missing) > 10 else ""))
        return wanted
    root = runs_root(results)
    if not root.is_dir():
        raise ResultsError(f"{results} holds no runs/ directory: nothing to export")
    with os.scandir(root) as entries:
        names = sorted(e.name for e in entries if e.is_dir(follow_symlinks=False) and not e.name.startswith("."))
    return [name for name in names if os.path.isfile(f"{root}/{name}/{RESULT}")]


def build_manifest(results: Path, run_ids: list[str], with_checkpoints: bool) -> dict[str, Any]:
    names = EXPORT_FILES + (CHECKPOINT_FILES if with_checkpoints else ())
    entries = [_entry(results, run_dir(results, r), r, names) for r in run_ids]
    for run_id, directories in alternate_dirs(results, set(run_ids)).items():
        entries += [_entry(results, d, run_id, names) for d in directories]
    return {"format": FORMAT, "format_version": FORMAT_VERSION, "vrbench_version": __version__,
            "exported_by": {"host": socket.gethostname()}, "exported_at": now_iso(),
            "with_checkpoints": with_checkpoints, "runs": entries}


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes, mtime: float) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), int(mtime), 0o644
    tar.addfile(info, io.BytesIO(data))


def _add_dir(tar: tarfile.TarFile, name: str, mtime: float) -> None:
    info = tarfile.TarInfo(name)
    info.type, info.mtime, info.mode = tarfile.DIRTYPE, int(mtime), 0o755
    tar.addfile(info)


def export_bundle(out: Path, results: Path, run_ids: Iterable[str] | None = None,
                  with_checkpoints: bool = False) -> ExportStats:
    """Write the bundle of ``run_ids`` (default: every done run) atomically to ``out``."""
    results, out = Path(results), Path(out)
    selected = select_runs(results, run_ids)
    if not selected:
        raise ResultsError(f"no finished run to export in {results}")
    manifest = build_manifest(results, selected, with_checkpoints)
    data = json.dumps(manifest, indent=1, sort_keys=True).encode()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    files = 0
    try:
        with tarfile.open(tmp, compression(out), format=tarfile.PAX_FORMAT) as tar:
            now = os.path.getmtime(results / "runs")
            _add_bytes(tar, MANIFEST, data, now)
            made: set[str] = set()
            for entry in manifest["runs"]:
                parts = entry["path"].split("/")
                for depth in range(1, len(parts) + 1):
                    name = "/".join(parts[:depth])
                    if name not in made:
                        made.add(name)
                        _add_dir(tar, name, now)
                for name, meta in entry["files"].items():
                    path = results / entry["path"] / name
                    info = tarfile.TarInfo(f"{entry['path']}/{name}")
                    info.size, info.mtime, info.mode = meta["size"], int(path.stat().st_mtime), 0o644
                    with open(path, "rb") as handle:
                        tar.addfile(info, handle)
                    files += 1
        os.replace(tmp, out)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise ResultsError(f"cannot write the bundle {out}: {exc.strerror or exc}") from exc
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    alternates = sum(1 for e in manifest["runs"] if not e["path"].startswith("runs/"))
    return ExportStats(len(manifest["runs"]) - alternates, alternates, files, out)
