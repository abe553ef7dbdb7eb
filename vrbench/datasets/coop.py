"""CoOp-format datasets: the eight (plus Caltech101) with ``split_zhou_<Name>.json``, FGVC-Aircraft's official
lists, and ImageNet with its four domain-shift variants, read exactly as CoOp's ``datasets/*.py`` read them.

Layouts (under the data root, docs/methods.md CLIP §2.1; CoOp DATASETS.md):

* split-file sets: ``<folder>/<split_zhou_Name.json>`` with images under ``<folder>/<image_dir>/``; each JSON item
  is ``[path relative to image_dir, label, cleaned class name]`` for "train", "val" and "test";
* ``fgvc_aircraft/``: the ``data/`` folder of fgvc-aircraft-2013b (``variants.txt``,
  ``images_variant_{train,val,test}.txt``, ``images/<id>.jpg``);
* ``imagenet/images/{train,val}/n*/`` plus ``imagenet/classnames.txt`` ("wnid name" per line); val is the test split;
* ``imagenetv2/imagenetv2-matched-frequency-format-val/{0..999}/``, ``imagenet-sketch/images/n*/``,
  ``imagenet-adversarial/imagenet-a/n*/`` and ``imagenet-rendition/imagenet-r/n*/``, each with a copy of
  ``classnames.txt``. A and R have 200 classes, labelled 0..199 in sorted-folder order.

Class names come from the split file (already cleaned by CoOp), ``variants.txt`` or ``classnames.txt``. One
deliberate difference: CoOp lists ImageNet train folders unsorted (filesystem order); vrbench sorts them, so a
few-shot draw is the same on every machine.

Listing a class-folder dataset is one ``os.scandir`` per folder (no ``stat`` per file) and is kept in the
listing cache (``listing.py``), so repeated jobs reuse it. ``download`` is accepted for the uniform loader
signature; the engine runs `vrbench data prepare` before loading when a run asks for ``--download``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from vrbench.datasets.files import FileList, load_files
from vrbench.datasets.images import ImageSet, check_image_size, resolve_data_root
from vrbench.datasets.layouts import CLASSNAMES_FILE, FGVC_FOLDER, IMAGENET_LAYOUTS, SPLIT_LAYOUTS
from vrbench.datasets.listing import class_folder_files
from vrbench.errors import ConfigError, MissingResourceError

COOP_SPLITS = ("train", "val", "test")


def _missing(name: str, path: Path, what: str) -> MissingResourceError:
    return MissingResourceError(
        f"{name}: {what} {path} is missing. Run `vrbench data prepare {name}` for the download or the exact manual "
        f"steps, then `vrbench data verify {name}`."
    )


# ---------------------------------------------------------------- split-file datasets


def read_split_file(path: Path) -> dict[str, list[tuple[str, int, str]]]:
    """Parse a ``split_zhou_*.json``: {"train"|"val"|"test": [(impath, label, classname), ...]}; check its shape."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MissingResourceError(f"{path} is not a readable split file ({exc}); fetch it again") from None
    if not isinstance(data, dict) or not set(COOP_SPLITS) <= set(data):
        raise MissingResourceError(f"{path}: a CoOp split file is a JSON object with 'train', 'val' and 'test' lists")
    out: dict[str, list[tuple[str, int, str]]] = {}
    for split in COOP_SPLITS:
        items = []
        for position, item in enumerate(data[split]):
            if (not isinstance(item, list) or len(item) != 3 or not isinstance(item[0], str)
                    or isinstance(item[1], bool) or not isinstance(item[1], int) or not isinstance(item[2], str)):
                raise MissingResourceError(
                    f"{path}: {split}[{position}] is {item!r}; each item must be [relative_path, label, classname]")
            items.append((item[0], item[1], item[2]))
        out[split] = items
    return out


def classes_from_items(items: list[tuple[str, int, str]], source: Path) -> tuple[str, ...]:
    """Names sorted by label; labels must be 0..C-1 and each label must carry one name."""
    names: dict[int, str] = {}
    for _, label, name in items:
        if names.setdefault(label, name) != name:
            raise MissingResourceError(f"{source}: label {label} has two names, {names[label]!r} and {name!r}")
    if sorted(names) != list(range(len(names))):
        raise MissingResourceError(f"{source}: labels must be 0..{len(names) - 1} with none missing")
    return tuple(names[label] for label in range(len(names)))


def split_file_list(name: str, split: str, data_root: Path | None) -> FileList:
    """One split of a CoOp split-file dataset, as CoOp's ``read_split`` builds it."""
    layout = SPLIT_LAYOUTS[name]
    folder = resolve_data_root(data_root).absolute() / layout.folder
    path = folder / layout.split_file
    if not path.is_file():
        raise _missing(name, path, "the CoOp split file")
    splits = read_split_file(path)
    classes = classes_from_items(splits["train"] + splits["val"] + splits["test"], path)
    items = splits[split]
    base = folder / layout.image_dir if layout.image_dir else folder
    return FileList(name, split, base, tuple(p for p, _, _ in items), tuple(lab for _, lab, _ in items), classes)


# ---------------------------------------------------------------- FGVC-Aircraft


