"""The stable plugin API: everything a third-party method, backbone or dataset may use (docs/plugins.md).

Other vrbench modules are internal and may change between releases; these names change only with
``API_VERSION``. Importing this module does not import torch: the metadata classes and `register` are plain
Python, and the implementation base classes below are loaded on first use (``from vrbench.api import
LabelMapping`` inside the plugin's implementation module, which vrbench imports only in a job's worker).

Metadata (what `vrbench ls`, suite validation and the job hash read; give each entry a ``version`` and bump
it whenever its behaviour changes):

- `InputInfo`: an input transformation; ``implementation`` = "module:function"(config, backbone_info) returning
  an `InputTransform`.
- `MappingInfo`: an output label mapping; ``implementation`` = "module:Class"(num_source, num_classes, params)
  of a `LabelMapping`.
- `ClipMethodInfo`: a CLIP prompt-learning method; ``implementation`` = "module:Class" of a `ClipMethod`.
- `BackboneInfo`: a frozen source model; ``loader`` = "module:function"(name) returning an ``nn.Module`` that
  gives raw logits; its preprocessing is the info's ``input_size``, ``mean`` and ``std``.
- `DatasetInfo`: a dataset; ``loader`` = "module:function"(split, image_size, data_root, download) returning
  an `ImageSet`.

Publish them as entry points, one group per kind (``vrbench.inputs``, ``vrbench.mappings``,
``vrbench.clip_methods``, ``vrbench.backbones``, ``vrbench.datasets``; the entry-point name is the entry's
name), or call `register` from a local module a suite lists under ``plugins:``.
"""

from __future__ import annotations

import sys
from typing import Any

from vrbench.backbones import BACKBONES, BackboneInfo
from vrbench.datasets import DATASETS, DatasetInfo
from vrbench.errors import ConfigError
from vrbench.methods import INPUTS, MAPPINGS, InputInfo, MappingInfo
from vrbench.methods.clip_catalog import CLIP_METHODS, ClipMethodInfo
from vrbench.registry import Registry

API_VERSION = 1

_REGISTRIES: dict[type, Registry] = {
    InputInfo: INPUTS, MappingInfo: MAPPINGS, ClipMethodInfo: CLIP_METHODS, BackboneInfo: BACKBONES,
    DatasetInfo: DATASETS,
}

# Implementation classes and helpers: public name -> "module:attribute", imported on first access (torch).
_LAZY: dict[str, str] = {
    "InputTransform": "vrbench.methods.base:InputTransform",  # nn.Module: load_size, preprocess, forward
    "AugmentedNormalizedInput": "vrbench.methods.base:AugmentedNormalizedInput",
    "ParamGroup": "vrbench.methods.base:ParamGroup",  # one optimizer with its own schedule
    "normalize": "vrbench.methods.base:normalize",
    "resize": "vrbench.methods.base:resize",
    "random_crop_flip": "vrbench.methods.base:random_crop_flip",
    "LabelMapping": "vrbench.methods.label_mappings:LabelMapping",
    "IterativeLabelMapping": "vrbench.methods.label_mappings:_Iterative",  # re-estimated every mapping_interval
    "ClipMethod": "vrbench.clip.methods:ClipMethod",
    "ImageSet": "vrbench.datasets.images:ImageSet",
    "mapping": "vrbench.mapping",  # the label-mapping algorithms as pure tensor functions (ilm, blm, ...)
}

__all__ = ["API_VERSION", "BackboneInfo", "ClipMethodInfo", "DatasetInfo", "InputInfo", "MappingInfo", "register",
           *_LAZY]


def register(info: Any) -> Any:
    """Add an entry from a local plugin module (a suite's ``plugins:``); installed packages use entry points.

    The entry's source is that module and a digest of its code, so editing the module changes the hash of
    every job that uses the entry.
    """
    from vrbench.plugins import current_local_source

    registry = _REGISTRIES.get(type(info))
    if registry is None:
        kinds = ", ".join(cls.__name__ for cls in _REGISTRIES)
        raise ConfigError(f"vrbench.api.register takes one of {kinds}, not {type(info).__name__}")
    caller = sys._getframe(1).f_globals.get("__name__", "__main__")
    return registry.register(info.name, info, current_local_source(caller))


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'vrbench.api' has no attribute '{name}'")
    import importlib

    module, _, attribute = _LAZY[name].partition(":")
    value = importlib.import_module(module)
    return getattr(value, attribute) if attribute else value
