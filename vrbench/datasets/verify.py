"""`vrbench data verify` and `ls`: find every problem of a dataset on disk at once, each with its path and its fix.

Checks, in order (later ones run only where the earlier ones leave something to check):

1. layout: the files and folders the loader opens exist (a folder found one level too deep is pointed out);
2. split files: they parse; labels are 0..C-1 with one name each; C equals the documented class count; names equal
   the vendored cleaned names where vrbench has them; the split file still has the sha256 recorded when
   `vrbench data prepare` fetched it;
3. counts: images per split equal the documented sizes;
4. files: every image a split lists exists; with ``level="headers"`` (the default) each opens as an image; with
   ``level="decode"`` each decodes fully (catches truncated files, slower);
5. checksums: torchvision's md5s for CIFAR and SVHN, the wheel RECORD's sha256 for animal_shapes (all subject to
   ``VRBENCH_VERIFY_CHECKSUMS``).

Severity: everything is an error except count differences for ABIDE (its sizes are not stated by the papers' code)
and, with ``VRBENCH_VERIFY_CHECKSUMS=0`` (files built by the user: fixtures, reduced copies), count differences of
any dataset; those are warnings, reported but not stopping a run.

``verify_for_suite`` is what a runner calls before starting jobs: ``level="quick"`` (layout, split files, counts
and file existence; no image is opened).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from vrbench.datasets import DATASETS, DatasetInfo
from vrbench.errors import VrbenchError

LEVELS = ("quick", "headers", "decode")
MAX_LISTED = 5  # missing or corrupt files named per split; the rest are counted


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a dataset on disk, where it is and how to fix it."""

    dataset: str
    path: str
    message: str
    fix: str
    severity: str = "error"  # "error" stops a run; "warning" (e.g. sizes that are not documented facts) does not

    def __str__(self) -> str:
        return f"[{self.severity}] {self.dataset}: {self.path}: {self.message}\n    fix: {self.fix}"


def _prepare_fix(name: str) -> str:
    return f"run `vrbench data prepare {name}` (it downloads, or prints the exact manual steps)"


# ---------------------------------------------------------------- layout


def required_paths(info: DatasetInfo, root: Path) -> list[Path]:
    """The files and folders the loader needs; empty for datasets inside installed packages."""
    from vrbench.datasets import layouts as lay

    name = info.name
    root = Path(root)
    if name == "digits":
        return []
    if name == "animal_shapes":
        return [root / info.folder / file for file in lay.ANIMAL_FILES]
    if name in ("cifar10", "cifar100"):
        return [root / info.folder / file for file in (lay.CIFAR10_FILES if name == "cifar10" else lay.CIFAR100_FILES)]
    if name == "svhn":
        return [root / "svhn" / file for file in lay.SVHN_FILES]
    if name == "gtsrb":
        base = root / "gtsrb"
        return [base / "GTSRB" / "Training", base / "GTSRB" / "Final_Test" / "Images", base / "GT-final_test.csv"]
    if name == "abide":
        return [root / "abide" / lay.ABIDE_HDF5, root / "abide" / lay.ABIDE_PHENOTYPES]
    if name in lay.SPLIT_LAYOUTS:
        layout = lay.SPLIT_LAYOUTS[name]
        folder = root / layout.folder
        paths = [folder / layout.split_file]
        return paths + ([folder / layout.image_dir] if layout.image_dir else [])
    if name == "fgvc_aircraft":
        folder = root / lay.FGVC_FOLDER
        return [folder / "variants.txt", folder / "images"] + [
            folder / f"images_variant_{split}.txt" for split in ("train", "val", "test")]
    folder_name, image_dir = lay.IMAGENET_LAYOUTS[name]
    folder = root / folder_name
    images = folder / image_dir
    if name == "imagenet":
        return [folder / lay.CLASSNAMES_FILE, images / "train", images / "val"]
    return [folder / lay.CLASSNAMES_FILE, images]


def dataset_state(info: DatasetInfo, root: Path) -> tuple[str, str]:
    """("ready" | "missing" | "partial", detail) from the layout alone: cheap enough for `vrbench data ls`."""
    needed = required_paths(info, root)
    if not needed:
        if info.name == "digits":
            import importlib.util

            spec = importlib.util.find_spec("sklearn")  # the same lookup as digits._data_file, without torch
            if spec is None or not spec.submodule_search_locations:
                return "missing", "pip install scikit-learn"
            path = Path(spec.submodule_search_locations[0]) / "datasets" / "data" / "digits.csv.gz"
            return ("ready", str(path)) if path.is_file() else ("missing", f"{path} is missing")
        return "ready", "ships in a package"
    present = [p for p in needed if p.exists()]
    location = str(info.location(root))
    if len(present) == len(needed):
        return "ready", location
    if not present:
        return "missing", location
    missing = [str(p.relative_to(root)) for p in needed if not p.exists()]
    return "partial", f"missing {', '.join(missing)}"


