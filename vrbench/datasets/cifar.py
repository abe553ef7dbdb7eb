"""CIFAR-10 through torchvision's own ``CIFAR10`` loader, with messages a user can act on.

The data root is the folder that contains ``cifar-10-batches-py/`` (torchvision's layout). Images are native
32 px; any other ``image_size`` is a bilinear resize with antialiasing (it only matters when shrinking).

torchvision checks every file's md5. That stays on by default; ``VRBENCH_VERIFY_CHECKSUMS=0`` relaxes it to
"each file exists", which is how test fixtures in CIFAR-10's exact format (``vrbench.testing.write_cifar10``)
go through the same reading code as the real data. Missing or corrupted files become a ``MissingResourceError``
that says what to fetch and where to put it, instead of torchvision's "Dataset not found or corrupted".
"""

from __future__ import annotations

import socket
import tarfile
from pathlib import Path

import torch
from torchvision.datasets import CIFAR10
from torchvision.datasets.utils import calculate_md5, download_and_extract_archive

from vrbench.datasets.files import clip_resize_arrays
from vrbench.datasets.images import (
    DATA_ENV,
    ImageSet,
    check_image_size,
    check_split,
    resize_uint8,
    resolve_data_root,
)
from vrbench.errors import MissingResourceError
from vrbench.switches import switch_on

NAME = "cifar10"
VERIFY_ENV = "VRBENCH_VERIFY_CHECKSUMS"
# Seconds a single network read may stall before a download attempt gives up (not a limit on the whole download).
DOWNLOAD_STALL_TIMEOUT = 60.0

# (file name, md5) for every file torchvision reads, the metadata included.
_FILES: tuple[tuple[str, str], ...] = (
    *((name, md5) for name, md5 in CIFAR10.train_list + CIFAR10.test_list),
    (CIFAR10.meta["filename"], CIFAR10.meta["md5"]),
)

# md5 per (path, size, mtime): the pre-check and torchvision's own check then hash each file once per process.
_md5_memo: dict[tuple[str, int, int], str] = {}


def verify_checksums() -> bool:
    """Checksums are verified unless VRBENCH_VERIFY_CHECKSUMS is 0/false/no/off."""
    return switch_on(VERIFY_ENV)


def _md5(path: Path) -> str:
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _md5_memo:
        _md5_memo[key] = calculate_md5(path)
    return _md5_memo[key]


def _missing(folder: Path) -> list[str]:
    return [name for name, _ in _FILES if not (folder / name).is_file()]


def _mismatches(folder: Path) -> list[tuple[str, str, str]]:
    """(file, expected md5, actual md5) for each present file whose checksum differs."""
    found = [(name, md5, _md5(folder / name)) for name, md5 in _FILES if (folder / name).is_file()]
    return [item for item in found if item[1] != item[2]]


class _CheckedCIFAR10(CIFAR10):
    """torchvision's CIFAR10 whose integrity check honours VRBENCH_VERIFY_CHECKSUMS; the reading code is untouched."""

    def _check_integrity(self) -> bool:
        folder = Path(self.root) / self.base_folder
        if _missing(folder):
            return False
        return not verify_checksums() or not _mismatches(folder)

    def _load_meta(self) -> None:
        if not verify_checksums():
            # torchvision hashes batches.meta itself; an md5 of None makes its check "the file exists".
            self.meta = {**type(self).meta, "md5": None}
        super()._load_meta()


def load_cifar10(split: str, image_size: int, data_root: Path | None = None, download: bool = False,
                 resize: str = "squash") -> ImageSet:
    """Load one CIFAR-10 split (50,000 train / 10,000 test for the real data) as uint8 images.

    ``resize``: "squash" (bilinear, the VR papers' Resize((s, s))) or "clip" (CLIP's bicubic preprocess).
    """
    train = check_split(split, NAME)
    check_image_size(image_size, NAME)
    root = resolve_data_root(data_root).absolute()  # messages then name the exact place
    folder = root / CIFAR10.base_folder
    if _missing(folder):
        failure = _try_download(root) if download else None
        missing = _missing(folder)
        if missing:
            raise MissingResourceError(_missing_message(root, missing, failure))
    if verify_checksums():
        bad = _mismatches(folder)
        if bad:
            raise MissingResourceError(_checksum_message(folder, bad))
    dataset = _CheckedCIFAR10(root=str(root), train=train, download=False)
    return _to_image_set(dataset, image_size, resize)


def resize_arrays(images: torch.Tensor, image_size: int, resize: str) -> torch.Tensor:
    """uint8 N x 3 x h x w to image_size: bilinear with antialiasing ("squash") or CLIP's transform ("clip")."""
    if resize == "clip":
        return clip_resize_arrays(images, image_size)
    return resize_uint8(images, image_size, antialias=True)


def _to_image_set(dataset: CIFAR10, image_size: int, resize: str = "squash") -> ImageSet:
    # dataset.data is N x 32 x 32 x 3 uint8 (HWC); one contiguous copy gives N x 3 x 32 x 32.
    images = torch.from_numpy(dataset.data).permute(0, 3, 1, 2).contiguous()
    images = resize_arrays(images, image_size, resize)
    labels = torch.as_tensor(dataset.targets, dtype=torch.int64)
    return ImageSet(images=images, labels=labels, classes=tuple(dataset.classes))


def _try_download(root: Path) -> str | None:
    """Run torchvision's download into root; return why it failed, or None when it worked."""
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_STALL_TIMEOUT)  # urllib has no timeout of its own here; never hang
    try:
        download_and_extract_archive(
            _CheckedCIFAR10.url, str(root), filename=_CheckedCIFAR10.filename, md5=_CheckedCIFAR10.tgz_md5
        )
    except (OSError, RuntimeError, ValueError, tarfile.TarError) as exc:  # URLError is an OSError
        return f"{type(exc).__name__}: {exc}"
    finally:
        socket.setdefaulttimeout(previous)
    return None


def _missing_message(root: Path, missing: list[str], failure: str | None) -> str:
    folder = root / CIFAR10.base_folder
    lines = [f"CIFAR-10 is not at {folder}/ (missing: {', '.join(missing)})."]
    if failure is not None:
        lines.append(f"Downloading {_CheckedCIFAR10.url} failed ({failure}).")
    fetch = (
        f"Fetch {_CheckedCIFAR10.url} (md5 {CIFAR10.tgz_md5}) and extract it so that {folder}/ holds "
        "data_batch_1 ... data_batch_5, test_batch and batches.meta:"
    )
    elsewhere = (
        f"To keep datasets elsewhere, pass --data-root DIR or set {DATA_ENV}=DIR "
        f"(DIR must then contain {CIFAR10.base_folder}/)."
    )
    lines += [fetch, f"    mkdir -p {root} && tar -xzf {CIFAR10.filename} -C {root}", elsewhere]
    return "\n".join(lines)


def _checksum_message(folder: Path, bad: list[tuple[str, str, str]]) -> str:
    lines = [f"CIFAR-10 files in {folder}/ do not match torchvision's checksums:"]
    lines += [f"    {folder / name}: expected md5 {expected}, got {actual}" for name, expected, actual in bad]
    lines.append(
        f"Re-download {_CheckedCIFAR10.url} and extract it again; or set {VERIFY_ENV}=0 "
        "if you built these files yourself."
    )
    return "\n".join(lines)
