"""The implementations: imported by vrbench's worker when a job uses `hlm` or `bounded_full` (torch is fine here)."""

from __future__ import annotations

import torch
from scipy.optimize import linear_sum_assignment
from torch import nn

from vrbench.api import InputTransform, IterativeLabelMapping, mapping, normalize, resize


class HungarianMapping(IterativeLabelMapping):
    """Like ILM, but the one-to-one assignment maximises the summed counts instead of taking them greedily."""

    def estimate(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        counts = mapping.frequency_matrix(logits, labels, self.num_classes)  # S x C
        sources, targets = linear_sum_assignment(counts.cpu().numpy(), maximize=True)
        pi = torch.empty(self.num_classes, dtype=torch.int64)
        pi[torch.as_tensor(targets)] = torch.as_tensor(sources, dtype=torch.int64)
        return pi  # pi[c] = the source class read as target class c


class BoundedFullVR(InputTransform):
    """x' = normalize(clamp(resize(x, canvas) + epsilon * tanh(W), 0, 1)): a perturbation over the whole image."""

    def __init__(self, image_size: int, canvas: int, epsilon: float, mean, std) -> None:
        super().__init__()
        self.image_size, self.canvas, self.epsilon = image_size, canvas, epsilon
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1))
        self.program = nn.Parameter(torch.zeros(3, canvas, canvas))

    def load_size(self, split: str) -> int:
        return self.image_size  # the data layer delivers train and test images at this size

    def preprocess(self, x: torch.Tensor, train: bool) -> torch.Tensor:
        return resize(x, self.canvas)  # no augmentation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = (x + self.epsilon * torch.tanh(self.program)).clamp(0, 1)
        return normalize(x, self.mean, self.std)


def build_bounded_full(config: dict, backbone) -> BoundedFullVR:
    """vrbench calls this with the job's resolved config and the backbone's metadata (its preprocessing)."""
    return BoundedFullVR(config["image_size"], config["canvas"], config["epsilon"], backbone.mean, backbone.std)
