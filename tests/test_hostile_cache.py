"""A decoded-image cache entry changed in place is found by its checksum and rebuilt (issue 25, item 7).

Before, an entry overwritten at the same size was mapped silently (a job "finished" at 2.13 % instead of 3.19 %)
and stayed corrupt. Now every entry has a checksum beside it, checked the first time a process maps the entry; the
cost is counted here (bytes checksummed) and measured in benchmarks/cache_checksum.py.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from vrbench.datasets import DATASETS, cache
from vrbench.datasets.cache import cache_entries, cached_array, checksum_path, remove_entries
from vrbench.datasets.files import decoded_images


def _entry(root: Path) -> Path:
    (path,) = sorted((root.parent / "cache").glob("*.npy"))
    return path


def _new_process() -> None:
    """Forget which entries this process has checked, as a new job's process would."""
    cache._verified.clear()


def test_an_entry_changed_in_place_is_rebuilt_with_a_warning(dtd_root: Path) -> None:
    info = DATASETS.get("dtd")
    good = info.load("train", 32, dtd_root).images.clone()
    path = _entry(dtd_root)
    size = path.stat().st_size
    with open(path, "r+b") as handle:  # overwrite some pixels in place: same size, same header, same shape
        handle.seek(size // 2)
        handle.write(bytes(255 - b for b in handle.read(5000)))
        handle.seek(size // 2)
    assert path.stat().st_size == size
    assert not np.array_equal(np.load(path), good.numpy())  # the file really is corrupt now
    _new_process()
    decoded = decoded_images()
    with pytest.warns(UserWarning, match="is corrupt: its content changed since it was written"):
        again = info.load("train", 32, dtd_root)
    assert torch.equal(again.images, good)  # the job trains on the right pixels ...
    assert decoded_images() - decoded == len(good)  # ... decoded again ...
    assert np.array_equal(np.load(path), good.numpy())  # ... and the entry on disk is repaired
    _new_process()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        info.load("train", 32, dtd_root)  # a sound entry: no warning, no decode
    assert decoded_images() - decoded == len(good)


def test_an_entry_is_checked_once_per_process(tmp_path: Path) -> None:
    shape = (40, 3, 16, 16)
    nbytes = int(np.prod(shape))

    def build(out: np.ndarray) -> None:
        out[:] = np.arange(out.size, dtype=np.uint64).reshape(shape) % 251

    before = cache._checked_bytes
    cached_array("k", shape, build, tmp_path)  # built: checksummed once while its pages are in memory
    cached_array("k", shape, build, tmp_path)
    cached_array("k", shape, build, tmp_path)
    assert cache._checked_bytes - before == nbytes
    _new_process()
    cached_array("k", shape, build, tmp_path)
    cached_array("k", shape, build, tmp_path)
    assert cache._checked_bytes - before == 2 * nbytes  # a new process checks it once, then trusts its check


def test_chunks_cover_every_image(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cache, "CHUNK_BYTES", 3 * 3 * 8 * 8)  # 3 images per chunk, 10 images: 4 chunks
    shape = (10, 3, 8, 8)
    cached_array("k", shape, lambda out: out.fill(9), tmp_path)
    record = json.loads(checksum_path(tmp_path / "k.npy").read_text())
    assert record["chunk_images"] == 3 and len(record["crcs"]) == 4
    array = np.load(tmp_path / "k.npy", mmap_mode="r+")
    array[9, 2, 7, 7] = 0  # the very last byte, in the short last chunk
    array.flush()
    del array
    _new_process()
    with pytest.warns(UserWarning, match=r"1 chunk\(s\) differ, from image 9"):
        rebuilt = cached_array("k", shape, lambda out: out.fill(9), tmp_path)
    assert (np.asarray(rebuilt) == 9).all()


def test_an_entry_without_a_checksum_is_rebuilt(tmp_path: Path) -> None:
    shape = (4, 3, 2, 2)
    cached_array("k", shape, lambda out: out.fill(1), tmp_path)
    checksum_path(tmp_path / "k.npy").unlink()  # as entries written before checksums existed
    _new_process()
    with pytest.warns(UserWarning, match="has no checksum"):
        array = cached_array("k", shape, lambda out: out.fill(2), tmp_path)
    assert (np.asarray(array) == 2).all() and checksum_path(tmp_path / "k.npy").exists()


def test_clearing_an_entry_removes_its_checksum(dtd_root: Path) -> None:
    DATASETS.get("dtd").load("test", 32, dtd_root)
    folder = dtd_root.parent / "cache"
    assert len(list(folder.glob("*.sum"))) == 1
    remove_entries(cache_entries(folder))
    assert not list(folder.glob("*.npy")) and not list(folder.glob("*.sum"))
