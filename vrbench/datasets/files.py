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


def decode_image(path: Path, image_size: int) -> np.ndarray:
    """3 x S x S uint8: PIL open, convert("RGB"), resize((S, S), BILINEAR), as torchvision's Resize does."""
    try:
        with Image.open(path) as image:
            rgb = image.convert("RGB")
    except (OSError, UnidentifiedImageError, ValueError) as exc:
        raise MissingResourceError(
            f"cannot decode image {path}: {type(exc).__name__}: {exc}. Re-extract the dataset archive (or delete "
            "the file and fix the split), then run `vrbench data verify` on the dataset."
        ) from None
    if rgb.size != (image_size, image_size):
        rgb = rgb.resize((image_size, image_size), Image.BILINEAR)
    return np.asarray(rgb, dtype=np.uint8).transpose(2, 0, 1)


def decode_into(files: FileList, image_size: int, out: np.ndarray, workers: int | None = None) -> None:
    """Decode every file of ``files`` into ``out`` (N x 3 x S x S), in order."""
    workers = workers or min(8, os.cpu_count() or 1)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for start in range(0, len(files), _CHUNK):
            stop = min(start + _CHUNK, len(files))
            paths = [files.absolute(i) for i in range(start, stop)]
            for offset, pixels in enumerate(pool.map(lambda p: decode_image(p, image_size), paths)):
                out[start + offset] = pixels


def load_files(
    files: FileList, image_size: int, use_cache: bool = True, cache_directory: Path | None = None
) -> ImageSet:
    """Decode (or map from the cache) one file-backed split as an ImageSet."""
    key = cache_key(files.dataset, files.split, image_size, files.fingerprint())
    shape = (len(files), 3, image_size, image_size)
    array = cached_array(key, shape, lambda out: decode_into(files, image_size, out), cache_directory, use_cache)
    labels = torch.tensor(files.labels, dtype=torch.int64)
    return ImageSet(images=torch.from_numpy(array), labels=labels, classes=files.classes)