def _nested_hint(path: Path, root: Path) -> str | None:
    """If ``path`` is missing but exists one folder deeper (a doubly extracted archive), say where."""
    parent = path.parent
    while not parent.is_dir() and parent != root and parent.parent != parent:
        parent = parent.parent
    if not parent.is_dir():
        return None
    relative = path.relative_to(parent)
    for child in sorted(p for p in parent.iterdir() if p.is_dir()):
        if (child / relative).exists():
            return f"found it at {child / relative}: move the contents of {child} up into {parent}"
    return None


def _layout_problems(info: DatasetInfo, root: Path) -> list[Problem]:
    problems = []
    for path in required_paths(info, root):
        if not path.exists():
            kind = "folder" if not path.suffix else "file"
            problems.append(Problem(info.name, str(path), f"required {kind} is missing",
                                    _nested_hint(path, root) or _prepare_fix(info.name)))
    return problems


# ---------------------------------------------------------------- content checks


def _count_problem(info: DatasetInfo, split: str, found: int, where: str) -> Problem | None:
    expected = info.size(split)
    if expected is None or found == expected:
        return None
    from vrbench.datasets.cifar import verify_checksums

    # ABIDE's sizes are not documented facts; with checksums off the user says "files I built myself" (fixtures,
    # subsets), so a different count is worth a warning there but must not stop a run.
    severity = "warning" if info.name == "abide" or not verify_checksums() else "error"
    return Problem(info.name, where, f"{split} split has {found} images, documented size is {expected}",
                   "the download or split file is incomplete or a different version: "
                   f"re-fetch it ({_prepare_fix(info.name)})", severity)


def _classes_problems(info: DatasetInfo, classes: tuple[str, ...], where: str) -> list[Problem]:
    problems = []
    if len(classes) != info.num_classes:
        problems.append(Problem(info.name, where, f"{len(classes)} classes, expected {info.num_classes}",
                                "use the dataset's official split file / class list"))
    elif info.classes is not None and tuple(classes) != info.classes:
        bad = next(i for i, (a, b) in enumerate(zip(classes, info.classes, strict=True)) if a != b)
        problems.append(Problem(info.name, where, f"class {bad} is named {classes[bad]!r}, CoOp's cleaned name is "
                                f"{info.classes[bad]!r}", "use CoOp's split file (names already cleaned)"))
    return problems


def _check_image(path: Path, decode: bool) -> str | None:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            if decode:
                image.load()
    except (OSError, UnidentifiedImageError, ValueError, SyntaxError) as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


def _file_problems(name: str, files, level: str) -> list[Problem]:
    """Missing and (level permitting) unreadable images of one FileList."""
    from vrbench.datasets.layouts import IMAGENET_LAYOUTS

    problems: list[Problem] = []
    paths = [files.base / p for p in files.paths]
    # class-folder datasets list what the folders hold (listing.py), so their files exist: no stat per file
    missing = [] if name in IMAGENET_LAYOUTS else [p for p in paths if not p.is_file()]
    if missing:
        shown = ", ".join(str(p) for p in missing[:MAX_LISTED])
        more = f" and {len(missing) - MAX_LISTED} more" if len(missing) > MAX_LISTED else ""
        problems.append(Problem(name, str(files.base), f"{len(missing)} image(s) of the {files.split} split are "
                                f"missing: {shown}{more}", "re-extract the image archive into this folder "
                                "(the split file names paths relative to it)"))
    if level == "quick":
        return problems
    present = [p for p in paths if p.is_file()]
    with ThreadPoolExecutor(max_workers=4) as pool:
        errors = list(pool.map(lambda p: _check_image(p, level == "decode"), present))
    for path, error in zip(present, errors, strict=True):
        if error is not None:
            problems.append(Problem(name, str(path), f"unreadable image ({error})",
                                    "re-extract this file from the dataset archive (or re-download it)"))
    return problems


def _file_list_checks(info: DatasetInfo, root: Path, level: str) -> list[Problem]:
    from vrbench.datasets import coop
    from vrbench.datasets.checksums import RECORD, read_record, sha256_file

    problems: list[Problem] = []
    if info.name in coop.SPLIT_LAYOUTS:
        layout = coop.SPLIT_LAYOUTS[info.name]
        split_path = root / layout.folder / layout.split_file
        recorded = read_record(split_path.parent).get(split_path.name)
        if recorded and recorded != sha256_file(split_path):
            problems.append(Problem(info.name, str(split_path), f"sha256 differs from the one recorded in {RECORD} "
                                    "when it was fetched", f"`vrbench data prepare {info.name} --force`"))
    classes_checked = False
    for split in info.splits:
        try:
            if info.name == "gtsrb":
                from vrbench.datasets.torchvision_sets import gtsrb_file_list

                files = gtsrb_file_list(split, root)
            else:
                files = coop.file_list(info.name, split, root)
        except VrbenchError as exc:
            problems.append(Problem(info.name, str(info.location(root)), str(exc).split("\n")[0],
                                    _prepare_fix(info.name)))
            continue
        if not classes_checked:
            problems += _classes_problems(info, files.classes, str(files.base))
            classes_checked = True
        count = _count_problem(info, split, len(files), str(files.base))
        if count:
            problems.append(count)
        problems += _file_problems(info.name, files, level)
    return problems


