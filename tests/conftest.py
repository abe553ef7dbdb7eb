"""Shared fixtures: real small data written by the tests, and a way to run the real CLI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def run_cli(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None,
            timeout: float = 600) -> subprocess.CompletedProcess:
    """Run `vrbench ...` as a user would, in a subprocess."""
    return subprocess.run([sys.executable, "-m", "vrbench.cli", *args], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=timeout)


def run_killed_after_first_checkpoint(suite: Path, results: Path, run_id: str, cwd: Path) -> str:
    """Start `vrbench run SUITE`, SIGKILL the job's worker once its first checkpoint exists; the launcher's output."""
    directory = results / "runs" / run_id
    launcher = subprocess.Popen([sys.executable, "-m", "vrbench.cli", "run", str(suite), "--results", str(results),
                                 "--threads", "1"], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True)
    deadline = time.monotonic() + 300
    while not (directory / "checkpoint.pt").exists():
        assert time.monotonic() < deadline and launcher.poll() is None, "no checkpoint appeared"
        time.sleep(0.02)
    os.kill(json.loads((directory / "claim.json").read_text())["worker_pid"], signal.SIGKILL)
    output, _ = launcher.communicate(timeout=120)
    assert launcher.returncode == 1, output
    assert not (directory / "result.json").exists()
    return output


@pytest.fixture
def cifar_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A small CIFAR-10 in the real on-disk format; checksums cannot match, so verification is off."""
    from vrbench.testing import write_cifar10

    root = tmp_path / "data"
    write_cifar10(root, n_train=60, n_test=40)
    monkeypatch.setenv("VRBENCH_VERIFY_CHECKSUMS", "0")
    return root
