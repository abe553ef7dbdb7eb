"""Dataset catalogue: metadata only (no torch import), each entry naming its loader."""

from __future__ import annotations

from dataclasses import dataclass

from vrbench.registry import Registry, load_object


@dataclass(frozen=True)
class DatasetInfo:
    """Facts a suite is validated against before anything is loaded."""

    name: str
    loader: str  # "module:function"(split, image_size, data_root, download) -> ImageSet
    num_classes: int
    train_size: int
    test_size: int
    vr_image_size: int  # the size the VR protocol feeds to the input transformation
    source: str  # where the data comes from, for `vrbench ls`
    offline: bool  # True when the data ships inside an installed package

    def load(self, split: str, image_size: int, data_root, download: bool = False):  # -> ImageSet
        return load_object(self.loader)(split, image_size, data_root, download)


DATASETS: Registry[DatasetInfo] = Registry("dataset")

DATASETS.register(
    "digits",
    DatasetInfo("digits", "vrbench.datasets.digits:load_digits", 10, 1437, 360, 32,
                "scikit-learn's bundled handwritten digits (8x8, upsampled)", offline=True),
)
DATASETS.register(
    "cifar10",
    DatasetInfo("cifar10", "vrbench.datasets.cifar:load_cifar10", 10, 50000, 10000, 32,
                "torchvision CIFAR10 (needs the data under the data root)", offline=False),
)
