"""``vrbench import``: merge bundles into a results directory by run id, checking everything before writing.

One bundle is taken whole or not at all: its members are checked first (no absolute path, no ``..``, no link, no
device: only the files a bundle may hold), then every file's sha256 and size against the manifest and every run's
config against its run id; any failure refuses the bundle, naming it, with nothing written. Then each run is:

- *added* when its id is new here: staged in a temporary directory inside the results root and renamed into
  ``runs/<run_id>/`` in one step that never replaces anything (a concurrent ``vrbench run`` that created the
  directory first wins, and the run is looked at again);
- *skipped* when this result is already here (as the run or as one of its alternates): re-importing a bundle
  changes no file;
- *kept beside* the existing result when the job is done here with a different result: it goes to
  ``alternates/<run_id>/<result_key>/`` and becomes a conflict (vrbench.share.conflicts); nothing is overwritten;
- *deferred* when the job's directory exists here unfinished (running, pending or failed): an unfinished local
  run is never touched; import again once it is done (or remove that directory to take the bundle's result).

Every imported run gets a provenance.json (bundle name and sha256, source host, export and import times).
"""

from __future__ import annotations

import ctypes
import errno
import hashlib
import json
import os
import re
import shutil
import socket
import tarfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from vrbench.errors import ResultsError
from vrbench.jobs import run_id_of
from vrbench.share.bundle import FORMAT, FORMAT_VERSION, MANIFEST
from vrbench.share.conflicts import alternate_dirs
from vrbench.share.layout import (
    ALTERNATES,
    CHECKPOINT_FILES,
    EXPORT_FILES,
    PROVENANCE,
    result_key,
    result_key_of,
    sha256_file,
)
from vrbench.store.rundir import CONFIG, RESULT, now_iso, pid_alive

_HEX = r"[0-9a-f]{8,64}"
_FILE = "|".join(re.escape(name) for name in EXPORT_FILES + CHECKPOINT_FILES)
_ALLOWED = re.compile(rf"^(?:runs|alternates|runs/{_HEX}|alternates/{_HEX}|alternates/{_HEX}/[0-9a-f]{{16}}"
                      rf"|runs/{_HEX}/(?:{_FILE})|alternates/{_HEX}/[0-9a-f]{{16}}/(?:{_FILE}))$")
_RUN_ID = re.compile(rf"^{_HEX}$")
STAGING_PREFIX = ".import-"
_DATA_FILTER = getattr(tarfile, "data_filter", None)
_FILTER_ERROR = getattr(tarfile, "FilterError", ())  # () catches nothing where tarfile has no filters


class BundleRefused(ResultsError):
    """A bundle failed a check; nothing of it was written."""


@dataclass
class ImportStats:
    bundle: Path
    added: list[str] = field(default_factory=list)
    identical: list[str] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)  # run ids whose bundle result was kept beside ours
    deferred: list[tuple[str, str]] = field(default_factory=list)  # (run id, why)

    def summary(self) -> str:
        text = (f"{self.bundle.name}: {len(self.added)} added, {len(self.identical)} already here (skipped), "
                f"{len(self.conflicts)} kept beside a different result here (conflict)")
        return text + (f", {len(self.deferred)} deferred" if self.deferred else "")


@dataclass
class _Entry:
    run_id: str
    path: str  # inside the bundle: runs/<id> or alternates/<id>/<key>
    files: dict[str, dict[str, Any]]
    key: str = ""


def _refuse(bundle: Path, reason: str) -> BundleRefused:
    return BundleRefused(f"refused {bundle}: {reason}; nothing was imported from it")


# ------------------------------------------------------------------------------------------------ checks


