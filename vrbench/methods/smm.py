"""SMM: sample-specific multi-channel masks (docs/methods.md VR §1.3).

x' = x_normalised + δ ⊙ Upsample_ps(f_mask(x_normalised)): a shared pattern δ (zero init) gated per sample and
per channel by a small CNN's mask, upsampled patch-wise (nearest neighbour by the patch size). The mask network
is trained by its own Adam (lr 0.01, γ 0.1 for CNN backbones; lr 0.001, γ 1 for ViT) and its BatchNorm
follows the module's train/eval mode, exactly as the original (so the epoch-0 mapping pass runs it in train
mode, and later passes in eval mode, docs/methods.md VR §6 item 4).
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from vrbench.errors import ConfigError
from vrbench.methods.base import AugmentedNormalizedInput, ParamGroup

PATCH_SIZES = (1, 2, 4, 8, 16, 32)


class MaskGenerator(nn.Module):
    """Conv3x3-BN-ReLU blocks (3→8→16→32→64, →128 for six layers), max-pooling while the patch size needs it.

    The head is a 3-channel conv without BN or activation (an unbounded mask); with one channel there is no
    head and the mask is the channel mean of the last feature map, broadcast to three channels.
    """

    def __init__(self, layers: int = 5, patch_size: int = 8, channels: int = 3) -> None:
        super().__init__()
        check_mask_config(layers, patch_size, channels)
        widths = [3, 8, 16, 32, 64] + ([128] if layers == 6 else [])
        pools = int(math.log2(patch_size))
        blocks = []
        for index in range(len(widths) - 1):
            block: list[nn.Module] = [nn.Conv2d(widths[index], widths[index + 1], 3, 1, 1),
                                      nn.BatchNorm2d(widths[index + 1]), nn.ReLU(inplace=True)]
            if index < pools:
                block.append(nn.MaxPool2d(2, 2))
            blocks.append(nn.Sequential(*block))
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Conv2d(widths[-1], 3, 3, 1, 1) if channels == 3 else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.blocks(x)
        if self.head is not None:
            return self.head(features)
        return features.mean(1, keepdim=True).expand(-1, 3, -1, -1)


def check_mask_config(layers: int, patch_size: int, channels: int) -> None:
    if layers not in (5, 6):
        raise ConfigError(f"SMM mask_layers must be 5 (ResNets) or 6 (ViT), got {layers}")
    if patch_size not in PATCH_SIZES:
        raise ConfigError(f"SMM patch_size must be one of {PATCH_SIZES}, got {patch_size}")
    if patch_size == 32 and layers != 6:
        raise ConfigError("SMM patch_size 32 needs five poolings, i.e. mask_layers 6")
    if channels not in (1, 3):
        raise ConfigError(f"SMM mask_channels must be 1 or 3, got {channels}")


def upsample_patches(mask: torch.Tensor, patch_size: int) -> torch.Tensor:
    """Each mask value fills a patch_size × patch_size block (nearest-neighbour upsampling)."""
    return F.interpolate(mask, scale_factor=patch_size, mode="nearest") if patch_size > 1 else mask


class SMMVR(AugmentedNormalizedInput):
    def __init__(self, resolution: int, margin: int, mean: tuple[float, ...], std: tuple[float, ...], *,
                 layers: int, patch_size: int, channels: int, use_pattern: bool, mask_lr: float,
                 mask_gamma: float) -> None:
        super().__init__(resolution, margin, mean, std)
        if resolution % patch_size:
            raise ConfigError(f"SMM resolution {resolution} is not a multiple of patch_size {patch_size}")
        self.patch_size = patch_size
        self.mask_net = MaskGenerator(layers, patch_size, channels)
        self.program = nn.Parameter(torch.zeros(3, resolution, resolution)) if use_pattern else None
        self.mask_lr = mask_lr
        self.mask_gamma = mask_gamma

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mask = upsample_patches(self.mask_net(x), self.patch_size)
        return x + (self.program * mask if self.program is not None else mask)

    def optimizer_groups(self, config: dict[str, Any]) -> list[ParamGroup]:
        groups = [ParamGroup("mask_net", list(self.mask_net.parameters()), self.mask_lr, gamma=self.mask_gamma)]
        if self.program is not None:
            groups.insert(0, ParamGroup("pattern", [self.program], config["lr"], gamma=config["gamma"]))
        return groups


def _build(config: dict[str, Any], backbone, use_pattern: bool) -> SMMVR:
    vit = backbone.family == "vit"
    return SMMVR(
        config.get("resolution") or backbone.input_size, config["crop_margin"], backbone.mean, backbone.std,
        layers=config.get("mask_layers") or (6 if vit else 5), patch_size=config["patch_size"],
        channels=config["mask_channels"], use_pattern=use_pattern,
        mask_lr=config.get("mask_lr") or (0.001 if vit else 0.01),
        mask_gamma=config["mask_gamma"] if config.get("mask_gamma") is not None else (1.0 if vit else 0.1),
    )


def build_smm(config: dict[str, Any], backbone) -> SMMVR:
    return _build(config, backbone, use_pattern=True)


def build_smm_only_mask(config: dict[str, Any], backbone) -> SMMVR:
    """SMM Table 3 "only f_mask": no shared pattern, the upsampled mask itself is added."""
    return _build(config, backbone, use_pattern=False)
