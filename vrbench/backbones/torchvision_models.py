"""ResNet-18/50 with the torchvision ImageNet weights the VR papers use, loaded without surprises offline.

torchvision's own `resnet18(weights=...)` downloads on a cache miss (failing deep inside urllib when offline) and
unpickles with `weights_only=False`. Here the weight enum still decides the URL, file name and metadata, but the
file is looked up in torch hub's checkpoint directory first, downloaded only with a short network timeout, and
loaded with `weights_only=True`. A file that is already there is used as is: like torchvision, the hash in the
file name is only checked when downloading.
"""

from __future__ import annotations

import os
import socket
from urllib.parse import urlparse

import torch
import torchvision
from torch import nn
from torchvision.models import ResNet18_Weights, ResNet50_Weights, WeightsEnum

from vrbench.errors import ConfigError, MissingResourceError

# name -> (architecture builder, weights) as in the ILM-VP / BLM / SMM code: ResNet-18 V1, ResNet-50 V2.
_MODELS: dict[str, tuple] = {
    "resnet18": (torchvision.models.resnet18, ResNet18_Weights.IMAGENET1K_V1),
    "resnet50": (torchvision.models.resnet50, ResNet50_Weights.IMAGENET1K_V2),
}

_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)
# Same values as the weights' own transforms() (checked in tests); kept literal so reading them needs no enum call.
TORCHVISION_PREPROCESS: dict[str, dict] = {
    "resnet18": {"input_size": 224, "resize_size": 256, "mean": _IMAGENET_MEAN, "std": _IMAGENET_STD},
    "resnet50": {"input_size": 224, "resize_size": 232, "mean": _IMAGENET_MEAN, "std": _IMAGENET_STD},
}

DOWNLOAD_TIMEOUT_S = 15.0  # per socket operation; an unreachable host fails fast instead of hanging a worker


def weights_file(weights: WeightsEnum) -> str:
    """Where torch hub keeps this checkpoint: $TORCH_HOME/hub/checkpoints/<basename of the URL>."""
    return os.path.join(torch.hub.get_dir(), "checkpoints", os.path.basename(urlparse(weights.url).path))


def _download(url: str, dst: str) -> None:
    """torch hub's download (hash-checked, atomic rename) with a socket timeout so it cannot hang."""
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    match = torch.hub.HASH_REGEX.search(os.path.basename(dst))
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)
    try:
        torch.hub.download_url_to_file(url, dst, hash_prefix=match.group(1) if match else None, progress=False)
    finally:
        socket.setdefaulttimeout(previous)


def _ensure_weights(name: str, weights: WeightsEnum) -> str:
    path = weights_file(weights)
    if os.path.isfile(path):
        return path
    try:
        _download(weights.url, path)
    except Exception as exc:  # any network, HTTP, disk or hash error means the same thing for the user
        raise MissingResourceError(
            f"The ImageNet weights of backbone {name!r} ({weights}) are not on disk and could not be downloaded "
            f"({type(exc).__name__}: {exc}). Fetch {weights.url} and put it at {path} "
            f"(that directory is $TORCH_HOME/hub/checkpoints; set TORCH_HOME to use another one)."
        ) from exc
    return path


def load_torchvision(name: str) -> nn.Module:
    """Build torchvision `name` with its paper weights (ResNet-18 IMAGENET1K_V1, ResNet-50 IMAGENET1K_V2), in eval.

    Outputs 1000 raw ImageNet logits for inputs normalized with TORCHVISION_PREPROCESS[name] (ImageNet mean/std).
    """
    if name not in _MODELS:
        raise ConfigError(f"Unknown torchvision backbone {name!r}; known: {', '.join(sorted(_MODELS))}.")
    build, weights = _MODELS[name]
    path = _ensure_weights(name, weights)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise MissingResourceError(
            f"The weights file {path} of backbone {name!r} is unreadable ({type(exc).__name__}: {exc}). "
            f"Delete it and fetch {weights.url} again to that path."
        ) from exc
    model = build(weights=None)
    model.load_state_dict(state, strict=True)
    return model.eval()
