"""Utilities for tests and CI: small datasets written in the real on-disk formats, read by the real loaders."""

from vrbench.testing.cifar_fixture import write_cifar10

__all__ = ["write_cifar10"]
