"""Decoded-image cache: decode and resize a file-backed split once, then memory-map the uint8 array.

JPEG decoding dominates the data pipeline of the CoOp-split datasets (a Food-101 epoch decodes 50,500 JPEGs).
The first use of (dataset, split, size) decodes every image once into ``<cache>/<key>.npy`` (N x 3 x S x S
uint8); every later epoch and every later job maps that file instead (``np.load(mmap_mode="c")``: the OS page
cache is shared between concurrent jobs, and a stray write stays private to its process instead of crashing it,
which a read-only map would do and torch needs a writable array anyway).

The key holds the dataset, split, size, ``TRANSFORM_VERSION`` and a fingerprint of the file list (paths and
labels), so a changed split file or a changed transform never reads a stale array. Writers build into a temporary
file in the cache directory and ``os.replace`` it into place, under an exclusive ``flock`` per key, so concurrent
jobs never see a half-written file and only one of them decodes. ``VRBENCH_CACHE=0`` (or ``use_cache=False``)
bypasses the cache; ``VRBENCH_CACHE_DIR`` moves it (see ``roots.py``).

Every entry has a checksum beside it (``<key>.sum``: a CRC-32 per chunk of about 64 MiB of images, written before
the array is renamed into place). The first time a process maps an entry it checks every chunk (in threads: zlib
releases the GIL), so an entry overwritten in place, even at the same size, is found, rebuilt with a warning and never
trained on; later maps of the same file in that process are not checked again. An entry without a checksum (written
before checksums existed) is rebuilt. ``benchmarks/cache_checksum.py`` measures the cost.

Before decoding, the writer checks that the array fits on the cache's filesystem and then allocates the file's
blocks up front (``space.py``): a full disk is one ``DiskSpaceError`` naming the bytes needed and free and how to
move the cache, and no partial file is left behind. Every use of an entry touches its modification time, which
`vrbench data cache ls` shows as its last use.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import re
import uuid
import warnings
import zlib
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vrbench.datasets.roots import CACHE_DIR_ENV, CACHE_ENV, cache_dir, cache_enabled, config_path
from vrbench.datasets.space import ensure_free_space, reserve, writable

# Bump when the decode/resize transform changes: old cache files then stop matching.
TRANSFORM_VERSION = "pil-rgb-bilinear-v1"
HEADER_BYTES = 4096  # an upper bound on a .npy header (numpy pads it to a multiple of 64, ~128 bytes here)
CHECKSUM_SUFFIX = ".sum"  # <key>.sum beside <key>.npy
CHUNK_BYTES = 64 * 2**20  # images per checksum chunk: as many as fit in this
_verified: set[tuple[str, int, int, str]] = set()  # (path, inode, size, checksum) checked by this process
_checked_bytes = 0  # bytes checksummed by this process (tests count them)


def entry_bytes(shape: tuple[int, ...]) -> int:
    """Disk bytes of the cache entry of a uint8 array of ``shape`` (an upper bound: the header is ~128 bytes)."""
    count = 1
    for side in shape:
        count *= int(side)
    return count + HEADER_BYTES


def how_to_move() -> str:
    """The sentence a full-disk refusal ends with: the settings that move, empty or turn off the cache."""
    return (f"Move the cache to a larger disk with {CACHE_DIR_ENV}=/path/on/larger/disk (or `cache_dir:` in "
            f"{config_path()}), free space with `vrbench data cache clear`, or set {CACHE_ENV}=0 to decode into "
            "memory instead.")


def fingerprint(items: list[tuple[str, int]]) -> str:
    """sha256 over the (relative path, label) list, in order: what the cached array depends on."""
    digest = hashlib.sha256()
    for path, label in items:
        digest.update(f"{path}\t{label}\n".encode())
    return digest.hexdigest()


def cache_key(dataset: str, split: str, size: int, items_fingerprint: str) -> str:
    return f"{dataset}-{split}-{size}px-{TRANSFORM_VERSION}-{items_fingerprint[:16]}"


@contextlib.contextmanager
def _locked(lock_path: Path) -> Iterator[None]:
    """An exclusive advisory lock; where flock is unsupported (some network filesystems) proceed without it."""
    handle = open(lock_path, "a+b")  # noqa: SIM115 - closed in finally
    try:
        try:
            import fcntl

            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        except (ImportError, OSError):
            pass
        yield
    finally:
        handle.close()  # closing releases the lock


def checksum_path(path: Path) -> Path:
    return path.with_suffix(CHECKSUM_SUFFIX)


def chunk_checksums(array: np.ndarray) -> dict[str, object]:
    """The checksum record of an array: CRC-32 of each chunk of whole images, computed in threads."""
    global _checked_bytes
    per_image = max(1, array[0].nbytes if len(array) else 1)
    images = max(1, CHUNK_BYTES // per_image)
    starts = range(0, len(array), images)

    def crc(start: int) -> int:
        return zlib.crc32(memoryview(np.ascontiguousarray(array[start:start + images])).cast("B"))

    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        crcs = list(pool.map(crc, starts))
    _checked_bytes += array.nbytes
    return {"algorithm": "crc32", "shape": list(array.shape), "chunk_images": images, "crcs": crcs}


def _write_checksums(path: Path, record: dict[str, object]) -> None:
    target = checksum_path(path)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        tmp.write_text(json.dumps(record), encoding="utf-8")
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def _verify(path: Path, array: np.ndarray) -> str | None:
    """Why the mapped entry cannot be used (no checksum, or a chunk that differs), or None when it checks out.
    A file this process already checked (same inode, size and checksum record) is not read again."""
    try:
        text = checksum_path(path).read_text(encoding="utf-8")
        record = json.loads(text)
        stat = path.stat()
    except FileNotFoundError:
        return "it has no checksum (written by an older vrbench)"
    except (OSError, ValueError) as exc:
        return f"its checksum file is unreadable ({exc})"
    seen = (str(path), stat.st_ino, stat.st_size, text)
    if seen in _verified:
        return None
    if not isinstance(record, dict) or record.get("shape") != list(array.shape):
        return "its checksum file does not describe it"
    found = chunk_checksums(array)
    if found["chunk_images"] != record.get("chunk_images") or found["crcs"] != record.get("crcs"):
        expected = record.get("crcs") or []
        bad = [i for i, c in enumerate(found["crcs"]) if i >= len(expected) or expected[i] != c]
        first = bad[0] * found["chunk_images"] if bad else 0
        return f"its content changed since it was written ({len(bad)} chunk(s) differ, from image {first})"
    _verified.add(seen)
    return None


def _open(path: Path, shape: tuple[int, ...], warn: bool = False) -> np.ndarray | None:
    """The cached array, or None when it is absent or not what we expect (then it is rebuilt); ``warn`` says why
    an existing entry is rebuilt (only the writer, under the lock, says it: a reader may just race a rebuild)."""
    if not path.is_file():
        return None
    try:
        array = np.load(path, mmap_mode="c")
    except (OSError, ValueError):
        return None
    if array.dtype != np.uint8 or array.shape != shape:
        return None
    problem = _verify(path, array)
    if problem is not None:
        if warn:
            warnings.warn(f"decoded-image cache entry {path} is corrupt: {problem}; rebuilding it", stacklevel=3)
        return None
    with contextlib.suppress(OSError):  # last use, for `vrbench data cache ls` (a read-only cache keeps its time)
        os.utime(path)
    return array


def cached_array(
    key: str,
    shape: tuple[int, ...],
    build: Callable[[np.ndarray], None],
    directory: Path | None = None,
    use_cache: bool = True,
) -> np.ndarray:
    """The uint8 array of ``shape`` for ``key``: mapped from the cache, else built by ``build(out)`` and stored.

    ``build`` fills the array it is given in place. With the cache off (or not writable) the array is built in
    memory and nothing is written.
    """
    if not (use_cache and cache_enabled()):
        out = np.empty(shape, dtype=np.uint8)
        build(out)
        return out
    folder = Path(directory) if directory is not None else cache_dir()
    path = folder / f"{key}.npy"
    found = _open(path, shape)
    if found is not None:
        return found
    what = f"the decoded-image cache entry {key}.npy"
    if writable(folder):  # a read-only cache falls back to memory below; its free space says nothing
        ensure_free_space(folder, entry_bytes(shape), what, how_to_move())  # before anything is created
    try:
        folder.mkdir(parents=True, exist_ok=True)
        lock = folder / f"{key}.lock"
        with _locked(lock):
            found = _open(path, shape, warn=True)  # another job may have built it while we waited
            if found is not None:
                return found
            tmp = folder / f".{key}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp.npy"
            try:
                ensure_free_space(folder, entry_bytes(shape), what, how_to_move())  # others may have written
                out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=shape)
                reserve(tmp, tmp.stat().st_size, what, how_to_move())
                build(out)
                out.flush()
                record = chunk_checksums(out)  # of the pages just written, still in memory
                del out
                _write_checksums(path, record)  # first: an entry in place always has its checksum
                os.replace(tmp, path)
                stat = path.stat()
                _verified.add((str(path), stat.st_ino, stat.st_size, checksum_path(path).read_text(encoding="utf-8")))
            finally:
                tmp.unlink(missing_ok=True)
    except OSError as exc:
        if exc.errno not in (errno.EACCES, errno.EPERM, errno.EROFS):
            raise
        warnings.warn(f"decoded-image cache {folder} is not writable ({exc}); decoding in memory", stacklevel=2)
        out = np.empty(shape, dtype=np.uint8)
        build(out)
        return out
    found = _open(path, shape)
    if found is None:  # pragma: no cover - only if the file vanished between rename and open
        raise OSError(f"decoded-image cache file {path} disappeared after it was written")
    return found


# ---------------------------------------------------------------- `vrbench data cache ls / clear`

_KEY = re.compile(r"^(?P<dataset>[A-Za-z0-9_]+)-(?P<split>.+)-(?P<size>\d+)px-(?P<version>.+)-(?P<fp>[0-9a-f]{16})$")


@dataclass(frozen=True)
class CacheEntry:
    """One decoded array in the cache, as `vrbench data cache ls` lists it."""

    path: Path
    dataset: str
    split: str  # "train", "test-clip", ...
    size: int  # image side in pixels
    images: int | None  # None when the file's header is unreadable
    bytes: int
    last_use: float  # modification time: set when written and on every use

    @property
    def current(self) -> bool:
        """False for entries of an older transform version, which no job reads any more."""
        return f"px-{TRANSFORM_VERSION}-" in self.path.stem


def _images_in(path: Path) -> int | None:
    try:
        return int(np.load(path, mmap_mode="r").shape[0])  # a map reads the header only
    except (OSError, ValueError, IndexError):
        return None


def cache_entries(directory: Path | None = None) -> list[CacheEntry]:
    """Every finished entry of the cache (temporary files of writers at work are not entries), oldest use first."""
    folder = Path(directory) if directory is not None else cache_dir()
    if not folder.is_dir():
        return []
    entries = []
    for path in folder.glob("*.npy"):
        match = _KEY.match(path.stem)
        if path.name.startswith(".") or match is None:
            continue
        try:
            stat = path.stat()
        except OSError:  # removed meanwhile
            continue
        entries.append(CacheEntry(path, match["dataset"], match["split"], int(match["size"]), _images_in(path),
                                  stat.st_size, stat.st_mtime))
    return sorted(entries, key=lambda entry: entry.last_use)


def remove_entries(entries: list[CacheEntry]) -> int:
    """Delete entries (jobs that have one mapped keep reading it until they finish); return the bytes freed."""
    freed = 0
    for entry in entries:
        with contextlib.suppress(FileNotFoundError):
            entry.path.unlink()
            freed += entry.bytes
        with contextlib.suppress(FileNotFoundError):
            entry.path.with_suffix(".lock").unlink()
        with contextlib.suppress(FileNotFoundError):
            checksum_path(entry.path).unlink()
    return freed


def remove_listings(directory: Path | None = None) -> int:
    """Delete the stored folder listings (``listing.py``); return the bytes freed."""
    from vrbench.datasets.listing import FOLDER

    folder = (Path(directory) if directory is not None else cache_dir()) / FOLDER
    freed = 0
    for path in folder.glob("*.json") if folder.is_dir() else ():
        with contextlib.suppress(FileNotFoundError):
            size = path.stat().st_size
            path.unlink()
            freed += size
    return freed
