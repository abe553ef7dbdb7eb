"""Turn a job config into its train / validation / test image sets."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vrbench.datasets import DATASETS
from vrbench.datasets.images import ImageSet
from vrbench.datasets.subsets import split_validation, stratified_subset

SUBSET_SEED = 0  # subsets are shared by every method and seed of a suite, so they use a fixed seed


@dataclass
class Splits:
    train: ImageSet
    val: ImageSet | None
    test: ImageSet
    # positions (in the training split after any subset) carved out for validation, recorded in the run dir
    val_indices: list[int] | None = None


def load_split(config: dict[str, Any], split: str, size: int, data_root: Path | None, download: bool = False,
               resize: str = "squash") -> ImageSet:
    """One split of the job's dataset, restricted to the suite's fixed stratified `subset` when it sets one."""
    images = DATASETS.get(config["dataset"]).load(split, size, data_root, download, resize=resize)
    wanted = (config.get("subset") or {}).get(split)
    return images.subset(stratified_subset(images.labels, wanted, seed=SUBSET_SEED)) if wanted else images


def prepare_splits(config: dict[str, Any], data_root: Path | None, sizes: dict[str, int],
                   download: bool = False, resize: str = "squash") -> Splits:
    """Load train and test at the sizes the input method asks for (it does the rest per batch).

    ``resize`` is the backbone's way to a square image (CLIP: shorter side + centre crop, §5.2).
    """
    train = load_split(config, "train", sizes["train"], data_root, download, resize)
    test = load_split(config, "test", sizes["test"], data_root, download, resize)
    val = None
    if config["val_fraction"] > 0:
        # Seeded by the run's seed and recorded through the config: the split is part of the job.
        keep, held_out = split_validation(train.labels, config["val_fraction"], seed=config["seed"])
        train, val = train.subset(keep), train.subset(held_out)
        return Splits(train, val, test, held_out.tolist())
    return Splits(train, val, test)