def check_members(bundle: Path, members: list[tarfile.TarInfo], results: Path) -> None:
    """Refuse members that could write outside the results directory or are not part of a bundle, before any
    write: tarfile's own data filter first (absolute paths, ``..``, links, devices), then vrbench's stricter rule
    (plain files and directories with the names a bundle holds, each once)."""
    seen: set[str] = set()
    for member in members:
        name = member.name
        if name.startswith("/") or ".." in name.split("/") or "\\" in name:
            raise _refuse(bundle, f"member {name!r} escapes the results directory")
        if member.issym() or member.islnk():
            raise _refuse(bundle, f"member {name!r} is a link (to {member.linkname!r}); bundles hold plain files")
        if not (member.isfile() or member.isdir()):
            raise _refuse(bundle, f"member {name!r} is a device, pipe or other special file")
        try:
            if _DATA_FILTER is not None:  # Python >= 3.11.4; the checks above already cover what it refuses
                _DATA_FILTER(member, str(results))
        except _FILTER_ERROR as exc:
            raise _refuse(bundle, f"member {name!r}: {exc}") from None
        stripped = name.rstrip("/")
        if stripped in seen:
            raise _refuse(bundle, f"member {name!r} appears twice")
        seen.add(stripped)
        if member.isfile() and stripped == MANIFEST:
            continue
        if not _ALLOWED.match(stripped) or (member.isdir() and stripped.rsplit("/", 1)[-1] in
                                            EXPORT_FILES + CHECKPOINT_FILES):
            raise _refuse(bundle, f"member {name!r} is not part of a vrbench bundle")
    if MANIFEST not in seen:
        raise _refuse(bundle, f"no {MANIFEST}: not a vrbench bundle")


def _manifest(bundle: Path, tar: tarfile.TarFile,
              members: list[tarfile.TarInfo]) -> tuple[list[_Entry], dict[str, Any]]:
    member = next(m for m in members if m.name == MANIFEST)
    try:
        data = json.loads(_read(tar, member))
    except ValueError as exc:
        raise _refuse(bundle, f"{MANIFEST} is not valid JSON ({exc})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise _refuse(bundle, f"{MANIFEST} does not describe a {FORMAT}")
    if not isinstance(data.get("format_version"), int) or data["format_version"] > FORMAT_VERSION:
        raise _refuse(bundle, f"bundle format {data.get('format_version')!r} is newer than this vrbench reads "
                              f"({FORMAT_VERSION}): upgrade vrbench")
    entries = []
    for raw in data.get("runs") or []:
        if not isinstance(raw, dict) or not isinstance(raw.get("files"), dict) or not _RUN_ID.match(
                str(raw.get("run_id"))):
            raise _refuse(bundle, f"{MANIFEST} has a malformed run entry: {str(raw)[:80]}")
        entry = _Entry(raw["run_id"], str(raw.get("path")), raw["files"])
        parts = entry.path.split("/")
        if not (parts == ["runs", entry.run_id] or (len(parts) == 3 and parts[:2] == [ALTERNATES, entry.run_id])):
            raise _refuse(bundle, f"{MANIFEST}: run {entry.run_id} has the path {entry.path!r}")
        entries.append(entry)
    return entries, data


def _read(tar: tarfile.TarFile, member: tarfile.TarInfo) -> bytes:
    handle = tar.extractfile(member)
    assert handle is not None
    return handle.read()


def _hash_stream(handle: IO[bytes], keep: bool) -> tuple[str, int, bytes | None]:
    digest, size, chunks = hashlib.sha256(), 0, []
    for block in iter(lambda: handle.read(1 << 20), b""):
        digest.update(block)
        size += len(block)
        if keep:
            chunks.append(block)
    return digest.hexdigest(), size, b"".join(chunks) if keep else None


def verify(bundle: Path, tar: tarfile.TarFile, members: list[tarfile.TarInfo], entries: list[_Entry]) -> None:
    """Every file's sha256 and size as the manifest says, nothing unlisted, and each run's config hashing to its
    id (the project's own canonical-config hash, vrbench.jobs.run_id_of)."""
    listed = {f"{e.path}/{name}": meta for e in entries for name, meta in e.files.items()}
    files = {m.name: m for m in members if m.isfile() and m.name != MANIFEST}
    if set(listed) != set(files):
        extra, missing = sorted(set(files) - set(listed)), sorted(set(listed) - set(files))
        what = f"member {extra[0]!r} is not in the manifest" if extra else f"{missing[0]} is missing"
        raise _refuse(bundle, what)
    kept: dict[str, bytes] = {}
    for name, member in files.items():
        keep = name.rsplit("/", 1)[-1] in (CONFIG, RESULT)
        digest, size, data = _hash_stream(tar.extractfile(member), keep)
        meta = listed[name]
        if not isinstance(meta, dict) or digest != meta.get("sha256") or size != meta.get("size"):
            raise _refuse(bundle, f"{name} does not match its checksum in the manifest (edited or damaged)")
        if data is not None:
            kept[name] = data
    for entry in entries:
        if CONFIG not in entry.files or RESULT not in entry.files:
            raise _refuse(bundle, f"run {entry.run_id} has no {CONFIG} or no {RESULT}")
        try:
            doc = json.loads(kept[f"{entry.path}/{CONFIG}"])
            config = doc["config"]
            computed = run_id_of(config)
            outcome = json.loads(kept[f"{entry.path}/{RESULT}"])
        except (ValueError, KeyError, TypeError) as exc:
            raise _refuse(bundle, f"{entry.path}: unreadable {CONFIG} or {RESULT} ({exc})") from None
        if computed != entry.run_id or doc.get("run_id", entry.run_id) != entry.run_id:
            raise _refuse(bundle, f"{entry.path}/{CONFIG} hashes to {computed}, not to its run id {entry.run_id}")
        if not isinstance(outcome, dict) or outcome.get("status", "done") != "done":
            raise _refuse(bundle, f"{entry.path}/{RESULT} is not a finished result")
        entry.key = result_key({name: meta["sha256"] for name, meta in entry.files.items()})
        if entry.path.startswith(ALTERNATES) and entry.path.rsplit("/", 1)[-1] != entry.key:
            raise _refuse(bundle, f"{entry.path} is not named by its result key {entry.key}")


# ------------------------------------------------------------------------------------------------ placing


_RENAME_NOREPLACE = 1
_AT_FDCWD = -100
try:
    _renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
except (OSError, AttributeError):
    _renameat2 = None


def rename_noreplace(source: Path, target: Path) -> None:
    """Rename ``source`` to ``target`` only if nothing is there (even an empty directory, which a plain rename
    would replace): FileExistsError otherwise. Linux renameat2; elsewhere a check then a rename."""
    if _renameat2 is not None:
        if _renameat2(_AT_FDCWD, os.fsencode(source), _AT_FDCWD, os.fsencode(target), _RENAME_NOREPLACE) == 0:
            return
        code = ctypes.get_errno()
        if code in (errno.EEXIST, errno.ENOTEMPTY):
            raise FileExistsError(code, os.strerror(code), str(target))
        if code not in (errno.ENOSYS, errno.EINVAL):
            raise OSError(code, os.strerror(code), str(target))
    if os.path.lexists(target):
        raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), str(target))
    os.rename(source, target)