def _array_checks(info: DatasetInfo, root: Path) -> list[Problem]:
    """CIFAR, SVHN, ABIDE, animal_shapes: checksums, then counts through the real loader."""
    from vrbench.datasets.cifar import verify_checksums

    problems: list[Problem] = []
    if verify_checksums():
        problems += _checksum_problems(info, root)
        if problems:
            return problems
    for split in info.splits:
        try:
            loaded = info.load(split, info.vr_image_size if info.name != "abide" else 200, root)
        except Exception as exc:  # noqa: BLE001 - a damaged file must become a reported problem, not a crash
            message = str(exc).split("\n")[0] if isinstance(exc, VrbenchError) else f"{type(exc).__name__}: {exc}"
            problems.append(Problem(info.name, str(info.location(root)), message, _prepare_fix(info.name)))
            continue
        if split == info.splits[0]:
            problems += _classes_problems(info, loaded.classes, str(info.location(root)))
        count = _count_problem(info, split, len(loaded), str(info.location(root)))
        if count:
            problems.append(count)
    return problems


def _checksum_problems(info: DatasetInfo, root: Path) -> list[Problem]:
    from torchvision.datasets import SVHN

    from vrbench.datasets.cifar import _FILES, _md5
    from vrbench.datasets.torchvision_sets import CIFAR100_FILES

    expected: list[tuple[Path, str, str]] = []  # (path, algorithm, digest)
    if info.name in ("cifar10", "cifar100"):
        files = _FILES if info.name == "cifar10" else CIFAR100_FILES
        expected = [(root / info.folder / name, "md5", md5) for name, md5 in files]
    elif info.name == "svhn":
        expected = [(root / "svhn" / SVHN.split_list[s][1], "md5", SVHN.split_list[s][2]) for s in ("train", "test")]
    elif info.name == "animal_shapes":
        from vrbench.datasets.animal_shapes import FILE_SHA256
        from vrbench.datasets.checksums import sha256_file

        expected = [(root / info.folder / name, "sha256", digest) for name, digest in FILE_SHA256.items()]
        return [Problem(info.name, str(p), f"sha256 {sha256_file(p)} differs from the wheel's RECORD ({d})",
                        f"`vrbench data prepare {info.name} --force`") for p, _, d in expected if sha256_file(p) != d]
    return [Problem(info.name, str(p), f"md5 {_md5(p)} differs from torchvision's {d}",
                    f"re-download ({_prepare_fix(info.name)}); for files you built yourself set "
                    "VRBENCH_VERIFY_CHECKSUMS=0") for p, _, d in expected if _md5(p) != d]


def verify_dataset(name: str, data_root: Path, level: str = "headers") -> list[Problem]:
    """Every problem of one dataset under ``data_root`` (empty list: ready to use)."""
    if level not in LEVELS:
        raise ValueError(f"level must be one of {LEVELS}, got {level!r}")
    info = DATASETS.get(name)
    if not DATASETS.source(name).builtin:
        return []  # a plugin's dataset: its own loader checks its files (raising MissingResourceError)
    root = Path(data_root).absolute()
    problems = _layout_problems(info, root)
    if problems:
        return problems
    if name == "digits":
        state, detail = dataset_state(info, root)
        return [] if state == "ready" else [Problem(name, "scikit-learn", detail, "pip install scikit-learn")]
    if name in ("cifar10", "cifar100", "svhn", "abide", "animal_shapes"):
        return _array_checks(info, root)
    return _file_list_checks(info, root, level)


def verify_for_suite(dataset_names, data_root: Path, level: str = "quick") -> list[Problem]:
    """All problems of the datasets a suite needs (each checked once): the pre-flight check of `vrbench run`."""
    problems: list[Problem] = []
    for name in dict.fromkeys(dataset_names):
        problems += verify_dataset(name, data_root, level)
    return problems


def format_problems(problems: list[Problem]) -> str:
    """The report `vrbench data verify` prints and `vrbench run` refuses with."""
    errors = sum(p.severity == "error" for p in problems)
    head = f"{errors} error(s), {len(problems) - errors} warning(s):"
    return "\n".join([head, *(str(p) for p in problems)])
