"""Class-balanced index selection: suite subsets and validation splits carved from a training set.

Both use their own seeded ``torch.Generator`` so the chosen indices never depend on (or disturb) the global RNG
state of a run. Suite subsets take a fixed seed, so every method and run seed sees the same images.
"""

from __future__ import annotations

import math

import torch

from vrbench.errors import ConfigError


def _check_labels(labels: torch.Tensor) -> torch.Tensor:
    if labels.dim() != 1 or labels.dtype.is_floating_point or labels.dtype == torch.bool:
        raise ValueError(f"labels must be a 1-D integer tensor, got {labels.dtype} {tuple(labels.shape)}")
    return labels.to(torch.int64)


def _shuffled_classes(labels: torch.Tensor, generator: torch.Generator) -> list[torch.Tensor]:
    """For each class (ascending label), its sample indices in a generator-shuffled order."""
    groups = []
    for cls in torch.unique(labels, sorted=True).tolist():
        members = torch.nonzero(labels == cls, as_tuple=True)[0]
        groups.append(members[torch.randperm(len(members), generator=generator)])
    return groups


def stratified_subset(labels: torch.Tensor, n: int, seed: int = 0) -> torch.Tensor:
    """Indices (sorted) of n samples spread over the classes as evenly as possible.

    Round-robin over classes in label order, each class's samples taken in a seeded random order: class counts
    differ by at most one unless a class runs out, and the lowest labels get the remainder.
    """
    labels = _check_labels(labels)
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ConfigError(f"subset size must be a non-negative integer, got {n!r}")
    if n > len(labels):
        raise ConfigError(f"subset of {n} samples requested, but the dataset has only {len(labels)}")
    groups = _shuffled_classes(labels, torch.Generator().manual_seed(seed))
    if not groups:
        return torch.empty(0, dtype=torch.int64)
    # Sample r of class c gets round-robin position r * C + c; the first n positions are the subset.
    indices = torch.cat(groups)
    position = torch.cat(
        [torch.arange(len(group), dtype=torch.int64) * len(groups) + c for c, group in enumerate(groups)]
    )
    chosen = indices[torch.argsort(position)[:n]]
    return torch.sort(chosen).values


def split_validation(labels: torch.Tensor, fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(train_indices, val_indices), both sorted, disjoint and together covering every sample.

    Each class gives ``round(fraction * n_c)`` samples (half rounds up) to validation, at least one when
    fraction > 0 and the class has two or more, and never all of them, so every class stays in training.
    """
    labels = _check_labels(labels)
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0.0 <= fraction < 1.0:
        raise ConfigError(f"validation fraction must be in [0, 1), got {fraction!r}")
    generator = torch.Generator().manual_seed(seed)
    train_parts, val_parts = [], []
    for group in _shuffled_classes(labels, generator):
        size = len(group)
        k = math.floor(fraction * size + 0.5)
        if fraction > 0 and size >= 2:
            k = max(k, 1)
        k = min(k, size - 1)
        val_parts.append(group[:k])
        train_parts.append(group[k:])
    empty = torch.empty(0, dtype=torch.int64)
    train = torch.sort(torch.cat(train_parts)).values if train_parts else empty
    val = torch.sort(torch.cat(val_parts)).values if val_parts else empty
    return train, val
