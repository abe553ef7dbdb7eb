"""The dataset metadata record and its registry (no torch import); ``catalog.py`` fills the registry.

Kept apart from the package ``__init__`` so that the catalogue imports this module and not the package that
imports the catalogue: the modules of ``vrbench.datasets`` import each other in one direction only
(``tests/test_data_layers.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from vrbench.registry import Registry, load_object

# How `vrbench data prepare` obtains a dataset.
PREPARE_KINDS = ("package", "pip-wheel", "torchvision", "download", "manual")


@dataclass(frozen=True)
class DatasetInfo:
    """Facts a suite is validated against before anything is loaded, and what `vrbench data` needs to know."""

    name: str
    loader: str  # "module:function"(split, image_size, data_root, download) -> ImageSet
    num_classes: int
    train_size: int
    test_size: int
    vr_image_size: int  # the size the VR protocol feeds to the input transformation
    source: str  # where the data comes from, for `vrbench ls`
    offline: bool  # True when the data ships inside an installed package
    val_size: int | None = None  # documented size of the "val" split, where the dataset has one
    splits: tuple[str, ...] = ("train", "test")
    protocols: tuple[str, ...] = ("vr",)  # "vr" (the VR papers' 13) and/or "prompt" (CoOp's 11 + domain shift)
    folder: str | None = None  # directory under the data root; None when the data ships in a package
    classes: tuple[str, ...] | None = None  # cleaned names in label order; None: read from the split file on disk
    licence: str = ""
    homepage: str = ""
    prepare: str = "manual"  # one of PREPARE_KINDS
    split_source: str = ""  # where the train/val/test split comes from
    sizes_note: str = ""  # provenance of the documented sizes, when they are not exact facts of the loader
    # Where padding VR may also draw inside the image box: "lower_triangle" for ABIDE, whose data fills only the
    # strict upper triangle (ILM-VP's ABIDE.get_mask(), docs/methods.md VR §1.1); None: nowhere (natural images).
    vr_image_mask: str | None = None

    # Loaders that accept resize="clip": CLIP's own preprocess (shorter side to S with BICUBIC, centre crop),
    # which CLIP backbones ask for. The others always resize bilinearly to a square (ABIDE: as ILM-VP does on CLIP
    # too; the two modes differ even for square images, by their kernel).
    clip_resize: bool = False
    # Revisions of what the loader delivers under a resize mode, for modes whose output changed after results
    # existed: a job hash records its mode's revision (versions.data), so exactly the jobs that load this way
    # re-run. CIFAR10/100, SVHN and GTSRB under "clip" went from a bilinear square resize to CLIP's own (2).
    revisions: tuple[tuple[str, int], ...] = ()
    # File-backed datasets: "module:function"(name, split, data_root) -> FileList, the labelled file list of one
    # split without decoding anything, so a job can choose images by label and decode only those.
    lister: str | None = None

    def load(self, split: str, image_size: int, data_root, download: bool = False, resize: str = "squash"):
        loader = load_object(self.loader)
        if resize != "squash" and self.clip_resize:
            return loader(split, image_size, data_root, download, resize=resize)
        return loader(split, image_size, data_root, download)

    def file_list(self, split: str, data_root):
        """The split's FileList (paths and labels, nothing decoded); only for datasets with a ``lister``."""
        if self.lister is None:
            raise ValueError(f"dataset {self.name!r} is not file-backed")
        return load_object(self.lister)(self.name, split, data_root)

    def revision(self, resize: str) -> int | None:
        """The revision of this dataset's images under ``resize`` (None: never revised, not in the hash)."""
        return dict(self.revisions).get(resize)

    def size(self, split: str) -> int | None:
        """The documented number of images in ``split`` (None when undocumented)."""
        return {"train": self.train_size, "val": self.val_size, "test": self.test_size}.get(split)

    def location(self, data_root: Path) -> Path | None:
        """Where the dataset lives under ``data_root`` (None when it ships in a package)."""
        return None if self.folder is None else Path(data_root) / self.folder


DATASETS: Registry[DatasetInfo] = Registry("dataset", paths=("loader", "lister"), group="vrbench.datasets",
                                           entry_type=DatasetInfo)
