"""Paper scale: a job lists, decodes and caches only what it uses (counted, not timed).

The ImageNet fixture has the real class count (1,000 classes x 20 training images, one validation image each);
decodes are counted by the decoder itself (``files.decoded_images``), directory scans by the lister.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from vrbench.datasets import DATASETS, files, listing
from vrbench.datasets.cache import cache_entries
from vrbench.datasets.fewshot import make_fewshot_record, sample_fewshot, write_fewshot_files
from vrbench.engine.clip_data import load_prompt_data
from vrbench.engine.data import prepare_splits
from vrbench.testing import write_coop_dataset, write_imagenet_scale

SIZE = 16  # pixels: the counts, not the resolution, are under test
CLASSES, PER_CLASS = 1000, 20


@pytest.fixture(autouse=True)
def _cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VRBENCH_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("VRBENCH_CACHE", raising=False)


@pytest.fixture(scope="module")
def imagenet_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("imagenet-scale")
    write_imagenet_scale(root, CLASSES, PER_CLASS, val_per_class=1)
    return root


def _job(shots: int, seed: int = 1) -> dict:
    return {"dataset": "imagenet", "subsample": "all", "shots": shots, "seed": seed}


def test_a_16_shot_imagenet_job_decodes_16_images_per_class_and_keeps_todays_draw(
        imagenet_root: Path, tmp_path: Path) -> None:
    before = files.decoded_images()
    data = load_prompt_data(_job(16), imagenet_root, SIZE, False, "clip", needs_train=True)
    decoded = files.decoded_images() - before
    assert decoded == 16 * CLASSES + CLASSES  # the 16 shots of each class, and the 1,000-image test split
    assert len(data.train) == 16 * CLASSES and len(data.test) == CLASSES
    # the stored few-shot file (vrbench data fewshot) holds the same positions, so its checksum stays valid
    assert data.record["fewshot_positions"] == make_fewshot_record("imagenet", imagenet_root, 16, 1)["train"]
    assert torch.equal(torch.bincount(data.train.labels), torch.full((CLASSES,), 16))
    # the cache holds 16,000 + 1,000 images, not 20,000 + 1,000
    sizes = sorted(entry.images for entry in cache_entries(tmp_path / "cache"))
    assert sizes == [CLASSES, 16 * CLASSES]


def test_a_repeated_job_decodes_nothing_and_reuses_the_listing(imagenet_root: Path) -> None:
    load_prompt_data(_job(4, seed=2), imagenet_root, SIZE, False, "clip", needs_train=True)
    decoded, scanned = files.decoded_images(), listing.scanned_directories()
    again = load_prompt_data(_job(4, seed=2), imagenet_root, SIZE, False, "clip", needs_train=True)
    assert files.decoded_images() == decoded  # both splits come from the cache
    assert listing.scanned_directories() == scanned  # train and val listings reused: no folder scanned again
    assert len(again.train) == 4 * CLASSES


def test_a_changed_class_folder_is_listed_again(tmp_path: Path) -> None:
    root = tmp_path / "data"
    write_imagenet_scale(root, num_classes=3, per_class=2)
    assert len(DATASETS.get("imagenet").file_list("train", root)) == 6
    first_scan = listing.scanned_directories()
    assert len(DATASETS.get("imagenet").file_list("train", root)) == 6
    assert listing.scanned_directories() == first_scan  # unchanged folders: the stored listing is used
    folder = sorted((root / "imagenet" / "images" / "train").iterdir())[1]
    extra = folder / "zz_new.JPEG"
    extra.write_bytes(next(folder.iterdir()).read_bytes())
    os.utime(folder, ns=(folder.stat().st_atime_ns, folder.stat().st_mtime_ns + 1_000_000))  # coarse clocks
    listed = DATASETS.get("imagenet").file_list("train", root)
    assert len(listed) == 7 and f"{folder.name}/zz_new.JPEG" in listed.paths


def test_chosen_images_equal_the_decode_everything_path(tmp_path: Path) -> None:
    """Today's path decoded the whole split, drew from its labels and kept the draw: same positions, same pixels."""
    root = tmp_path / "data"
    write_imagenet_scale(root, num_classes=50, per_class=6)
    data = load_prompt_data(_job(4, seed=3), root, SIZE, False, "clip", needs_train=True)
    full = DATASETS.get("imagenet").load("train", SIZE, root, resize="clip")
    positions, _ = sample_fewshot(full.labels.tolist(), None, 4, 3)
    assert data.record["fewshot_positions"] == positions
    old = full.subset(torch.tensor(positions))
    assert torch.equal(data.train.images, old.images) and torch.equal(data.train.labels, old.labels)
    # and the checksummed few-shot file written for this draw reads back with the same positions
    write_fewshot_files("imagenet", root, shots=(4,), seeds=(3,))
    assert make_fewshot_record("imagenet", root, 4, 3)["train"] == positions


def test_a_subset_job_decodes_only_its_subset(tmp_path: Path) -> None:
    root = tmp_path / "data"
    write_coop_dataset("dtd", root, per_class=(4, 1, 3), image_size=(12, 10))
    config = {"dataset": "dtd", "subset": {"train": 47, "test": 20}, "val_fraction": 0.0, "seed": 0}
    before = files.decoded_images()
    splits = prepare_splits(config, root, {"train": SIZE, "test": SIZE})
    assert files.decoded_images() - before == 47 + 20  # not 188 + 141
    full = DATASETS.get("dtd").load("train", SIZE, root)
    from vrbench.datasets.subsets import stratified_subset

    expected = full.subset(stratified_subset(full.labels, 47, seed=0))
    assert np.array_equal(splits.train.images.numpy(), expected.images.numpy())
