"""Shared fixtures: real small data written by the tests, and a way to run the real CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def run_cli(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None,
            timeout: float = 600) -> subprocess.CompletedProcess:
    """Run `vrbench ...` as a user would, in a subprocess."""
    return subprocess.run([sys.executable, "-m", "vrbench.cli", *args], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=timeout)


@pytest.fixture
def cifar_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A small CIFAR-10 in the real on-disk format; checksums cannot match, so verification is off."""
    from vrbench.testing import write_cifar10

    root = tmp_path / "data"
    write_cifar10(root, n_train=60, n_test=40)
    monkeypatch.setenv("VRBENCH_VERIFY_CHECKSUMS", "0")
    return root
