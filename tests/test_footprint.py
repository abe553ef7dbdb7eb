"""`run --dry-run`'s memory and disk estimates: cache entries counted as the cache writes them, shared ones once."""

from __future__ import annotations

from pathlib import Path

import pytest

from vrbench.datasets import DATASETS
from vrbench.footprint import CUDA_CONTEXT_BYTES, entry_bytes, job_footprint, suite_footprint
from vrbench.suite import load_suite

REPO = Path(__file__).resolve().parents[1]


def _prompt(method: str, stage: str = "train", subsample: str = "all", **extra) -> dict:
    return {"backbone": "clip_vit_b16", "dataset": "imagenet", "method": method, "stage": stage,
            "subsample": subsample, "shots": 16, "seed": 1, "subset": None, "batch_size": 4,
            "test_batch_size": 100, **extra}


def test_a_16_shot_imagenet_job_needs_its_shots_and_the_test_split_on_disk() -> None:
    needs = job_footprint(_prompt("coop"))
    assert sorted(needs.cache.values()) == [entry_bytes(16 * 1000, 224), entry_bytes(50_000, 224)]
    whole_train = entry_bytes(DATASETS.get("imagenet").train_size, 224)  # what decoding everything wrote
    assert whole_train > 80 * entry_bytes(16 * 1000, 224)


def test_shared_entries_count_once_in_the_suite_total() -> None:
    base, new = _prompt("zeroshot", subsample="base"), _prompt("zeroshot", subsample="new")
    seed2 = _prompt("coop", seed=2)
    suite = suite_footprint([base, new, _prompt("coop"), _prompt("maple"), seed2])
    # one test entry for all five, and one 16-shot entry per seed (CoOp and MaPLe share seed 1's)
    assert suite.cache_bytes == entry_bytes(50_000, 224) + 2 * entry_bytes(16_000, 224)


def test_the_entry_size_is_the_size_of_the_file_the_cache_writes(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from vrbench.testing import write_coop_dataset

    monkeypatch.setenv("VRBENCH_CACHE_DIR", str(tmp_path / "cache"))
    write_coop_dataset("dtd", tmp_path / "data", per_class=(2, 1, 1), image_size=(12, 10))
    DATASETS.get("dtd").load("train", 24, tmp_path / "data")
    (written,) = (tmp_path / "cache").glob("*.npy")
    assert written.stat().st_size == entry_bytes(94, 24)


def test_gpu_memory_follows_the_batch_and_what_backpropagates() -> None:
    coop, promptsrc = job_footprint(_prompt("coop")), job_footprint(_prompt("promptsrc"))
    assert promptsrc.gpu > coop.gpu  # deep vision prompts backpropagate through the image tower
    cocoop = job_footprint(_prompt("cocoop"))  # the same batch of 4
    assert cocoop.gpu > coop.gpu  # CoCoOp runs the text tower once per image and class
    vr = {"backbone": "resnet18", "dataset": "cifar10", "input": "padding", "mapping": "ilm", "image_size": 32,
          "canvas": 224, "subset": None}
    small, large = job_footprint({**vr, "batch_size": 32}), job_footprint({**vr, "batch_size": 256})
    assert CUDA_CONTEXT_BYTES < small.gpu < large.gpu
    assert small.cache == {}  # CIFAR is an in-memory array, not a decoded-image cache entry


def test_every_job_of_every_shipped_suite_gets_an_estimate() -> None:
    for path in sorted((REPO / "suites").glob("*.yaml")):
        suite = suite_footprint([job.config for job in load_suite(path).jobs])
        assert all(job.host > 0 and job.gpu > CUDA_CONTEXT_BYTES for job in suite.jobs), path.name
