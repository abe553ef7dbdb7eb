"""File-backed splits (a list of image files with labels) and their decoding into an ``ImageSet``.

The VR transform of the papers for these datasets is ``Resize((s, s))`` then ``ToTensor`` on a PIL image opened
with ``.convert("RGB")`` (ILM-VP / BLM ``prepare_expansive_data``). torchvision's ``Resize`` on a PIL image calls
``PIL.Image.resize(..., BILINEAR)``, so that is exactly what ``decode_image`` does; the result stays uint8.
Decoding runs in a thread pool (PIL releases the GIL while decoding) and goes through the decoded-image cache.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from vrbench.datasets.cache import cache_key, cached_array, fingerprint
from vrbench.datasets.images import ImageSet
from vrbench.errors import MissingResourceError

_CHUNK = 256  # images per thread-pool batch: bounds the memory of in-flight decodes
_decoded = 0  # images decode_into has decoded in this process (what the scale tests and the benchmark count)


def decoded_images() -> int:
    """How many image files this process has decoded so far (cache hits decode nothing)."""
    return _decoded


@dataclass(frozen=True)
class FileList:
    """One split of a file-backed dataset: image paths relative to ``base``, labels and the class names."""

    dataset: str
    split: str
    base: Path
    paths: tuple[str, ...]
    labels: tuple[int, ...]
    classes: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.paths)

    def absolute(self, index: int) -> Path:
        return self.base / self.paths[index]

    def fingerprint(self) -> str:
        return fingerprint(list(zip(self.paths, self.labels, strict=True)))

    def select(self, indices: list[int]) -> FileList:
        """The items at ``indices`` (few-shot subsets), same classes."""
        return FileList(self.dataset, self.split, self.base, tuple(self.paths[i] for i in indices),
                        tuple(self.labels[i] for i in indices), self.classes)


RESIZE_MODES = ("squash", "clip")


def decode_image(path: Path, image_size: int, resize: str = "squash") -> np.ndarray:
    """3 x S x S uint8 from PIL open + convert("RGB").

    ``squash``: resize((S, S), BILINEAR), the VR papers' ``Resize((s, s))``. ``clip``: the shorter side to S with
    BICUBIC, then the centre S x S crop: CLIP's preprocessing and Dassl's test transform (docs/methods.md CLIP §0,
    §5.2).
    """
    try:
        with Image.open(path) as image:
            rgb = image.convert("RGB")
    except (OSError, UnidentifiedImageError, ValueError) as exc:
        raise MissingResourceError(
            f"cannot decode image {path}: {type(exc).__name__}: {exc}. Re-extract the dataset archive (or delete "
            "the file and fix the split), then run `vrbench data verify` on the dataset."
        ) from None
    if resize == "clip":
        return _shorter_side_center_crop(rgb, image_size)
    if rgb.size != (image_size, image_size):
        rgb = rgb.resize((image_size, image_size), Image.BILINEAR)
    return np.asarray(rgb, dtype=np.uint8).transpose(2, 0, 1)


def _shorter_side_center_crop(rgb: Image.Image, size: int) -> np.ndarray:
    """torchvision Resize(size, BICUBIC) on the shorter side, then CenterCrop(size) (rounding as torchvision)."""
    width, height = rgb.size
    if (width, height) != (size, size):
        if width <= height:
            new = (size, int(size * height / width))
        else:
            new = (int(size * width / height), size)
        rgb = rgb.resize(new, Image.BICUBIC)
        width, height = rgb.size
    top = int(round((height - size) / 2.0))
    left = int(round((width - size) / 2.0))
    rgb = rgb.crop((left, top, left + size, top + size))
    return np.asarray(rgb, dtype=np.uint8).transpose(2, 0, 1)


def clip_resize_arrays(images: torch.Tensor, image_size: int, workers: int | None = None) -> torch.Tensor:
    """CLIP's transform on uint8 N x 3 x h x w arrays (CIFAR, SVHN): each image through PIL exactly as a file.

    ILM-VP's and BLM's CLIP scripts hand torchvision's array datasets CLIP's own preprocess, which makes a PIL
    image of each array and resizes its shorter side with BICUBIC, then centre-crops (spec docs/methods.md CLIP §5.2).
    """
    out = np.empty((images.shape[0], 3, image_size, image_size), dtype=np.uint8)
    hwc = images.permute(0, 2, 3, 1).numpy()
    workers = workers or min(8, os.cpu_count() or 1)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for start in range(0, len(hwc), _CHUNK):
            stop = min(start + _CHUNK, len(hwc))
            resized = pool.map(lambda a: _shorter_side_center_crop(Image.fromarray(a), image_size), hwc[start:stop])
            for offset, pixels in enumerate(resized):
                out[start + offset] = pixels
    return torch.from_numpy(out)


def decode_into(files: FileList, image_size: int, out: np.ndarray, workers: int | None = None,
                resize: str = "squash") -> None:
    """Decode every file of ``files`` into ``out`` (N x 3 x S x S), in order."""
    global _decoded
    workers = workers or min(8, os.cpu_count() or 1)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for start in range(0, len(files), _CHUNK):
            stop = min(start + _CHUNK, len(files))
            paths = [files.absolute(i) for i in range(start, stop)]
            for offset, pixels in enumerate(pool.map(lambda p: decode_image(p, image_size, resize), paths)):
                out[start + offset] = pixels
                _decoded += 1


def load_files(
    files: FileList, image_size: int, use_cache: bool = True, cache_directory: Path | None = None,
    resize: str = "squash",
) -> ImageSet:
    """Decode (or map from the cache) one file-backed split as an ImageSet."""
    if resize not in RESIZE_MODES:
        raise ValueError(f"resize must be one of {RESIZE_MODES}, got {resize!r}")
    split = files.split if resize == "squash" else f"{files.split}-{resize}"  # the cache key tells modes apart
    key = cache_key(files.dataset, split, image_size, files.fingerprint())
    shape = (len(files), 3, image_size, image_size)
    array = cached_array(key, shape, lambda out: decode_into(files, image_size, out, resize=resize),
                         cache_directory, use_cache)
    labels = torch.tensor(files.labels, dtype=torch.int64)
    return ImageSet(images=torch.from_numpy(array), labels=labels, classes=files.classes)
