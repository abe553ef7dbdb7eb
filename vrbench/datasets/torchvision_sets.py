"""CIFAR-100, SVHN and GTSRB through torchvision's own dataset classes, as the VR papers load them.

Layouts under the data root (torchvision's, as ILM-VP / BLM pass ``<data_path>/<name>`` for SVHN and GTSRB):

* ``cifar-100-python/{train,test,meta}`` (CIFAR100's own folder, like CIFAR-10's);
* ``svhn/{train,test}_32x32.mat``;
* ``gtsrb/GTSRB/Training/<class id>/*.ppm`` and ``gtsrb/GTSRB/Final_Test/Images/*.ppm`` with
  ``gtsrb/GT-final_test.csv``.

CIFAR and SVHN are arrays already (32 px); GTSRB images vary in size and are resized per image with PIL bilinear,
as ``transforms.Resize((32, 32))`` does in the papers, through the decoded-image cache. With ``resize="clip"``
(CLIP backbones) every loader applies CLIP's own preprocess instead, as ILM-VP's and BLM's CLIP scripts do. md5
checks honour ``VRBENCH_VERIFY_CHECKSUMS`` as for CIFAR-10. ``download`` is accepted for the uniform loader
signature; the engine runs `vrbench data prepare` before loading when a run asks for ``--download`` (loaders never
import prepare).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torchvision.datasets import CIFAR100, GTSRB, SVHN

from vrbench.datasets.cifar import _md5, resize_arrays, verify_checksums
from vrbench.datasets.classnames import GTSRB as GTSRB_NAMES
from vrbench.datasets.files import FileList, load_files
from vrbench.datasets.images import ImageSet, check_image_size, check_split, resolve_data_root
from vrbench.errors import MissingResourceError

CIFAR100_FILES: tuple[tuple[str, str], ...] = (
    *((name, md5) for name, md5 in CIFAR100.train_list + CIFAR100.test_list),
    (CIFAR100.meta["filename"], CIFAR100.meta["md5"]),
)


def _fetch_hint(name: str) -> str:
    return f"Run `vrbench data prepare {name}` (torchvision download) or see `vrbench data verify {name}`."


# ---------------------------------------------------------------- CIFAR-100


class _CheckedCIFAR100(CIFAR100):
    """torchvision's CIFAR100 whose integrity check honours VRBENCH_VERIFY_CHECKSUMS."""

    def _check_integrity(self) -> bool:
        folder = Path(self.root) / self.base_folder
        if any(not (folder / name).is_file() for name, _ in CIFAR100_FILES):
            return False
        return not verify_checksums() or all(_md5(folder / name) == md5 for name, md5 in CIFAR100_FILES)

    def _load_meta(self) -> None:
        if not verify_checksums():
            self.meta = {**type(self).meta, "md5": None}
        super()._load_meta()


def load_cifar100(split: str, image_size: int, data_root: Path | None = None, download: bool = False,
                  resize: str = "squash") -> ImageSet:
    """CIFAR-100 (50,000 train / 10,000 test, 100 fine labels) as uint8 images."""
    train = check_split(split, "cifar100")
    check_image_size(image_size, "cifar100")
    root = resolve_data_root(data_root).absolute()
    folder = root / CIFAR100.base_folder
    missing = [name for name, _ in CIFAR100_FILES if not (folder / name).is_file()]
    if missing:
        raise MissingResourceError(f"CIFAR-100 is not at {folder}/ (missing: {', '.join(missing)}). "
                                   + _fetch_hint("cifar100"))
    dataset = _CheckedCIFAR100(root=str(root), train=train, download=False)
    images = resize_arrays(torch.from_numpy(dataset.data).permute(0, 3, 1, 2).contiguous(), image_size, resize)
    return ImageSet(images, torch.as_tensor(dataset.targets, dtype=torch.int64), tuple(dataset.classes))


# ---------------------------------------------------------------- SVHN


class _CheckedSVHN(SVHN):
    def _check_integrity(self) -> bool:
        path = Path(self.root) / self.filename
        return path.is_file() and (not verify_checksums() or _md5(path) == self.file_md5)


def load_svhn(split: str, image_size: int, data_root: Path | None = None, download: bool = False,
              resize: str = "squash") -> ImageSet:
    """SVHN cropped digits (73,257 train / 26,032 test; torchvision maps label 10 to 0)."""
    check_split(split, "svhn")
    check_image_size(image_size, "svhn")
    root = resolve_data_root(data_root).absolute()
    folder = root / "svhn"
    filename = SVHN.split_list[split][1]
    if not (folder / filename).is_file():
        raise MissingResourceError(f"SVHN {split} file {folder / filename} is missing. " + _fetch_hint("svhn"))
    try:
        dataset = _CheckedSVHN(root=str(folder), split=split, download=False)
    except RuntimeError:
        raise MissingResourceError(
            f"{folder / filename} does not match torchvision's md5; download it again "
            f"(or set VRBENCH_VERIFY_CHECKSUMS=0 for files you built yourself)") from None
    images = resize_arrays(torch.from_numpy(np.ascontiguousarray(dataset.data)), image_size, resize)
    labels = torch.from_numpy(dataset.labels.astype(np.int64))
    from vrbench.datasets.classnames import SVHN as SVHN_NAMES

    return ImageSet(images, labels, SVHN_NAMES)


# ---------------------------------------------------------------- GTSRB


def gtsrb_file_list(split: str, data_root: Path | None) -> FileList:
    """GTSRB's samples exactly as torchvision's GTSRB lists them (class folders for train, the CSV for test)."""
    check_split(split, "gtsrb")
    root = resolve_data_root(data_root).absolute()
    try:
        dataset = GTSRB(root=str(root), split=split, download=False)
    except (RuntimeError, OSError) as exc:
        raise MissingResourceError(f"GTSRB {split} is not under {root / 'gtsrb'}/ ({exc}). "
                                   + _fetch_hint("gtsrb")) from None
    base = root / "gtsrb"
    paths = tuple(os.path.relpath(path, base) for path, _ in dataset._samples)
    labels = tuple(int(label) for _, label in dataset._samples)
    return FileList("gtsrb", split, base, paths, labels, GTSRB_NAMES)


def gtsrb_files(name: str, split: str, data_root: Path | None) -> FileList:
    """``DatasetInfo.lister`` for GTSRB."""
    return gtsrb_file_list(split, data_root)


def load_gtsrb(split: str, image_size: int, data_root: Path | None = None, download: bool = False,
               resize: str = "squash") -> ImageSet:
    """GTSRB (26,640 train / 12,630 test, 43 classes), each image resized to image_size with PIL bilinear."""
    check_image_size(image_size, "gtsrb")
    return load_files(gtsrb_file_list(split, data_root), image_size, resize=resize)