def fgvc_file_list(split: str, data_root: Path | None) -> FileList:
    """CoOp ``FGVCAircraft``: classes from variants.txt, items from images_variant_<split>.txt."""
    folder = resolve_data_root(data_root).absolute() / FGVC_FOLDER
    variants = folder / "variants.txt"
    listing = folder / f"images_variant_{split}.txt"
    for needed in (variants, listing):
        if not needed.is_file():
            raise _missing("fgvc_aircraft", needed, "the FGVC-Aircraft list")
    classes = tuple(line.strip() for line in variants.read_text(encoding="utf-8").splitlines() if line.strip())
    label_of = {c: i for i, c in enumerate(classes)}
    paths, labels = [], []
    for line in listing.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        parts = line.strip().split(" ")
        variant = " ".join(parts[1:])
        if variant not in label_of:
            raise MissingResourceError(f"{listing}: variant {variant!r} is not in {variants}")
        paths.append(f"{parts[0]}.jpg")
        labels.append(label_of[variant])
    return FileList("fgvc_aircraft", split, folder / "images", tuple(paths), tuple(labels), classes)


# ---------------------------------------------------------------- ImageNet and its variants


def read_classnames(path: Path) -> dict[str, str]:
    """classnames.txt: "n01440764 tench" per line -> {wnid: name}, in file order."""
    if not path.is_file():
        raise _missing(path.parent.name, path, "the class-name file")
    names: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        parts = line.strip().split(" ")
        if parts and parts[0]:
            names[parts[0]] = " ".join(parts[1:])
    return names


def imagenet_file_list(name: str, split: str, data_root: Path | None) -> FileList:
    """ImageNet (train / val-as-test) and the test-only variants, as CoOp's imagenet*.py list them."""
    folder_name, image_dir = IMAGENET_LAYOUTS[name]
    folder = resolve_data_root(data_root).absolute() / folder_name
    names = read_classnames(folder / CLASSNAMES_FILE)
    images = folder / image_dir
    if name == "imagenet":
        images = images / ("train" if split == "train" else "val")
    if not images.is_dir():
        raise _missing(name, images, "the image folder")
    paths: list[str] = []
    labels: list[int] = []
    tag = f"{name}-{split}"
    if name == "imagenetv2":
        classes = tuple(names.values())
        listed = class_folder_files(images, tag, [str(label) for label in range(len(names))])
        for label in range(len(names)):
            for file in listed.get(str(label), ()):
                paths.append(f"{label}/{file}")
                labels.append(label)
        return FileList(name, split, images, tuple(paths), tuple(labels), classes)
    listed = class_folder_files(images, tag)  # README.txt of A/R is a file, so it is skipped
    folders = list(listed)
    unknown = [f for f in folders if f not in names]
    if unknown:
        raise MissingResourceError(
            f"{images}: folder(s) {', '.join(unknown[:5])} are not in {folder / CLASSNAMES_FILE}")
    for label, wnid in enumerate(folders):
        for file in listed[wnid]:
            paths.append(f"{wnid}/{file}")
            labels.append(label)
    classes = tuple(names[wnid] for wnid in folders)
    return FileList(name, split, images, tuple(paths), tuple(labels), classes)


# ---------------------------------------------------------------- loaders


def file_list(name: str, split: str, data_root: Path | None) -> FileList:
    """The FileList of any dataset in this module (the entry point for few-shot sampling and verification)."""
    from vrbench.datasets import DATASETS

    info = DATASETS.get(name)
    if split not in info.splits:
        raise ConfigError(f"dataset {name!r} has no split {split!r}; valid splits: {', '.join(info.splits)}")
    if name in SPLIT_LAYOUTS:
        return split_file_list(name, split, data_root)
    if name == "fgvc_aircraft":
        return fgvc_file_list(split, data_root)
    return imagenet_file_list(name, split, data_root)


def load(name: str, split: str, image_size: int, data_root: Path | None = None, download: bool = False,
         resize: str = "squash") -> ImageSet:
    """Decode one split at ``image_size`` through the decoded-image cache (``resize``: see files.decode_image)."""
    check_image_size(image_size, name)
    return load_files(file_list(name, split, data_root), image_size, resize=resize)


def _loader(name: str) -> Callable[..., ImageSet]:
    def loader(split: str, image_size: int, data_root: Path | None = None, download: bool = False,
               resize: str = "squash") -> ImageSet:
        return load(name, split, image_size, data_root, download, resize)

    loader.__name__ = f"load_{name}"
    loader.__doc__ = f"Load one split of {name} (CoOp layout) as uint8 images of image_size px."
    return loader


load_flowers102 = _loader("flowers102")
load_dtd = _loader("dtd")
load_ucf101 = _loader("ucf101")
load_food101 = _loader("food101")
load_eurosat = _loader("eurosat")
load_oxfordpets = _loader("oxfordpets")
load_stanfordcars = _loader("stanfordcars")
load_sun397 = _loader("sun397")
load_caltech101 = _loader("caltech101")
load_fgvc_aircraft = _loader("fgvc_aircraft")
load_imagenet = _loader("imagenet")
load_imagenetv2 = _loader("imagenetv2")
load_imagenet_sketch = _loader("imagenet_sketch")
load_imagenet_a = _loader("imagenet_a")
load_imagenet_r = _loader("imagenet_r")
