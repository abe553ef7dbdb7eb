"""Device and precision choice, recorded in env.json.

A job uses the GPU when one is visible (CUDA_VISIBLE_DEVICES is honoured by CUDA itself) with the papers'
fp16 autocast and gradient scaling, and float32 on a CPU (bfloat16 is extremely slow on CPUs without
bf16 units, and fp16 autocast on CPU is not what the papers ran).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch

from vrbench.errors import ConfigError

DEVICE_PATTERN = re.compile(r"auto|cpu|cuda(:\d+)?")


# Autocast dtype per precision. select_device picks "fp16-amp" (GPU) or "fp32"; "bf16-amp" is CPU autocast, which
# runs the autocast code paths without a GPU (tests build such a plan; no command line option chooses it).
AUTOCAST_DTYPES = {"fp16-amp": torch.float16, "bf16-amp": torch.bfloat16}


@dataclass(frozen=True)
class DevicePlan:
    device: torch.device
    precision: str  # "fp16-amp", "fp32" (or "bf16-amp", see AUTOCAST_DTYPES)
    threads: int

    @property
    def amp(self) -> bool:
        return self.precision in AUTOCAST_DTYPES

    @property
    def autocast_dtype(self) -> torch.dtype | None:
        return AUTOCAST_DTYPES.get(self.precision)

    @property
    def scales_gradients(self) -> bool:
        """fp16 gradients underflow without loss scaling; bfloat16 has float32's range and needs none."""
        return self.precision == "fp16-amp"


def select_device(requested: str = "auto", threads: int | None = None,
                  cuda_available: bool | None = None) -> DevicePlan:
    """Resolve 'auto' | 'cpu' | 'cuda' | 'cuda:N' to a device and its precision."""
    available = torch.cuda.is_available() if cuda_available is None else cuda_available
    if not DEVICE_PATTERN.fullmatch(requested):
        raise ConfigError(f"unknown device '{requested}'; use one of: auto, cpu, cuda, cuda:N")
    kind = requested.split(":", 1)[0]
    if kind == "cuda" and not available:
        raise ConfigError(f"device '{requested}' was requested but no CUDA GPU is visible "
                          "(check CUDA_VISIBLE_DEVICES and the driver), or use --device cpu")
    use_cuda = kind == "cuda" or (kind == "auto" and available)
    if threads is not None:
        if threads < 1:
            raise ConfigError("threads must be at least 1")
        torch.set_num_threads(threads)
    if use_cuda:
        device = torch.device(requested if ":" in requested else "cuda")
        return DevicePlan(device, "fp16-amp", torch.get_num_threads())
    return DevicePlan(torch.device("cpu"), "fp32", torch.get_num_threads())
