"""The in-memory image set every dataset loader returns, and the helpers loaders share.

Images stay uint8 (N x 3 x H x W) until the VR engine turns a batch into float: CIFAR-10's 50,000 training
images are then 150 MB instead of 600 MB. Resizing happens once, at load time, in float and is quantised back
to uint8 with round-half-up, so every loader produces the same kind of tensor.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from vrbench.errors import ConfigError

SPLITS: tuple[str, ...] = ("train", "test")
DATA_ENV = "VRBENCH_DATA"

# Images resized per chunk, so a float copy of a whole dataset never exists at once.
_RESIZE_CHUNK = 1024


@dataclass(frozen=True, eq=False)
class ImageSet:
    """A labelled set of RGB images held as uint8 tensors; treat the tensors as read-only (loaders may cache them)."""

    images: torch.Tensor  # uint8, N x 3 x H x W
    labels: torch.Tensor  # int64, N, values in [0, len(classes))
    classes: tuple[str, ...]

    def __post_init__(self) -> None:
        # A wrong dtype or layout here would otherwise surface as a silent accuracy bug deep in training.
        if self.images.dtype != torch.uint8 or self.images.dim() != 4 or self.images.shape[1] != 3:
            raise ValueError(f"images must be uint8 N x 3 x H x W, got {self.images.dtype} {tuple(self.images.shape)}")
        if self.labels.dtype != torch.int64 or self.labels.shape != (self.images.shape[0],):
            raise ValueError(
                f"labels must be int64 of shape ({self.images.shape[0]},), got {self.labels.dtype} "
                f"{tuple(self.labels.shape)}"
            )
        if len(self.labels) and (int(self.labels.min()) < 0 or int(self.labels.max()) >= len(self.classes)):
            raise ValueError(f"labels must lie in [0, {len(self.classes)}) for {len(self.classes)} classes")

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def image_size(self) -> int:
        return int(self.images.shape[-1])

    def subset(self, indices: torch.Tensor) -> ImageSet:
        """The images at ``indices`` (in that order), with the same class list so labels keep their meaning."""
        indices = torch.as_tensor(indices, dtype=torch.int64)
        return ImageSet(self.images[indices], self.labels[indices], self.classes)


def check_split(split: str, dataset: str) -> bool:
    """Return True for the training split; reject anything but ``SPLITS`` with a message naming the valid ones."""
    if split not in SPLITS:
        raise ConfigError(f"dataset {dataset!r} has no split {split!r}; valid splits: {', '.join(SPLITS)}")
    return split == "train"


def check_image_size(image_size: int, dataset: str) -> int:
    """Reject sizes that cannot be an image side length (bools and non-integers included)."""
    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 1:
        raise ConfigError(f"dataset {dataset!r}: image_size must be a positive integer, got {image_size!r}")
    return image_size


def resolve_data_root(data_root: Path | None) -> Path:
    """Where on-disk datasets live: the explicit root, else ``$VRBENCH_DATA``, else ``~/.cache/vrbench/data``."""
    if data_root is not None:
        return Path(data_root).expanduser()
    env = os.environ.get(DATA_ENV)
    if env:
        return Path(env).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache).expanduser() / "vrbench" / "data"


def quantize(images: torch.Tensor) -> torch.Tensor:
    """Float images in [0, 1] to uint8 with round-half-up (``floor(x * 255 + 0.5)``), clamped to [0, 255]."""
    return torch.floor(images * 255.0 + 0.5).clamp_(0, 255).to(torch.uint8)


def resize_float(images: torch.Tensor, image_size: int, antialias: bool) -> torch.Tensor:
    """Bilinear resize of float N x C x h x w images (what torchvision's ``resize`` does to tensors)."""
    if images.shape[-2:] == (image_size, image_size):
        return images
    return F.interpolate(
        images, size=(image_size, image_size), mode="bilinear", align_corners=False, antialias=antialias
    )


def resize_uint8(images: torch.Tensor, image_size: int, antialias: bool = True) -> torch.Tensor:
    """Bilinear resize of uint8 N x C x h x w images, chunked so memory stays near the size of the output."""
    if images.shape[-2:] == (image_size, image_size):
        return images
    out = torch.empty((*images.shape[:2], image_size, image_size), dtype=torch.uint8)
    for start in range(0, images.shape[0], _RESIZE_CHUNK):
        chunk = images[start : start + _RESIZE_CHUNK].to(torch.float32).div_(255.0)
        out[start : start + _RESIZE_CHUNK] = quantize(resize_float(chunk, image_size, antialias))
    return out
