"""The decoded-image cache: decode once, map afterwards, keyed safely, shared safely, and switchable off."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from vrbench.datasets import DATASETS
from vrbench.datasets.cache import TRANSFORM_VERSION, cache_key, cached_array
from vrbench.datasets.coop import file_list
from vrbench.datasets.files import load_files


def _cache_files(root: Path) -> list[Path]:
    return sorted((root.parent / "cache").glob("*.npy"))


def test_first_use_decodes_into_a_file_later_uses_map_it(dtd_root: Path) -> None:
    info = DATASETS.get("dtd")
    first = info.load("train", 32, dtd_root)
    (cached,) = _cache_files(dtd_root)
    assert cached.name.startswith("dtd-train-32px-" + TRANSFORM_VERSION)
    assert np.load(cached).shape == (94, 3, 32, 32)
    # later loads read the file, not the JPEGs: delete the images and the same pixels still come back
    for jpeg in (dtd_root / "dtd" / "images").rglob("*.jpg"):
        jpeg.unlink()
    again = info.load("train", 32, dtd_root)
    assert torch.equal(first.images, again.images) and torch.equal(first.labels, again.labels)
    assert isinstance(np.load(cached, mmap_mode="c"), np.memmap)


def test_each_size_split_and_file_list_has_its_own_entry(dtd_root: Path) -> None:
    info = DATASETS.get("dtd")
    info.load("train", 32, dtd_root)
    info.load("train", 16, dtd_root)
    info.load("test", 32, dtd_root)
    assert len(_cache_files(dtd_root)) == 3
    train = file_list("dtd", "train", dtd_root)
    assert cache_key("dtd", "train", 32, train.fingerprint()) != cache_key(
        "dtd", "train", 32, train.select([0, 1]).fingerprint())


def test_cache_off_writes_nothing_and_gives_the_same_pixels(dtd_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cached = DATASETS.get("dtd").load("val", 24, dtd_root)
    monkeypatch.setenv("VRBENCH_CACHE", "0")
    (dtd_root.parent / "cache" / next(iter(_cache_files(dtd_root))).name).unlink()
    fresh = DATASETS.get("dtd").load("val", 24, dtd_root)
    assert torch.equal(cached.images, fresh.images) and not _cache_files(dtd_root)
    assert torch.equal(load_files(file_list("dtd", "val", dtd_root), 24, use_cache=False).images, cached.images)
    assert not _cache_files(dtd_root)


def test_a_damaged_cache_file_is_rebuilt(dtd_root: Path) -> None:
    good = DATASETS.get("dtd").load("test", 32, dtd_root).images.clone()
    (path,) = _cache_files(dtd_root)
    path.write_bytes(path.read_bytes()[:200])  # truncated: the shape no longer fits
    assert torch.equal(DATASETS.get("dtd").load("test", 32, dtd_root).images, good)


def test_concurrent_builders_decode_once_and_never_expose_a_partial_file(tmp_path: Path) -> None:
    calls = []

    def build(out: np.ndarray) -> None:
        calls.append(1)
        time.sleep(0.3)  # the other threads arrive while this one is still decoding
        out[:] = 7

    results: list[np.ndarray] = []

    def worker() -> None:
        results.append(np.array(cached_array("k", (4, 3, 2, 2), build, tmp_path)))

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(calls) == 1 and all((r == 7).all() for r in results)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["k.lock", "k.npy", "k.sum"]  # no temporary file left


def test_a_failed_build_leaves_no_file(tmp_path: Path) -> None:
    def build(out: np.ndarray) -> None:
        raise RuntimeError("decode failed")

    with pytest.raises(RuntimeError):
        cached_array("k", (2, 3, 2, 2), build, tmp_path)
    assert not list(tmp_path.glob("*.npy"))
