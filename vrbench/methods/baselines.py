"""ILM-VP's non-VR baselines (docs/methods.md VR §2.11): linear probing and full fine-tuning.

Linear probing: Resize((R, R)) + Normalize, frozen backbone, a new linear layer on its features (the mapping
`linear_probe`). Full fine-tuning: every backbone weight trains (Adam lr 1e-4, weight decay 5e-4, cosine per
epoch) on Resize((256, 256)) -> RandomCrop(224) -> flip; faithful to the original, the same random crop and
flip are applied at test time too (`test_augment`, a named quirk), and the 1000-way ImageNet head is kept
(the mapping `imagenet_head`, docs/methods.md VR §6 item 9). ILM-VP's ABIDE loader ignores the transform it is
given (ToTensor -> Resize 224 -> Normalize, ILM-VP data/prepare_data.py lines 192-198): `train_augment: false` with
`test_augment: false` and `crop_margin: 0` is that pipeline.
"""

from __future__ import annotations

from typing import Any

import torch

from vrbench.methods.base import InputTransform, normalize, random_crop_flip, resize


class ResizeInput(InputTransform):
    """No reprogramming: resize to the backbone's resolution and normalise."""

    def __init__(self, resolution: int, mean: tuple[float, ...], std: tuple[float, ...]) -> None:
        super().__init__()
        self.resolution = resolution
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1))

    def load_size(self, split: str) -> int:
        return self.resolution

    def preprocess(self, x: torch.Tensor, train: bool) -> torch.Tensor:
        return normalize(resize(x, self.resolution), self.mean, self.std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


class FinetuneInput(ResizeInput):
    """Full fine-tuning's pipeline; the engine trains the backbone because `trains_backbone` is set."""

    trains_backbone = True

    def __init__(self, resolution: int, margin: int, test_augment: bool, mean: tuple[float, ...],
                 std: tuple[float, ...], train_augment: bool = True) -> None:
        super().__init__(resolution, mean, std)
        self.margin = margin
        self.train_augment = train_augment
        self.test_augment = test_augment

    def load_size(self, split: str) -> int:
        return self.resolution + self.margin

    def preprocess(self, x: torch.Tensor, train: bool) -> torch.Tensor:
        if self.train_augment if train else self.test_augment:
            x = random_crop_flip(x, self.resolution)
        else:
            x = resize(x, self.resolution)
        return normalize(x, self.mean, self.std)


def build_resize(config: dict[str, Any], backbone) -> ResizeInput:
    return ResizeInput(config.get("resolution") or backbone.input_size, backbone.mean, backbone.std)


def build_finetune(config: dict[str, Any], backbone) -> FinetuneInput:
    return FinetuneInput(config.get("resolution") or backbone.input_size, config["crop_margin"],
                         config["test_augment"], backbone.mean, backbone.std,
                         train_augment=config.get("train_augment", True))  # a late parameter: absent = True
