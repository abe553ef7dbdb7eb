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


def cpu_model() -> str:
    """The CPU's marketing name where Linux tells it (/proc/cpuinfo), else what Python's platform module knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def describe_environment(plan: DevicePlan) -> dict[str, Any]:
    if plan.device.type == "cuda":
        device_name = torch.cuda.get_device_name(plan.device)
    else:
        device_name = cpu_model()
    return {
        "vrbench_version": vrbench.__version__,
        "torch_version": torch.__version__,
        "python_version": platform.python_version(),
        "git_sha": git_sha(),
        "device": plan.device.type,
        "device_name": device_name,
        "precision": plan.precision,
        "threads": plan.threads,
        # the vector instructions torch's CPU kernels dispatch to: two CPUs with different ones round differently,
        # so a run can end with other numbers on another machine (README, under the smoke suite's table)
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "hostname": socket.gethostname(),
        "platform": platform.platform(),
        "argv": sys.argv,
    }
