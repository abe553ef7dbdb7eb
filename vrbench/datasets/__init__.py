"""Dataset catalogue: metadata only (no torch import), each entry naming its loader.

The entries themselves live in ``catalog.py``; ``docs/datasets.md`` is the user-facing table of the same facts.
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
    # strict upper triangle (ILM-VP's ABIDE.get_mask(), spec §1.1); None: nowhere (natural images).
    vr_image_mask: str | None = None

    # Loaders that decode files of any aspect ratio accept resize="clip" (shorter side + centre crop, CLIP's
    # preprocessing); the packaged and torchvision sets hold square images, for which both modes agree.
    crops: bool = False

    def load(self, split: str, image_size: int, data_root, download: bool = False, resize: str = "squash"):
        loader = load_object(self.loader)
        if resize != "squash" and self.crops:
            return loader(split, image_size, data_root, download, resize=resize)
        return loader(split, image_size, data_root, download)

    def size(self, split: str) -> int | None:
        """The documented number of images in ``split`` (None when undocumented)."""
        return {"train": self.train_size, "val": self.val_size, "test": self.test_size}.get(split)

    def location(self, data_root: Path) -> Path | None:
        """Where the dataset lives under ``data_root`` (None when it ships in a package)."""
        return None if self.folder is None else Path(data_root) / self.folder


DATASETS: Registry[DatasetInfo] = Registry("dataset", group="vrbench.datasets", entry_type=DatasetInfo)

from vrbench.datasets import catalog as _catalog  # noqa: E402,F401  (registers every entry)
