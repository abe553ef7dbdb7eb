"""CLIP prompt learning: open_clip backbones, templates, the deep-prompt wrapper, methods and the linear probe.

Names are resolved lazily, so importing the package (e.g. for suite validation) does not import torch or
open_clip; `from vrbench.clip import load_clip` still works.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS: dict[str, str] = {
    "CLIP_MODELS": "models", "ClipDims": "models", "ClipModelSpec": "models", "clip_dims": "models",
    "get_clip_tokenizer": "models", "load_clip": "models",
    "PromptedCLIP": "encoders",
    "DEFAULT_PARAMS": "methods", "METHODS": "methods", "RECIPES": "methods", "ClipMethod": "methods",
    "build_method": "methods",
    "fit_linear_probe": "linear_probe", "fewshot_val_shots": "linear_probe",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'vrbench.clip' has no attribute '{name}'")
    return getattr(importlib.import_module(f"vrbench.clip.{_EXPORTS[name]}"), name)
