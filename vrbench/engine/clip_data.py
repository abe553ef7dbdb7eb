"""Data for the prompt-learning protocols: CoOp's few-shot draw, the base/novel class split, Dassl's augmentation.

Images arrive as the backbone asks (CLIP: shorter side to 224 with bicubic, centre crop; Dassl's test transform).
Training batches then get Dassl's ``RandomResizedCrop(scale=(0.08, 1), ratio=(3/4, 4/3), bicubic)`` and a
horizontal flip (docs/methods.md CLIP §0, §6.3.9) drawn per sample from the global RNG. One deviation, recorded in the
README: the crop is taken from the centre-cropped square the loader decoded, not from the full original image.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from vrbench.datasets.fewshot import sample_fewshot, subsample_classes
from vrbench.datasets.images import ImageSet
from vrbench.engine.data import load_split


def random_resized_crop_params(height: int, width: int, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3)):
    """torchvision's RandomResizedCrop.get_params (10 tries, then the centre fallback), from the global RNG."""
    area = height * width
    log_ratio = torch.log(torch.tensor(ratio))
    for _ in range(10):
        target_area = area * torch.empty(1).uniform_(scale[0], scale[1]).item()
        aspect = math.exp(torch.empty(1).uniform_(log_ratio[0], log_ratio[1]).item())
        w = int(round(math.sqrt(target_area * aspect)))
        h = int(round(math.sqrt(target_area / aspect)))
        if 0 < w <= width and 0 < h <= height:
            top = torch.randint(0, height - h + 1, size=(1,)).item()
            left = torch.randint(0, width - w + 1, size=(1,)).item()
            return top, left, h, w
    in_ratio = width / height
    if in_ratio < min(ratio):
        w, h = width, int(round(width / min(ratio)))
    elif in_ratio > max(ratio):
        h, w = height, int(round(height * max(ratio)))
    else:
        w, h = width, height
    return (height - h) // 2, (width - w) // 2, h, w


class ClipImageInput(nn.Module):
    """The prompt learners' preprocessing: Dassl train augmentation, or nothing, then CLIP's normalisation."""

    trains_backbone = False

    def __init__(self, size: int, mean: tuple[float, ...], std: tuple[float, ...], augment: bool = True) -> None:
        super().__init__()
        self.size = size
        self.augment = augment
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1))

    def load_size(self, split: str) -> int:
        return self.size

    def preprocess(self, x: torch.Tensor, train: bool) -> torch.Tensor:
        if train and self.augment:
            crops = []
            for image in x:
                top, left, h, w = random_resized_crop_params(image.shape[-2], image.shape[-1])
                crop = image[None, :, top:top + h, left:left + w]
                crops.append(F.interpolate(crop, size=(self.size, self.size), mode="bicubic", align_corners=False,
                                           antialias=True).clamp_(0, 1))
            x = torch.cat(crops)
            flips = torch.rand(x.shape[0]) < 0.5
            x = torch.where(flips.view(-1, 1, 1, 1).to(x.device), x.flip(-1), x)
        return (x - self.mean) / self.std


@dataclass
class PromptData:
    train: ImageSet | None
    test: ImageSet
    val: ImageSet | None
    record: dict[str, Any]  # what was drawn (few-shot positions, class split), written to the run directory


def relabel(images: ImageSet, which: str, num_classes: int) -> ImageSet:
    """Keep the base or new half of the classes (ceil(n/2) over all labels), renumbered from 0 (§2.5)."""
    if which == "all":
        return images
    kept, labels, mapping = subsample_classes(images.labels.tolist(), which, reference=list(range(num_classes)))
    classes = tuple(images.classes[old] for old in sorted(mapping, key=mapping.get))
    index = torch.tensor(kept, dtype=torch.int64)
    return ImageSet(images.images[index], torch.tensor(labels, dtype=torch.int64), classes)


def load_prompt_data(config: dict[str, Any], data_root: Path | None, size: int, download: bool, resize: str,
                     needs_train: bool) -> PromptData:
    """Test split (all of it, restricted to the job's classes) and, for training jobs, the K-shot train split."""
    test = load_split(config, "test", size, data_root, download, resize)
    record: dict[str, Any] = {"dataset": config["dataset"], "subsample": config["subsample"], "classes": None}
    train = None
    if needs_train:
        drawn: list[int] = []

        def fewshot(labels) -> list[int]:
            # CoOp's draw from the labels alone, so only the K x C chosen images are decoded (load_split)
            drawn.extend(sample_fewshot(list(labels), None, config["shots"], config["seed"])[0])
            return drawn

        train = load_split(config, "train", size, data_root, download, resize,
                           choose=fewshot if config.get("shots") else None)
        if config.get("shots"):
            record["fewshot_positions"] = drawn
        train = relabel(train, config["subsample"], len(train.classes))
        record["train_size"] = len(train)
    test = relabel(test, config["subsample"], len(test.classes))
    record["classes"] = list(test.classes)
    return PromptData(train, test, None, record)
