"""Shared fixtures: real small data written by the tests, and a way to run the real CLI."""

from __future__ import annotations

import json
import os
import shutil
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


CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"


@pytest.fixture
def browser(tmp_path: Path):
    """Debian's headless Chromium through selenium with explicit paths (selenium-manager never downloads a browser),
    with its network and console logs kept for the tests to read."""
    if not (shutil.which(CHROMIUM) and shutil.which(CHROMEDRIVER)):
        pytest.skip(f"needs Debian's chromium and chromium-driver ({CHROMIUM}, {CHROMEDRIVER}): "
                    "apt-get install -y chromium chromium-driver (.ci/run does)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
                 f"--user-data-dir={tmp_path / 'chromium-profile'}", "--window-size=1400,1000"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER,
                                                               log_output=str(tmp_path / "chromedriver.log")))
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="module")
def tiny():
    """The tiny random CLIP (clip_tiny) wrapped for prompt learning, shared by a module's tests."""
    from vrbench.clip.encoders import PromptedCLIP
    from vrbench.clip.models import load_clip

    return PromptedCLIP(load_clip("clip_tiny"))


@pytest.fixture(scope="module")
def tokenizer():
    """clip_tiny's tokenizer (the real CLIP tokenizer)."""
    from vrbench.clip.models import get_clip_tokenizer

    return get_clip_tokenizer("clip_tiny")


@pytest.fixture
def dtd_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A small DTD in CoOp's layout (two train, one val and one test image per class) and a private decoded-image
    cache."""
    from vrbench.testing import write_coop_dataset

    monkeypatch.setenv("VRBENCH_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("VRBENCH_CACHE", raising=False)
    write_coop_dataset("dtd", tmp_path / "data", per_class=(2, 1, 1))
    return tmp_path / "data"
