"""Padding VR (ILM-VP's expansive prompt, BLM's PaddingVR; docs/methods.md VR §1.1).

The target image (values in [0, 1]) is centred on a canvas of the backbone's input size; a learnable
3×S×S pattern goes through a sigmoid (so the border stays a valid pixel in (0, 1)) and is added where
the mask is 1 (the border); then the backbone's own normalisation is applied. Zero init gives a grey
0.5 border. The image region receives no pattern.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from vrbench.methods.base import InputTransform


def padding_amounts(image_size: int, canvas: int) -> tuple[int, int]:
    """(before, after) padding per spatial side, exactly as the originals compute them."""
    return int((canvas - image_size + 1) / 2), int((canvas - image_size) / 2)


class PaddingVR(InputTransform):
    """x' = normalize(pad(x, 0) + sigmoid(program) * M), M = 1 on the border and 0 on the image."""

    shared_pattern = True  # one program for the whole batch: its border is the same for every image

    def __init__(self, image_size: int, canvas: int, mean: tuple[float, ...], std: tuple[float, ...],
                 image_mask: torch.Tensor | None = None) -> None:
        super().__init__()
        if canvas < image_size:
            raise ValueError(f"canvas {canvas} is smaller than the image size {image_size}")
        before, after = padding_amounts(image_size, canvas)
        self.pad = (before, after, before, after)
        self.image_size = image_size
        # The user mask marks where the pattern may go inside the image box: zeros for natural images.
        inner = torch.zeros(image_size, image_size) if image_mask is None else image_mask.float()
        mask = F.pad(inner, self.pad, value=1.0).expand(3, canvas, canvas).clone()
        self.register_buffer("mask", mask)
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1))
        self.program = nn.Parameter(torch.zeros(3, canvas, canvas))

    def load_size(self, split: str) -> int:
        return self.image_size  # no augmentation: train and test share the transform (docs/methods.md VR §1.1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.pad(x, self.pad, value=0.0) + torch.sigmoid(self.program) * self.mask
        return (x - self.mean) / self.std


IMAGE_MASKS = {
    # ones on the lower triangle and the diagonal: the pattern may also cover the half of ABIDE's connectivity
    # matrix that holds no data (ILM-VP's ABIDE.get_mask())
    "lower_triangle": lambda size: torch.tril(torch.ones(size, size)),
}


def build_padding(config: dict, backbone) -> PaddingVR:
    """Engine entry point: the canvas defaults to the backbone's input size (224 for ResNets)."""
    from vrbench.datasets import DATASETS

    mask_kind = DATASETS.get(config["dataset"]).vr_image_mask
    image_mask = IMAGE_MASKS[mask_kind](config["image_size"]) if mask_kind else None
    return PaddingVR(config["image_size"], config["canvas"], backbone.mean, backbone.std, image_mask)
