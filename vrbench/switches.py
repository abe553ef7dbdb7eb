"""On-by-default switches read from the environment (VRBENCH_CACHE, VRBENCH_FOLD_BN, ...): one parsing rule for all."""

from __future__ import annotations

import os

OFF = frozenset({"0", "false", "no", "off"})


def switch_on(variable: str) -> bool:
    """True unless the environment variable says 0, false, no or off (any case, surrounding spaces ignored)."""
    return os.environ.get(variable, "1").strip().lower() not in OFF
