"""Turn a job config into its train / validation / test image sets.

File-backed datasets (the CoOp-split sets, ImageNet and its variants, GTSRB) are chosen from before anything is
decoded: the split's file list carries the labels, so the suite's fixed subset and a few-shot draw pick positions
from the labels alone and only the chosen images are decoded (and cached). A 16-shot ImageNet job decodes
16 x 1,000 training images, not 1.28 M. The positions are those the old decode-everything-then-pick path chose,
because both draw from the same label list in the same order.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from vrbench.datasets import DATASETS
from vrbench.datasets.files import load_files
from vrbench.datasets.images import ImageSet, resolve_data_root
from vrbench.datasets.subsets import split_validation, stratified_subset

# choose(labels) -> positions into labels: a draw that needs the labels only (CoOp's few-shot sampling)
Chooser = Callable[[Sequence[int]], Sequence[int]]

SUBSET_SEED = 0  # subsets are shared by every method and seed of a suite, so they use a fixed seed


@dataclass
class Splits:
    train: ImageSet
    val: ImageSet | None
    test: ImageSet
    # positions (in the training split after any subset) carved out for validation, recorded in the run dir
    val_indices: list[int] | None = None


def load_split(config: dict[str, Any], split: str, size: int, data_root: Path | None, download: bool = False,
               resize: str = "squash", choose: Chooser | None = None) -> ImageSet:
    """One split of the job's dataset, restricted to the suite's fixed stratified `subset` when it sets one, then
    to the positions ``choose`` picks from the labels (in its order); only those images are decoded."""
    info = DATASETS.get(config["dataset"])
    if download:  # `--download`: what `vrbench data prepare NAME` does (a no-op when the dataset is ready)
        from vrbench.datasets.prepare import prepare_dataset

        prepare_dataset(info.name, resolve_data_root(data_root).absolute())
    wanted = (config.get("subset") or {}).get(split)
    if info.lister is not None:
        files = info.file_list(split, data_root)
        if wanted:
            files = files.select(stratified_subset(torch.tensor(files.labels, dtype=torch.int64), wanted,
                                                   seed=SUBSET_SEED).tolist())
        if choose is not None:
            files = files.select(list(choose(files.labels)))
        return load_files(files, size, resize=resize if info.clip_resize else "squash")
    images = info.load(split, size, data_root, resize=resize)
    if wanted:
        images = images.subset(stratified_subset(images.labels, wanted, seed=SUBSET_SEED))
    if choose is not None:
        images = images.subset(torch.tensor(list(choose(images.labels.tolist())), dtype=torch.int64))
    return images


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
