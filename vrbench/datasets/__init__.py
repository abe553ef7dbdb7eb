"""Dataset catalogue: metadata only (no torch import), each entry naming its loader.

The entries themselves live in ``catalog.py``; ``docs/datasets.md`` is the user-facing table of the same facts.
"""

from __future__ import annotations

from vrbench.datasets import catalog as _catalog  # noqa: F401,I001  (registers every entry)
from vrbench.datasets.info import DATASETS, PREPARE_KINDS, DatasetInfo

__all__ = ["DATASETS", "PREPARE_KINDS", "DatasetInfo"]
