"""Test utility: a small dataset in CIFAR-10's exact on-disk format, for tests and CI's offline smoke run.

The real files are Python 2 pickles: dicts whose keys and strings are Python 2 ``str``. Read with
``encoding="latin1"`` (as torchvision does) the keys are ``"data"``, ``"labels"``, ...; read with
``encoding="bytes"`` (as the CIFAR web page shows) they are ``b"data"``, ``b"labels"``, .... The fixture writes
the same opcodes, so both readers see what they would see on the real data:

* ``data_batch_1`` .. ``data_batch_5`` (the training images split across them) and ``test_batch``: keys
  ``data`` (uint8 N x 3072, each row the R, G and B 32x32 planes in turn), ``labels`` (list of int),
  ``batch_label`` and ``filenames``;
* ``batches.meta``: ``label_names`` (CIFAR-10's ten names), ``num_cases_per_batch``, ``num_vis``.

The checksums differ from the real ones, so load it with ``VRBENCH_VERIFY_CHECKSUMS=0``. Images are learnable,
not noise: each class is its own coloured shape, jittered in position and brightness, on a random dark
background with pixel noise.
"""

from __future__ import annotations

import pickle
import struct
from pathlib import Path

import numpy as np

LABEL_NAMES: tuple[str, ...] = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)  # fmt: skip
FOLDER = "cifar-10-batches-py"
SIDE = 32
NUM_TRAIN_BATCHES = 5

# One distinct foreground colour per class (RGB).
_PALETTE = np.array(
    [
        [230, 40, 40], [40, 200, 40], [50, 90, 240], [240, 220, 40], [220, 50, 220],
        [40, 220, 220], [250, 140, 20], [150, 70, 230], [245, 245, 245], [140, 200, 90],
    ],
    dtype=np.float32,
)  # fmt: skip


class _Py2Str(bytes):
    """Bytes that pickle as a Python 2 ``str``, like every string in the real CIFAR files."""


class _Py2Pickler(pickle._Pickler):  # the pure-Python pickler: the only one whose opcodes per type can be chosen
    dispatch = pickle._Pickler.dispatch.copy()

    def _save_py2_str(self, obj: _Py2Str) -> None:
        raw = bytes(obj)
        if len(raw) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(raw)]) + raw)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(raw)) + raw)

    dispatch[_Py2Str] = _save_py2_str


def _s(text: str) -> _Py2Str:
    return _Py2Str(text.encode("latin1"))


def _dump(obj: dict, path: Path) -> None:
    with open(path, "wb") as f:
        _Py2Pickler(f, protocol=2).dump(obj)


def _shape_mask(cls: int, dy: np.ndarray, dx: np.ndarray, y: np.ndarray, x: np.ndarray) -> np.ndarray:
    """The foreground of class ``cls`` given offsets from the (jittered) centre."""
    ady, adx, r2 = np.abs(dy), np.abs(dx), dy**2 + dx**2
    masks = [
        (ady <= 7) & (adx <= 7),  # filled square
        r2 <= 64,  # disc
        (ady <= 3) & (adx <= 12),  # horizontal bar
        (adx <= 3) & (ady <= 12),  # vertical bar
        (np.abs(dy - dx) <= 2) & (adx <= 10),  # diagonal stroke
        ((ady <= 2) & (adx <= 10)) | ((adx <= 2) & (ady <= 10)),  # plus
        (r2 >= 36) & (r2 <= 100),  # ring
        (dy >= -8) & (dy <= 8) & (2 * adx <= dy + 8),  # triangle
        (((y // 4) + (x // 4)) % 2 == 0) & (ady <= 10) & (adx <= 10),  # checkerboard patch
        (np.maximum(ady, adx) >= 8) & (np.maximum(ady, adx) <= 10),  # hollow frame
    ]
    return masks[cls]


def make_images(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """N x 32 x 32 x 3 uint8 images, one class-specific coloured shape each."""
    y, x = np.mgrid[0:SIDE, 0:SIDE]
    images = np.empty((len(labels), SIDE, SIDE, 3), dtype=np.uint8)
    for i, cls in enumerate(labels.tolist()):
        cy, cx = SIDE // 2 + rng.integers(-3, 4, size=2)
        mask = _shape_mask(cls, y - cy, x - cx, y, x)
        background = rng.uniform(0, 90, size=3).astype(np.float32)
        image = np.broadcast_to(background, (SIDE, SIDE, 3)).copy()
        image[mask] = _PALETTE[cls] * rng.uniform(0.8, 1.0)
        image += rng.normal(0.0, 12.0, size=image.shape).astype(np.float32)
        images[i] = np.clip(np.rint(image), 0, 255).astype(np.uint8)
    return images


def _balanced_labels(n: int, rng: np.random.Generator) -> np.ndarray:
    return rng.permutation(np.arange(n) % len(LABEL_NAMES))


def _batch(images: np.ndarray, labels: np.ndarray, batch_label: str, start: int) -> dict:
    rows = images.transpose(0, 3, 1, 2).reshape(len(images), 3 * SIDE * SIDE)  # R plane, G plane, B plane
    names = [_s(f"{LABEL_NAMES[c]}_s_{start + i:06d}.png") for i, c in enumerate(labels.tolist())]
    return {
        _s("batch_label"): _s(batch_label),
        _s("labels"): [int(c) for c in labels],
        _s("data"): np.ascontiguousarray(rows, dtype=np.uint8),
        _s("filenames"): names,
    }


def write_cifar10(root: Path, n_train: int = 50, n_test: int = 20, seed: int = 0) -> Path:
    """Write ``root/cifar-10-batches-py/`` with n_train training and n_test test images; return root."""
    if n_train < 0 or n_test < 0:
        raise ValueError(f"n_train and n_test must be non-negative, got {n_train} and {n_test}")
    root = Path(root)
    folder = root / FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    train_labels, test_labels = _balanced_labels(n_train, rng), _balanced_labels(n_test, rng)
    train_images, test_images = make_images(train_labels, rng), make_images(test_labels, rng)

    bounds = np.linspace(0, n_train, NUM_TRAIN_BATCHES + 1).round().astype(int)
    for b in range(NUM_TRAIN_BATCHES):
        lo, hi = bounds[b], bounds[b + 1]
        label = f"training batch {b + 1} of {NUM_TRAIN_BATCHES}"
        _dump(_batch(train_images[lo:hi], train_labels[lo:hi], label, lo), folder / f"data_batch_{b + 1}")
    _dump(_batch(test_images, test_labels, "testing batch 1 of 1", 0), folder / "test_batch")
    meta = {
        _s("num_cases_per_batch"): int(bounds[1] - bounds[0]),
        _s("label_names"): [_s(name) for name in LABEL_NAMES],
        _s("num_vis"): 3 * SIDE * SIDE,
    }
    _dump(meta, folder / "batches.meta")
    return root
