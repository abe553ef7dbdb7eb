"""Full-image and frame "watermarking" VR (BLM WatermarkingVR / ILM AdditiveVisualPrompt, docs/methods.md VR §1.2; SMM's
Narrow/Medium/Full baselines, docs/methods.md VR §10).

The image is resized to the model's resolution and normalised; a learnable 3×R×R pattern (zero init, no
sigmoid, no clamping) is added in normalised space where the mask is 1: a frame of `frame` pixels, or the
whole image.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from vrbench.methods.base import AugmentedNormalizedInput


def frame_mask(resolution: int, frame: int | None) -> torch.Tensor:
    """Ones on a border of width `frame` (zeros inside); all ones when frame is None or covers the image."""
    if frame is None or 2 * frame >= resolution:
        return torch.ones(3, resolution, resolution)
    inner = torch.zeros(resolution - 2 * frame, resolution - 2 * frame)
    return F.pad(inner, (frame,) * 4, value=1.0).expand(3, -1, -1).clone()


class WatermarkVR(AugmentedNormalizedInput):
    """x' = x_normalised + program ⊙ M."""

    def __init__(self, resolution: int, frame: int | None, margin: int, mean: tuple[float, ...],
                 std: tuple[float, ...]) -> None:
        super().__init__(resolution, margin, mean, std)
        self.register_buffer("mask", frame_mask(resolution, frame))
        self.program = nn.Parameter(torch.zeros(3, resolution, resolution))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.program * self.mask


def _resolution(config: dict[str, Any], backbone) -> int:
    return config.get("resolution") or backbone.input_size


def build_full(config: dict[str, Any], backbone) -> WatermarkVR:
    """BLM's watermarking: 224/2 = 112 makes the mask all ones; train crop margin 4 (Resize 228, RandomCrop 224)."""
    return WatermarkVR(_resolution(config, backbone), config.get("frame"), config["crop_margin"], backbone.mean,
                       backbone.std)


def build_narrow(config: dict[str, Any], backbone) -> WatermarkVR:
    """SMM's Narrow baseline: a frame 1/8 of the resolution wide (28 px at 224; 48 at 384), SMM's pipeline."""
    resolution = _resolution(config, backbone)
    return WatermarkVR(resolution, resolution // 8, config["crop_margin"], backbone.mean, backbone.std)


def build_medium(config: dict[str, Any], backbone) -> WatermarkVR:
    """SMM's Medium baseline: a frame 1/4 of the resolution wide (56 px at 224; 96 at 384), SMM's pipeline."""
    resolution = _resolution(config, backbone)
    return WatermarkVR(resolution, resolution // 4, config["crop_margin"], backbone.mean, backbone.std)
