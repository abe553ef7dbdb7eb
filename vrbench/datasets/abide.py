"""ABIDE I as ILM-VP loads it: cc200 functional connectivity as a 200x200 "image", ASD vs control.

Layout: ``<data root>/abide/abide.hdf5`` (acerta-abide's file: ``patients/<FILE_ID>/cc200``, 19,900 values per
subject) and ``<data root>/abide/Phenotypic_V1_0b_preprocessed1.csv`` (columns ``FILE_ID``, ``DX_GROUP``).

Per subject (ILM-VP ``data/abide.py``): min-max normalise the 19,900 values to [0, 1], write them row-major into the
strict upper triangle of a 200x200 matrix (lower triangle and diagonal 0), repeat to 3 channels; label
``2 - DX_GROUP`` (1 = ASD, 0 = control). Split: ``train_test_split(test_size=0.1, stratify=y, random_state=1)``
over subjects in the file's key order. ILM-VP keeps float32 pixels; vrbench's image sets are uint8, so values are
quantised to steps of 1/255 (round half up). Needs ``h5py`` (``pip install h5py``).
"""

from __future__ import annotations

import csv
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from vrbench.datasets.classnames import ABIDE as CLASSES
from vrbench.datasets.images import ImageSet, check_image_size, check_split, quantize, resize_float, resolve_data_root
from vrbench.datasets.layouts import ABIDE_HDF5, ABIDE_PHENOTYPES
from vrbench.errors import MissingResourceError

FOLDER = "abide"
HDF5 = ABIDE_HDF5
PHENOTYPES = ABIDE_PHENOTYPES
SIDE = 200
FEATURES = SIDE * (SIDE - 1) // 2  # 19,900
TEST_FRACTION = 0.1
SPLIT_SEED = 1


def to_matrix(features: np.ndarray) -> np.ndarray:
    """Min-max normalise and place in the strict upper triangle, row-major (ILM-VP data_array_to_matrix)."""
    values = features.astype(np.float64)
    values = values - values.min()
    peak = values.max()
    if peak > 0:
        values = values / peak
    matrix = np.zeros((SIDE, SIDE), dtype=np.float64)
    rows, cols = np.triu_indices(SIDE, k=1)
    n = min(len(values), FEATURES)
    matrix[rows[:n], cols[:n]] = values[:n]
    return matrix


def _h5py():
    try:
        import h5py
    except ImportError:
        raise MissingResourceError("ABIDE is stored as HDF5: pip install h5py") from None
    return h5py


@lru_cache(maxsize=2)
def read_abide(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    """(matrices N x 200 x 200 float32 in [0, 1], labels N) in the file's subject order."""
    for name in (HDF5, PHENOTYPES):
        if not (folder / name).is_file():
            raise MissingResourceError(
                f"ABIDE: {folder / name} is missing. Run `vrbench data prepare abide` for the manual steps.")
    with open(folder / PHENOTYPES, newline="", encoding="utf-8") as handle:
        groups = {row["FILE_ID"]: int(float(row["DX_GROUP"])) for row in csv.DictReader(handle)}
    matrices, labels = [], []
    with _h5py().File(folder / HDF5, "r") as h5:
        for key in h5["patients"].keys():
            if key not in groups:
                raise MissingResourceError(f"ABIDE: subject {key} of {folder / HDF5} is not in {folder / PHENOTYPES}")
            matrices.append(to_matrix(np.asarray(h5["patients"][key]["cc200"])).astype(np.float32))
            labels.append(2 - groups[key])
    return np.stack(matrices), np.asarray(labels, dtype=np.int64)


def split_indices(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """ILM-VP's stratified 90/10 split (train indices, test indices), in train_test_split's order."""
    from sklearn.model_selection import train_test_split

    index = np.arange(len(labels))
    train, test = train_test_split(index, test_size=TEST_FRACTION, stratify=labels, random_state=SPLIT_SEED)
    return train, test


def load_abide(split: str, image_size: int, data_root: Path | None = None, download: bool = False) -> ImageSet:
    """One ABIDE split (200 px native) as uint8 3-channel images."""
    del download
    train = check_split(split, "abide")
    check_image_size(image_size, "abide")
    folder = resolve_data_root(data_root).absolute() / FOLDER
    matrices, labels = read_abide(folder)
    chosen = split_indices(labels)[0 if train else 1]
    grey = torch.from_numpy(matrices[chosen]).unsqueeze(1)
    images = quantize(resize_float(grey, image_size, antialias=image_size < SIDE)).expand(-1, 3, -1, -1)
    return ImageSet(images.contiguous(), torch.from_numpy(labels[chosen]), CLASSES)