class _Place:
    """What is here already for each run id, and where a bundle's result goes."""

    def __init__(self, results: Path, run_ids: set[str]) -> None:
        self.results = results
        self.keys: dict[str, set[str]] = {r: {p.name for p in ps} for r, ps in alternate_dirs(results, run_ids).items()}
        self._counted: dict[str, str | None] = {}

    def counted_key(self, run_id: str) -> str | None:
        if run_id not in self._counted:
            directory = self.results / "runs" / run_id
            self._counted[run_id] = result_key_of(directory) if (directory / RESULT).is_file() else None
        return self._counted[run_id]

    def decide(self, run_id: str, key: str) -> tuple[str, str]:
        """('identical' | 'add' | 'alternate' | 'deferred', detail)."""
        directory = self.results / "runs" / run_id
        if key in self.keys.get(run_id, set()):
            return "identical", ""
        if not os.path.lexists(directory):
            return "add", ""
        if not (directory / RESULT).is_file():
            return "deferred", (f"runs/{run_id} exists here unfinished (running, pending or failed): not touched; "
                                "import again once it is done, or remove that directory to take the bundle's result")
        if self.counted_key(run_id) == key:
            return "identical", ""
        return "alternate", ""


def _stage(tar: tarfile.TarFile, members: list[tarfile.TarInfo], plan: list[tuple[_Entry, str]], staging: Path,
           provenance: dict[str, Any], bundle: Path) -> list[Path]:
    """Write the planned runs' files into ``staging/<index>/``, in archive order (a compressed archive is read
    once, front to back), each checked against its sha256 again; then each run's provenance.json."""
    wanted: dict[str, tuple[int, str]] = {}
    directories = []
    for index, (entry, _action) in enumerate(plan):
        directory = staging / str(index)
        directory.mkdir()
        directories.append(directory)
        wanted.update({f"{entry.path}/{name}": (index, name) for name in entry.files})
    previous: dict[int, Any] = {}
    for member in members:
        if member.name not in wanted:
            continue
        index, name = wanted[member.name]
        if name == PROVENANCE:  # imported before: kept inside the new record
            try:
                previous[index] = json.loads(_read(tar, member))
            except ValueError:  # checksummed but unreadable: the new record stands alone
                previous[index] = None
            continue
        data = _read(tar, member)
        if hashlib.sha256(data).hexdigest() != plan[index][0].files[name]["sha256"]:  # changed since the check
            raise _refuse(bundle, f"{member.name} changed while it was imported")
        _write(directories[index] / name, data, member.mtime)
    now = time.time()
    for index, directory in enumerate(directories):
        record = {**provenance, **({"previous": previous[index]} if previous.get(index) else {})}
        _write(directory / PROVENANCE, (json.dumps(record, indent=2, sort_keys=True) + "\n").encode(), now)
    return directories


