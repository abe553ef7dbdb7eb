"""What env.json records: enough to explain why two runs of one job differ."""

from __future__ import annotations

import platform
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import torch

import vrbench
from vrbench.engine.device import DevicePlan


def git_sha() -> str | None:
    """The vrbench checkout's commit, when vrbench runs from a git checkout."""
    root = Path(vrbench.__file__).resolve().parent.parent
    try:
        out = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def describe_environment(plan: DevicePlan) -> dict[str, Any]:
    if plan.device.type == "cuda":
        device_name = torch.cuda.get_device_name(plan.device)
    else:
        device_name = platform.processor() or platform.machine()
    return {
        "vrbench_version": vrbench.__version__,
        "torch_version": torch.__version__,
        "python_version": platform.python_version(),
        "git_sha": git_sha(),
        "device": plan.device.type,
        "device_name": device_name,
        "precision": plan.precision,
        "threads": plan.threads,
        "hostname": socket.gethostname(),
        "platform": platform.platform(),
        "argv": sys.argv,
    }
