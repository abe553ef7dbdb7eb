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
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import uuid
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from vrbench.datasets.roots import cache_dir, cache_enabled

# Bump when the decode/resize transform changes: old cache files then stop matching.
TRANSFORM_VERSION = "pil-rgb-bilinear-v1"


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


def _open(path: Path, shape: tuple[int, ...]) -> np.ndarray | None:
    """The cached array, or None when it is absent or not what we expect (then it is rebuilt)."""
    if not path.is_file():
        return None
    try:
        array = np.load(path, mmap_mode="c")
    except (OSError, ValueError):
        return None
    if array.dtype != np.uint8 or array.shape != shape:
        return None
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
    try:
        folder.mkdir(parents=True, exist_ok=True)
        lock = folder / f"{key}.lock"
        with _locked(lock):
            found = _open(path, shape)  # another job may have built it while we waited
            if found is not None:
                return found
            tmp = folder / f".{key}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp.npy"
            try:
                out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=shape)
                build(out)
                out.flush()
                del out
                os.replace(tmp, path)
            finally:
                tmp.unlink(missing_ok=True)
    except PermissionError as exc:
        warnings.warn(f"decoded-image cache {folder} is not writable ({exc}); decoding in memory", stacklevel=2)
        out = np.empty(shape, dtype=np.uint8)
        build(out)
        return out
    found = _open(path, shape)
    if found is None:  # pragma: no cover - only if the file vanished between rename and open
        raise OSError(f"decoded-image cache file {path} disappeared after it was written")
    return found
