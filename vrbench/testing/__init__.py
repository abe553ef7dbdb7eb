"""Utilities for tests and CI: small datasets written in the real on-disk formats, read by the real loaders."""

from vrbench.testing.cifar_fixture import write_cifar10
from vrbench.testing.data_fixtures import (
    write_abide,
    write_animal_shapes,
    write_animal_wheel,
    write_cifar100,
    write_coop_dataset,
    write_fgvc_aircraft,
    write_gtsrb,
    write_imagenet_family,
    write_imagenet_scale,
    write_svhn,
)

__all__ = [
    "write_cifar10", "write_cifar100", "write_svhn", "write_gtsrb", "write_coop_dataset", "write_fgvc_aircraft",
    "write_imagenet_family", "write_imagenet_scale", "write_abide", "write_animal_shapes", "write_animal_wheel",
]
