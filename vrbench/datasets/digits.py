"""scikit-learn's bundled handwritten digits: the dataset that lets vrbench run offline with real data.

1,797 grey 8x8 images (values 0..16) in 10 classes named "0".."9", shipped inside scikit-learn, so nothing is
downloaded. The split is fixed and stratified, ``train_test_split(test_size=360, stratify=y, random_state=0)``,
and stored as a split file (``splits/digits.json``, the test indices) so it never depends on the installed
scikit-learn version and a job need not import scikit-learn (about a second per job process):

* train: 1,437 images
* test: 360 images (every class appears in both)

Each split keeps the original dataset order (indices sorted). Pixels are scaled by 1/16 to [0, 1], resized
bilinearly from 8 px to ``image_size`` (antialiasing only matters when shrinking, so it is used only then),
quantised to uint8 with round-half-up and repeated to 3 channels. Same bytes on every call.
"""

from __future__ import annotations

import gzip
import importlib.util
import json
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from vrbench.datasets.images import ImageSet, check_image_size, check_split, quantize, resize_float
from vrbench.errors import MissingResourceError

NAME = "digits"
TRAIN_SIZE = 1437
TEST_SIZE = 360
CLASSES: tuple[str, ...] = tuple(str(d) for d in range(10))


def load_digits(split: str, image_size: int, data_root: Path | None = None, download: bool = False) -> ImageSet:
    """Load one split of the digits; ``data_root`` and ``download`` are accepted for a uniform loader signature."""
    del data_root, download  # the data ships inside scikit-learn
    check_split(split, NAME)
    check_image_size(image_size, NAME)
    return _load(split, image_size)


@lru_cache(maxsize=8)
def _load(split: str, image_size: int) -> ImageSet:
    # Cached per process: the decoded splits are a few MB and are requested once per job phase.
    pixels, labels = _split_arrays(split)
    grey = torch.from_numpy(pixels).to(torch.float32).div_(16.0).reshape(-1, 1, 8, 8)
    resized = quantize(resize_float(grey, image_size, antialias=image_size < 8))
    images = resized.expand(-1, 3, -1, -1).contiguous()
    return ImageSet(images=images, labels=torch.from_numpy(labels).to(torch.int64), classes=CLASSES)


SPLIT_FILE = Path(__file__).parent / "splits" / "digits.json"


def _data_file() -> Path:
    """scikit-learn's digits.csv.gz, located without importing scikit-learn."""
    spec = importlib.util.find_spec("sklearn")
    if spec is None or not spec.submodule_search_locations:
        raise MissingResourceError("the digits dataset ships with scikit-learn: pip install scikit-learn")
    path = Path(spec.submodule_search_locations[0]) / "datasets" / "data" / "digits.csv.gz"
    if not path.is_file():
        raise MissingResourceError(f"{path} is missing: reinstall scikit-learn (pip install --force-reinstall "
                                   "scikit-learn)")
    return path


@lru_cache(maxsize=2)
def _split_arrays(split: str) -> tuple[np.ndarray, np.ndarray]:
    """The raw 0..16 pixels (N x 64) and labels of one split, in original dataset order."""
    with gzip.open(_data_file(), "rt") as handle:
        table = np.loadtxt(handle, delimiter=",")
    pixels, labels = table[:, :-1], table[:, -1].astype(np.int64)
    test = np.zeros(len(labels), dtype=bool)
    test[json.loads(SPLIT_FILE.read_text())["test"]] = True
    chosen = test if split == "test" else ~test
    return pixels[chosen], labels[chosen]