def _write(path: Path, data: bytes, mtime: float) -> None:
    with open(path, "wb") as out:
        out.write(data)
    os.utime(path, (mtime, mtime))


def _remove_stale_staging(results: Path) -> None:
    """Staging directories of imports that were killed (their pid is in the name) hold nothing of value."""
    for path in results.glob(f"{STAGING_PREFIX}*"):
        parts = path.name[len(STAGING_PREFIX):].split("-")
        if parts and parts[0].isdigit() and not pid_alive(int(parts[0])):
            shutil.rmtree(path, ignore_errors=True)


def import_bundle(bundle: Path, results: Path) -> ImportStats:
    """Merge one bundle into ``results`` (see the module's docstring); BundleRefused when it fails a check."""
    bundle, results = Path(bundle), Path(results)
    stats = ImportStats(bundle)
    try:
        bundle_sha = sha256_file(bundle)
        tar = tarfile.open(bundle, "r:*")
    except (OSError, tarfile.TarError) as exc:
        raise _refuse(bundle, f"cannot read it as a tar archive ({exc})") from None
    with tar:
        try:
            members = tar.getmembers()
            check_members(bundle, members, results)
            entries, manifest = _manifest(bundle, tar, members)
            verify(bundle, tar, members, entries)
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise _refuse(bundle, f"the archive is damaged or truncated ({exc})") from None
        place = _Place(results, {e.run_id for e in entries})
        plan: list[tuple[_Entry, str]] = []
        for entry in entries:
            action, detail = place.decide(entry.run_id, entry.key)
            if _settled(action, detail, entry.run_id, stats):
                continue
            place.keys.setdefault(entry.run_id, set()).add(entry.key)
            if action == "add":
                place._counted[entry.run_id] = entry.key  # a second result of the same id in this bundle: beside
            plan.append((entry, action))
        if not plan:
            return stats
        provenance = {"bundle": bundle.name, "bundle_sha256": bundle_sha,
                      "source_host": (manifest.get("exported_by") or {}).get("host"),
                      "exported_at": manifest.get("exported_at"), "vrbench_version": manifest.get("vrbench_version"),
                      "imported_at": now_iso(), "imported_by": socket.gethostname()}
        results.mkdir(parents=True, exist_ok=True)
        _remove_stale_staging(results)
        staging = results / f"{STAGING_PREFIX}{os.getpid()}-{uuid.uuid4().hex[:8]}"
        staging.mkdir()
        try:
            directories = _stage(tar, members, plan, staging, provenance, bundle)
            os.sync()  # the files are on disk before any run appears (one flush instead of an fsync per file)
            for (entry, action), directory in zip(plan, directories, strict=True):
                _move_into_place(results, entry, action, directory, place, stats)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return stats


def _settled(action: str, detail: str, run_id: str, stats: ImportStats) -> bool:
    """Record a run that is not moved (its result is here already, or the job cannot take it now); False when the
    run is to be moved into place."""
    if action == "identical":
        stats.identical.append(run_id)
        return True
    if action == "deferred":
        stats.deferred.append((run_id, detail))
        return True
    return False


def _move_into_place(results: Path, entry: _Entry, action: str, directory: Path, place: _Place,
                     stats: ImportStats) -> None:
    for _attempt in range(3):
        if action == "add":
            target = results / "runs" / entry.run_id
        else:
            target = results / ALTERNATES / entry.run_id / entry.key
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            rename_noreplace(directory, target)
        except FileExistsError:  # someone (vrbench run, another import) got there first: look again
            place._counted.pop(entry.run_id, None)
            place.keys.setdefault(entry.run_id, set()).discard(entry.key)
            if target.name == entry.key:
                stats.identical.append(entry.run_id)
                return
            action, detail = place.decide(entry.run_id, entry.key)
            if _settled(action, detail, entry.run_id, stats):
                return
            continue
        (stats.added if action == "add" else stats.conflicts).append(entry.run_id)
        return
    stats.deferred.append((entry.run_id, "its directory kept changing during the import; import again"))
