"""Test utilities: tiny datasets in each family's exact on-disk layout, for the real loaders to read.

* torchvision formats: CIFAR-100 (Python-2-style pickles, like the CIFAR-10 fixture), SVHN (``.mat`` with ``X``
  as 32 x 32 x 3 x N and ``y`` with 10 for the digit 0), GTSRB (``.ppm`` class folders and the test CSV);
* CoOp: ``split_zhou_<Name>.json`` (``indent=4``, items ``[path, label, classname]``) plus JPEG image folders, for
  every split-file dataset; FGVC-Aircraft's text lists; ImageNet and its variants' class folders and
  ``classnames.txt``;
* ABIDE: ``abide.hdf5`` (``patients/<FILE_ID>/cc200``) and the phenotypic CSV;
* animal_shapes: the two gzipped numpy pickles, and a wheel holding them at the real wheel's paths.

Images are learnable: each class is its own coloured shape (``cifar_fixture.make_images``), upscaled to a
non-square size so the loaders' resizing is exercised. Checksums cannot match the real files'.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import pickle
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

from vrbench.testing.cifar_fixture import _dump, _s, make_images

IMAGE_SIZE = (48, 40)  # width, height of fixture JPEGs


def _images(labels: list[int], seed: int, size: tuple[int, int] = IMAGE_SIZE) -> list[Image.Image]:
    rng = np.random.default_rng(seed)
    small = make_images(np.asarray(labels, dtype=np.int64) % 10, rng)
    return [Image.fromarray(pixels).resize(size, Image.BILINEAR) for pixels in small]


def _save(image: Image.Image, path: Path, **options) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, **options)


# ---------------------------------------------------------------- torchvision formats


def write_cifar100(root: Path, n_train: int = 200, n_test: int = 100, seed: int = 0) -> Path:
    """``root/cifar-100-python/{train,test,meta}`` as the real files (keys fine_labels, coarse_labels, ...)."""
    from vrbench.datasets.classnames import CIFAR100

    folder = Path(root) / "cifar-100-python"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for name, n in (("train", n_train), ("test", n_test)):
        labels = rng.permutation(np.arange(n) % 100)
        images = make_images(labels % 10, rng)
        rows = images.transpose(0, 3, 1, 2).reshape(n, 3 * 32 * 32)
        _dump({
            _s("filenames"): [_s(f"img_{i:05d}.png") for i in range(n)],
            _s("batch_label"): _s(f"{name}ing batch 1 of 1"),
            _s("fine_labels"): [int(x) for x in labels],
            _s("coarse_labels"): [int(x) // 5 for x in labels],
            _s("data"): np.ascontiguousarray(rows, dtype=np.uint8),
        }, folder / name)
    _dump({_s("fine_label_names"): [_s(n) for n in CIFAR100],
           _s("coarse_label_names"): [_s(f"super_{i}") for i in range(20)]}, folder / "meta")
    return Path(root)


def write_svhn(root: Path, n_train: int = 60, n_test: int = 30, seed: int = 0) -> Path:
    """``root/svhn/{train,test}_32x32.mat`` (MATLAB v5, as scipy reads them; label 10 means digit 0)."""
    from scipy.io import savemat

    folder = Path(root) / "svhn"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for name, n in (("train", n_train), ("test", n_test)):
        digits = rng.permutation(np.arange(n) % 10)
        images = make_images(digits, rng)  # N x 32 x 32 x 3
        y = np.where(digits == 0, 10, digits).astype(np.uint8).reshape(-1, 1)
        savemat(folder / f"{name}_32x32.mat", {"X": np.ascontiguousarray(images.transpose(1, 2, 3, 0)), "y": y})
    return Path(root)


def write_gtsrb(root: Path, train_per_class: int = 2, n_test: int = 43, seed: int = 0) -> Path:
    """``root/gtsrb/GTSRB/Training/000NN/*.ppm`` (43 classes), test images and ``GT-final_test.csv``."""
    base = Path(root) / "gtsrb"
    labels = [c for c in range(43) for _ in range(train_per_class)]
    for i, (label, image) in enumerate(zip(labels, _images(labels, seed, (30, 34)), strict=True)):
        _save(image, base / "GTSRB" / "Training" / f"{label:05d}" / f"{label:05d}_{i:05d}.ppm")
    test_labels = [i % 43 for i in range(n_test)]
    rows = []
    for i, (label, image) in enumerate(zip(test_labels, _images(test_labels, seed + 1, (36, 31)), strict=True)):
        name = f"{i:05d}.ppm"
        _save(image, base / "GTSRB" / "Final_Test" / "Images" / name)
        rows.append([name, 36, 31, 1, 1, 35, 30, label])
    with open(base / "GT-final_test.csv", "w", newline="") as handle:
        writer = csv.writer(handle, delimiter=";")
        writer.writerow(["Filename", "Width", "Height", "Roi.X1", "Roi.Y1", "Roi.X2", "Roi.Y2", "ClassId"])
        writer.writerows(rows)
    return Path(root)


# ---------------------------------------------------------------- CoOp formats


def _fixture_classes(name: str, num_classes: int | None) -> tuple[str, ...]:
    from vrbench.datasets import DATASETS

    info = DATASETS.get(name)
    if info.classes is not None and num_classes in (None, info.num_classes):
        return info.classes
    n = num_classes or info.num_classes
    return tuple(f"{name}_class_{c:03d}" for c in range(n))


def _relative_path(name: str, split: str, classname: str, index: int) -> str:
    token = classname.replace(" ", "_")
    if name in ("flowers102", "oxfordpets"):
        return f"{token}_{index:05d}.jpg"
    if name == "stanfordcars":
        return f"cars_{'test' if split == 'test' else 'train'}/{index:05d}.jpg"
    return f"{token}/{token}_{index:05d}.jpg"


def write_coop_dataset(name: str, root: Path, per_class: tuple[int, int, int] = (3, 1, 2),
                       num_classes: int | None = None, seed: int = 0,
                       image_size: tuple[int, int] = IMAGE_SIZE) -> Path:
    """``root/<folder>/<split_zhou_Name.json>`` and its JPEGs for a CoOp split-file dataset; return the folder.

    ``per_class`` is (train, val, test) images per class. Labels are 0..C-1; each split lists its items
    class by class, as CoOp's files do.
    """
    from vrbench.datasets.coop import SPLIT_LAYOUTS

    layout = SPLIT_LAYOUTS[name]
    folder = Path(root) / layout.folder
    image_root = folder / layout.image_dir if layout.image_dir else folder
    classes = _fixture_classes(name, num_classes)
    split_items: dict[str, list] = {}
    index = 0
    for offset, (split, count) in enumerate(zip(("train", "val", "test"), per_class, strict=True)):
        labels = [c for c in range(len(classes)) for _ in range(count)]
        items = []
        for label, image in zip(labels, _images(labels, seed + offset, image_size), strict=True):
            relative = _relative_path(name, split, classes[label], index)
            index += 1
            _save(image, image_root / relative, quality=90)
            items.append([relative, label, classes[label]])
        split_items[split] = items
    folder.mkdir(parents=True, exist_ok=True)
    (folder / layout.split_file).write_text(json.dumps(split_items, indent=4), encoding="utf-8")
    return folder


def write_fgvc_aircraft(root: Path, per_class: tuple[int, int, int] = (2, 1, 1), num_classes: int = 5,
                        seed: int = 0) -> Path:
    """``root/fgvc_aircraft/`` as the ``data/`` folder of fgvc-aircraft-2013b (lists + images/<id>.jpg)."""
    folder = Path(root) / "fgvc_aircraft"
    variants = [f"7{c:02d}-320" if c % 2 else f"A3{c:02d}B4" for c in range(num_classes)]
    (folder / "images").mkdir(parents=True, exist_ok=True)
    (folder / "variants.txt").write_text("".join(f"{v}\n" for v in variants))
    image_id = 1000000
    for offset, (split, count) in enumerate(zip(("train", "val", "test"), per_class, strict=True)):
        labels = [c for c in range(num_classes) for _ in range(count)]
        lines = []
        for label, image in zip(labels, _images(labels, seed + offset), strict=True):
            _save(image, folder / "images" / f"{image_id}.jpg", quality=90)
            lines.append(f"{image_id} {variants[label]}\n")
            image_id += 1
        (folder / f"images_variant_{split}.txt").write_text("".join(lines))
    return folder


def imagenet_wnids(n: int = 1000) -> list[str]:
    """Synthetic, sorted wnid-like folder names (the real ones are not needed by the loader's logic)."""
    return [f"n{1440764 + 1000 * i:08d}" for i in range(n)]


def write_imagenet_family(name: str, root: Path, num_classes: int = 4, per_class: int = 2, seed: int = 0) -> Path:
    """ImageNet (train + val folders) or a variant (V2 numbered folders, Sketch/A/R wnid folders) with
    ``classnames.txt`` for all 1,000 classes; images for ``num_classes`` of them. Returns the dataset folder."""
    from vrbench.datasets.coop import CLASSNAMES_FILE, IMAGENET_LAYOUTS

    folder_name, image_dir = IMAGENET_LAYOUTS[name]
    folder = Path(root) / folder_name
    folder.mkdir(parents=True, exist_ok=True)
    wnids = imagenet_wnids()
    (folder / CLASSNAMES_FILE).write_text("".join(f"{w} class name {i}\n" for i, w in enumerate(wnids)))
    # A and R use a spread-out subset of the 1000 classes, as the real 200 are.
    chosen = list(range(0, 1000, 1000 // num_classes))[:num_classes] if name in ("imagenet_a", "imagenet_r") \
        else list(range(num_classes))
    subdirs = ["train", "val"] if name == "imagenet" else [""]
    for offset, sub in enumerate(subdirs):
        labels = [c for c in chosen for _ in range(per_class)]
        for i, (label, image) in enumerate(zip(labels, _images(labels, seed + offset), strict=True)):
            class_folder = str(label) if name == "imagenetv2" else wnids[label]
            _save(image, folder / image_dir / sub / class_folder / f"img_{i:04d}.jpg", quality=90)
    if name in ("imagenet_a", "imagenet_r"):
        (folder / image_dir / "README.txt").write_text("not a class folder\n")
    return folder


# ---------------------------------------------------------------- ABIDE and animal_shapes


def write_abide(root: Path, n_subjects: int = 40, seed: int = 0) -> Path:
    """``root/abide/abide.hdf5`` and ``Phenotypic_V1_0b_preprocessed1.csv``; DX_GROUP alternates 1 (ASD) / 2."""
    import h5py

    folder = Path(root) / "abide"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    rows = []
    with h5py.File(folder / "abide.hdf5", "w") as h5:
        patients = h5.create_group("patients")
        for i in range(n_subjects):
            file_id = f"Site_{50000 + i:07d}"
            group = 1 + i % 2
            features = rng.normal(0.1 if group == 1 else -0.1, 0.3, size=19900)
            patients.create_group(file_id).create_dataset("cc200", data=features)
            rows.append({"FILE_ID": file_id, "DX_GROUP": group, "SITE_ID": "Site"})
    with open(folder / "Phenotypic_V1_0b_preprocessed1.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["SITE_ID", "FILE_ID", "DX_GROUP"])
        writer.writeheader()
        writer.writerows(rows)
    return folder


def _animal_arrays(per_class: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(10), per_class).astype(np.int64)  # sorted by class, as the real file
    images = make_images(labels, rng)[:, 2:30, 2:30].mean(axis=3).astype(np.uint8)
    return images, labels


def animal_payloads(per_class: int = 20, seed: int = 0) -> dict[str, bytes]:
    """The two gzipped pickles of numpy arrays, as animal-mnist 0.4 ships them (N x 28 x 28 uint8, N int64)."""
    from vrbench.datasets.animal_shapes import DATA_FILE, LABEL_FILE

    images, labels = _animal_arrays(per_class, seed)
    return {DATA_FILE: gzip.compress(pickle.dumps(images, protocol=4)),
            LABEL_FILE: gzip.compress(pickle.dumps(labels, protocol=4))}


def write_animal_shapes(root: Path, per_class: int = 20, seed: int = 0) -> Path:
    """``root/animal_shapes/`` with the two data files (what `vrbench data prepare animal_shapes` leaves)."""
    folder = Path(root) / "animal_shapes"
    folder.mkdir(parents=True, exist_ok=True)
    for name, payload in animal_payloads(per_class, seed).items():
        (folder / name).write_bytes(payload)
    return folder


def write_animal_wheel(path: Path, per_class: int = 20, seed: int = 0, extra: dict[str, bytes] | None = None) -> Path:
    """A wheel with the data files at the real wheel's paths (its sha256 cannot equal the real one)."""
    from vrbench.datasets.animal_shapes import WHEEL_DIR

    path = Path(path)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("animal_mnist/__init__.py", "")
        for name, payload in {**animal_payloads(per_class, seed), **(extra or {})}.items():
            archive.writestr(WHEEL_DIR + name, payload)
    path.write_bytes(buffer.getvalue())
    return path


class _Evil:
    """Pickles to a call of os.system: what the restricted unpickler must refuse."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):  # noqa: ANN204
        import os

        return (os.system, (self.command,))


def malicious_pickle(command: str = "echo pwned") -> bytes:
    """A gzipped pickle that would run ``command`` in a shell under plain ``pickle.load``."""
    return gzip.compress(pickle.dumps(_Evil(command)))


__all__ = [
    "write_cifar100", "write_svhn", "write_gtsrb", "write_coop_dataset", "write_fgvc_aircraft",
    "write_imagenet_family", "write_abide", "write_animal_shapes", "write_animal_wheel", "animal_payloads",
    "malicious_pickle", "imagenet_wnids",
]


def write_imagenet_scale(root: Path, num_classes: int = 1000, per_class: int = 20, val_per_class: int = 1) -> Path:
    """ImageNet's layout at its real class count with many tiny images, written in seconds: one 8 x 8 JPEG per
    class (its own colour), copied to every file of that class. For the scale tests and the few-shot benchmark."""
    from vrbench.datasets.layouts import CLASSNAMES_FILE, IMAGENET_LAYOUTS

    folder_name, image_dir = IMAGENET_LAYOUTS["imagenet"]
    folder = Path(root) / folder_name
    folder.mkdir(parents=True, exist_ok=True)
    wnids = imagenet_wnids()
    (folder / CLASSNAMES_FILE).write_text("".join(f"{w} class name {i}\n" for i, w in enumerate(wnids)))
    for label in range(num_classes):
        colour = (label % 256, (label * 7) % 256, (label * 13) % 256)
        buffer = io.BytesIO()
        Image.new("RGB", (8, 8), colour).save(buffer, format="JPEG", quality=90)
        payload = buffer.getvalue()
        for sub, count in (("train", per_class), ("val", val_per_class)):
            class_folder = folder / image_dir / sub / wnids[label]
            class_folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                (class_folder / f"{wnids[label]}_{i:05d}.JPEG").write_bytes(payload)
    return folder
