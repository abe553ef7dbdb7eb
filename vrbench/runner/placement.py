"""Where each slot of the local pool runs: which GPU, how many threads, which CPU cores.

The launcher never imports torch, so it finds GPUs the way CUDA will: CUDA_VISIBLE_DEVICES when it is set,
else the driver's list (`nvidia-smi -L`). Slot i gets GPU i (round robin when there are more slots than GPUs)
through CUDA_VISIBLE_DEVICES, so a worker sees exactly one device as cuda:0, and an equal share of the CPU
cores: its thread count, and, when the shares do not overlap, its own cores (VRBENCH_CPUS, applied by the
worker before torch starts its thread pool) so two jobs never fight over one core.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vrbench.errors import ConfigError

CPUS_ENV = "VRBENCH_CPUS"
_GPU_LINE = re.compile(r"^GPU (\d+):", re.MULTILINE)


def visible_gpus(environ: Mapping[str, str] | None = None) -> list[str]:
    """The GPU ids a launcher may hand out, as CUDA_VISIBLE_DEVICES entries (indices or UUIDs)."""
    environ = os.environ if environ is None else environ
    if "CUDA_VISIBLE_DEVICES" in environ:
        return parse_gpu_list(environ["CUDA_VISIBLE_DEVICES"], strict=False)
    if shutil.which("nvidia-smi"):
        try:
            out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20)
        except (OSError, subprocess.SubprocessError):
            return []
        if out.returncode == 0:
            return _GPU_LINE.findall(out.stdout)
    try:
        return [str(i) for i in range(len(list(Path("/proc/driver/nvidia/gpus").iterdir())))]
    except OSError:
        return []


def parse_gpu_list(text: str, strict: bool = True) -> list[str]:
    """'0,1' -> ['0', '1']. CUDA stops reading CUDA_VISIBLE_DEVICES at the first invalid entry (e.g. -1)."""
    gpus: list[str] = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        if not re.fullmatch(r"\d+|(GPU|MIG)-[0-9A-Za-z/-]+", item):
            if strict:
                raise ConfigError(f"--gpus: '{item}' is not a GPU index or UUID (expected e.g. --gpus 0,1)")
            break
        if item in gpus:
            if strict:
                raise ConfigError(f"--gpus lists GPU {item} twice")
            continue
        gpus.append(item)
    return gpus


def usable_cores() -> list[int]:
    """The cores this process may run on (a cgroup or taskset may allow fewer than the machine has)."""
    try:
        return sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return list(range(os.cpu_count() or 1))


@dataclass(frozen=True)
class Slot:
    index: int
    gpu: str | None  # the CUDA_VISIBLE_DEVICES value of this slot's workers; None: CPU only
    threads: int
    cpus: tuple[int, ...] | None  # cores this slot's workers are pinned to; None: not pinned

    def environment(self) -> dict[str, str]:
        env = {"OMP_NUM_THREADS": str(self.threads)}
        if self.gpu is not None:
            env["CUDA_VISIBLE_DEVICES"] = self.gpu
        if self.cpus is not None:
            env[CPUS_ENV] = ",".join(map(str, self.cpus))
        return env

    def describe(self) -> dict[str, Any]:
        return {"slot": self.index, "cuda_visible_devices": self.gpu, "threads": self.threads,
                "cpus": list(self.cpus) if self.cpus is not None else None}

    def label(self) -> str:
        where = f"GPU {self.gpu}" if self.gpu is not None else "CPU"
        cores = f", cores {','.join(map(str, self.cpus))}" if self.cpus is not None else ""
        return f"slot {self.index}: {where}, {self.threads} thread(s){cores}"


def plan_slots(slots: int | None, gpus: list[str], threads: int | None, cores: list[int]) -> list[Slot]:
    """Default: one slot per GPU, else one CPU slot with every core."""
    count = slots if slots is not None else max(1, len(gpus))
    if count < 1:
        raise ConfigError("--slots must be at least 1")
    per_slot = threads if threads is not None else max(1, len(cores) // count)
    pin = count > 1 and count * per_slot <= len(cores)  # disjoint shares exist: give each slot its own cores
    plan = []
    for index in range(count):
        gpu = gpus[index % len(gpus)] if gpus else None
        cpus = tuple(cores[index * per_slot:(index + 1) * per_slot]) if pin else None
        plan.append(Slot(index, gpu, per_slot, cpus))
    return plan


def apply_cpu_affinity(environ: Mapping[str, str] | None = None) -> list[int] | None:
    """In a worker: pin this process to the cores its launcher chose (before torch creates its threads)."""
    environ = os.environ if environ is None else environ
    value = environ.get(CPUS_ENV)
    if not value:
        return None
    try:
        cpus = {int(part) for part in value.split(",") if part.strip()}
        os.sched_setaffinity(0, cpus)
    except (ValueError, OSError, AttributeError) as exc:
        print(f"warning: could not pin to cores {value} ({exc}); running unpinned", flush=True)
        return None
    return sorted(cpus)


_CUDA_PROBE = "import torch; print(torch.cuda.device_count() if torch.cuda.is_available() else 0)"


def check_cuda(slots: list[Slot], environ: Mapping[str, str] | None = None) -> None:
    """`--device cuda`: refuse before any job starts unless every slot's GPU is one torch can use.

    Without this each worker would fail alike with the same message (a paper suite: thousands). The launcher
    does not import torch, so a short-lived interpreter asks torch, with the slots' CUDA_VISIBLE_DEVICES; that
    costs one torch import, and only for runs that asked for CUDA.
    """
    environ = os.environ if environ is None else environ
    gpus = sorted({slot.gpu for slot in slots if slot.gpu is not None})
    if not gpus:
        where = (f"CUDA_VISIBLE_DEVICES={environ['CUDA_VISIBLE_DEVICES']!r}" if "CUDA_VISIBLE_DEVICES" in environ
                 else "CUDA_VISIBLE_DEVICES is unset and the NVIDIA driver lists no GPU")
        raise ConfigError(f"--device cuda, but no GPU is visible ({where}); nothing was started. Use --device cpu "
                          "(or auto) on this machine, or --gpus to name the GPUs")
    try:
        probe = subprocess.run([sys.executable, "-c", _CUDA_PROBE], capture_output=True, text=True, timeout=300,
                               env={**environ, "CUDA_VISIBLE_DEVICES": ",".join(gpus)})
    except (OSError, subprocess.SubprocessError) as exc:
        raise ConfigError(f"--device cuda: could not ask torch which GPUs it can use ({exc}); nothing was "
                          "started") from None
    found = probe.stdout.strip().splitlines()[-1:] if probe.returncode == 0 else []
    count = int(found[0]) if found and found[0].isdigit() else None
    if count is None:
        last = (probe.stderr.strip().splitlines() or ["no output"])[-1]
        raise ConfigError(f"--device cuda: could not ask torch which GPUs it can use ({last}); nothing was started")
    if count < len(gpus):
        raise ConfigError(f"--device cuda, but torch can use only {count} of the {len(gpus)} GPU(s) given to the "
                          f"slots (CUDA_VISIBLE_DEVICES={','.join(gpus)}: no driver, a CPU build of torch, or no "
                          "such GPU); nothing was started. Use --device cpu (or auto), or --gpus to name usable GPUs")
