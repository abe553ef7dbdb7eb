"""Live progress for the launcher's display, written atomically and throttled."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from vrbench.store.rundir import PROGRESS, atomic_write_json


class ProgressFile:
    """progress.json doubles as the job's heartbeat for stale-claim detection."""

    def __init__(self, directory: Path, min_interval: float = 0.5) -> None:
        self.path = directory / PROGRESS
        self.min_interval = min_interval
        self.state: dict[str, Any] = {}
        self._last = 0.0

    def update(self, force: bool = False, **fields: Any) -> None:
        self.state.update(fields)
        now = time.monotonic()
        if force or now - self._last >= self.min_interval:
            self._last = now
            atomic_write_json(self.path, {**self.state, "updated": time.time()})
