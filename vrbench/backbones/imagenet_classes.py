"""The 1000 ImageNet-1k class names, in logit order, for label-mapping plots and reports.

torchvision ships them in its weights metadata, so they are available offline without any download.
"""

from __future__ import annotations

from functools import lru_cache


@lru_cache(maxsize=1)
def _names() -> tuple[str, ...]:
    from torchvision.models import ResNet18_Weights  # imported lazily: report code should not pay for torchvision

    return tuple(ResNet18_Weights.IMAGENET1K_V1.meta["categories"])


def imagenet_class_names() -> list[str]:
    """Human-readable names of ImageNet-1k classes 0..999 (index i names logit i of every backbone here)."""
    return list(_names())
