"""Refuse, before any job starts, a local run whose jobs would not fit in this machine's memory.

vrbench/footprint.py estimates each job's peak host memory and, on CUDA, GPU memory from metadata. A job that needs
more than the machine has (``canvas: 100000`` asks for 10.5 TiB) would be killed by the kernel's OOM killer or
fail in its first CUDA allocation after the suite has started; refusing up front costs one pass over the pending
jobs' estimates. The limits: physical memory, or the container's cgroup limit where that is lower; the smallest
visible GPU's memory (``nvidia-smi``; no check where it cannot be read). ``--ignore-memory-check`` overrides, for
estimates that are wrong for a machine (they are estimates, not guarantees). torch-free.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from vrbench.datasets.space import human_bytes
from vrbench.errors import ConfigError
from vrbench.footprint import job_footprint
from vrbench.store.rundir import RESULT, run_dir

CGROUP_LIMITS = (Path("/sys/fs/cgroup/memory.max"), Path("/sys/fs/cgroup/memory/memory.limit_in_bytes"))


def host_memory() -> int | None:
    """Bytes of memory this process may use: physical memory, or a lower cgroup limit; None if unknown."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None
    for path in CGROUP_LIMITS:
        try:
            text = path.read_text().strip()
        except OSError:
            continue
        if text.isdigit():
            total = min(total, int(text))
    return total


def gpu_memory() -> int | None:
    """Bytes of memory of the smallest GPU the driver lists; None without nvidia-smi or a GPU."""
    if not shutil.which("nvidia-smi"):
        return None
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=memory.total", "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return None
    sizes = [int(line.strip()) * 2**20 for line in out.stdout.splitlines() if line.strip().isdigit()]
    return min(sizes) if out.returncode == 0 and sizes else None


def check_memory(jobs: list, results: Path, device: str, host: int | None = None, gpu: int | None = None) -> None:
    """Raise a one-line ConfigError naming the first pending job whose estimate exceeds the machine (and how many
    more do); ``host``/``gpu`` default to this machine's (tests pass their own)."""
    host = host_memory() if host is None else host
    if gpu is None and device != "cpu":
        gpu = gpu_memory()
    if device == "cpu":
        gpu = None
    too_big: list[tuple[object, str]] = []
    for job in jobs:
        if (run_dir(results, job.run_id) / RESULT).exists():
            continue
        needs = job_footprint(job.config)
        if host is not None and needs.host > host:
            too_big.append((job, f"{human_bytes(needs.host)} of host memory, more than this machine's "
                                 f"{human_bytes(host)}"))
        elif gpu is not None and needs.gpu > gpu:
            too_big.append((job, f"{human_bytes(needs.gpu)} of GPU memory, more than this machine's "
                                 f"{human_bytes(gpu)}"))
    if too_big:
        job, need = too_big[0]
        more = f" (and {len(too_big) - 1} more job(s) do)" if len(too_big) > 1 else ""
        raise ConfigError(f"job {job.run_id} ({job.label()}) needs an estimated {need}{more}; nothing was "
                          "started. Lower its canvas, resolution, batch_size or subset, or pass "
                          "--ignore-memory-check to start it anyway")
