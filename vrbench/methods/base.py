"""What an input transformation tells the one training loop.

An input method is an nn.Module (its forward is the visual reprogramming) plus four facts the engine needs:
the size at which the data layer loads each split, the per-batch preprocessing (resize, random crop, flip,
normalisation; the papers differ on whether the pattern is added before or after normalisation), its
optimizer groups (SMM trains its mask network with its own Adam and schedule), and whether the backbone
itself is trained (full fine-tuning).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class ParamGroup:
    """One optimizer with its own schedule (each group gets its own, so groups never interact).

    schedule: "multistep" (milestones x gamma, per epoch), "cosine" (T_max = epochs, per epoch), "cosine_iter"
    (T_max = epochs x batches, stepped every batch: ILM-VP/BLM on CLIP) or "warmup_cosine" (Dassl: constant
    warmup_lr for warmup_epochs, then cosine over the epochs, per epoch: the prompt-learning recipe).
    """

    name: str
    params: list[nn.Parameter]
    lr: float
    schedule: str = "multistep"
    gamma: float = 0.1
    weight_decay: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)
    optimizer: str = "adam"  # "adam" (the VR papers) or "sgd" (CLIP methods)
    momentum: float = 0.0  # SGD only
    warmup_epochs: int = 0
    warmup_lr: float = 0.0


def normalize(x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    return (x - mean) / std


def resize(x: torch.Tensor, size: int) -> torch.Tensor:
    """torchvision's Resize((s, s)) on a float batch: bilinear with antialiasing."""
    if x.shape[-1] == size and x.shape[-2] == size:
        return x
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)


def random_crop_flip(x: torch.Tensor, size: int, flip: bool = True) -> torch.Tensor:
    """RandomCrop(size) then RandomHorizontalFlip(), a fresh draw per sample from the global RNG."""
    batch, _, height, width = x.shape
    tops = torch.randint(0, height - size + 1, (batch,)).tolist()
    lefts = torch.randint(0, width - size + 1, (batch,)).tolist()
    out = torch.stack([x[i, :, t:t + size, s:s + size] for i, (t, s) in enumerate(zip(tops, lefts, strict=True))])
    if flip:
        flips = torch.rand(batch) < 0.5
        out = torch.where(flips.view(-1, 1, 1, 1).to(out.device), out.flip(-1), out)
    return out


class InputTransform(nn.Module):
    """Base class: identity preprocessing, one optimizer group over the trainable parameters."""

    trains_backbone = False
    # Whether a backbone that trains runs in train mode while it does (dropout, BatchNorm batch statistics): full
    # fine-tuning does (ILM-VP experiments/cnn/full_finetune.py:69 `network.train()`); LoRA does not (lora.py).
    backbone_train_mode = True
    # True where the gradient reaching the backbone's input is only used summed over the batch: every trainable
    # parameter acts on all images alike (one pattern broadcast over the batch), so where the images' inputs agree
    # the engine may run the backbone's first layers once for all of them (engine/border.py), which gives the
    # batch's sum of input gradients (up to float rounding) but not each image's own.
    shared_pattern = False

    def load_size(self, split: str) -> int:
        """Side length at which the data layer delivers images of `split` ("train" or "test")."""
        raise NotImplementedError

    def preprocess(self, x: torch.Tensor, train: bool) -> torch.Tensor:
        """Turn a float [0, 1] batch at load size into what `forward` expects."""
        return x

    def optimizer_groups(self, config: dict[str, Any]) -> list[ParamGroup]:
        params = [p for p in self.parameters() if p.requires_grad]
        return [ParamGroup("input", params, config["lr"], gamma=config["gamma"])] if params else []

    # Backbone hooks: which backbone weights train, if any (full fine-tuning: all of them; LoRA: its adapters).
    def prepare_backbone(self, model: nn.Module) -> nn.Module:
        """Change the frozen backbone before training (LoRA injects its adapters here); default: unchanged."""
        return model

    def backbone_parameters(self, model: nn.Module) -> list[nn.Parameter]:
        """The backbone weights this method trains (read only when `trains_backbone` is set)."""
        return list(model.parameters())

    def backbone_state(self, model: nn.Module) -> dict[str, Any]:
        """What a checkpoint keeps of a trained backbone (all of it, BatchNorm statistics included)."""
        return model.state_dict()

    def load_backbone_state(self, model: nn.Module, state: dict[str, Any]) -> None:
        model.load_state_dict(state)


class AugmentedNormalizedInput(InputTransform):
    """Shared pipeline of the resize-to-model-resolution methods (BLM watermarking, SMM and its baselines).

    train: Resize(R + margin) -> RandomCrop(R) -> RandomHorizontalFlip -> Normalize;
    test:  Resize(R) -> Normalize. The pattern is then added in normalised space.
    """

    def __init__(self, resolution: int, margin: int, mean: tuple[float, ...], std: tuple[float, ...]) -> None:
        super().__init__()
        self.resolution = resolution
        self.margin = margin
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1))

    def load_size(self, split: str) -> int:
        return self.resolution + self.margin if split == "train" else self.resolution

    def preprocess(self, x: torch.Tensor, train: bool) -> torch.Tensor:
        if train and self.margin > 0:
            x = random_crop_flip(resize(x, self.resolution + self.margin), self.resolution)
        else:
            x = resize(x, self.resolution)
        return normalize(x, self.mean, self.std)
