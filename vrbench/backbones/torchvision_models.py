"""ResNet-18/50 with the torchvision ImageNet weights the VR papers use, loaded without surprises offline.

torchvision's own `resnet18(weights=...)` downloads on a cache miss (failing deep inside urllib when offline) and
unpickles with `weights_only=False`. Here the weight enum still decides the URL, file name and metadata, but the
file is looked up in torch hub's checkpoint directory first, downloaded only with a short network timeout, and
loaded with `weights_only=True`. A file that is already there is used as is: like torchvision, the hash in the
file name is only checked when downloading.
"""

from __future__ import annotations

import torchvision
from torch import nn
from torchvision.models import ResNet18_Weights, ResNet50_Weights, WeightsEnum

from vrbench.backbones.checkpoints import checkpoint_path, ensure_checkpoint, load_state
from vrbench.errors import ConfigError

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

def weights_file(weights: WeightsEnum) -> str:
    """Where torch hub keeps this checkpoint: $TORCH_HOME/hub/checkpoints/<basename of the URL>."""
    return checkpoint_path(weights.url)


def load_torchvision(name: str) -> nn.Module:
    """Build torchvision `name` with its paper weights (ResNet-18 IMAGENET1K_V1, ResNet-50 IMAGENET1K_V2), in eval.

    Outputs 1000 raw ImageNet logits for inputs normalized with TORCHVISION_PREPROCESS[name] (ImageNet mean/std).
    """
    if name not in _MODELS:
        raise ConfigError(f"Unknown torchvision backbone {name!r}; known: {', '.join(sorted(_MODELS))}.")
    build, weights = _MODELS[name]
    path = ensure_checkpoint(name, weights.url, str(weights))
    state = load_state(name, path, weights.url)
    model = build(weights=None)
    model.load_state_dict(state, strict=True)
    return model.eval()
