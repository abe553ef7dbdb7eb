"""The two other backbones of the VR papers, with the exact weights the papers used.

- `resnext101_32x8d_wsl`: ILM-VP's `torch.hub.load('facebookresearch/WSL-Images', 'resnext101_32x8d_wsl')`,
  i.e. torchvision's ResNeXt-101 32x8d architecture with the Instagram-pretrained, ImageNet-fine-tuned weights
  from the hub's URL (timm's `resnext101_32x8d.fb_wsl_ig1b_ft_in1k` carries the same weights).
- `vit_b32`: SMM's `pytorch_pretrained_vit.ViT('B_32_imagenet1k')`, the original ViT-B/32 pretrained on
  ImageNet-21k and fine-tuned on ImageNet-1k at 384 px. timm has no tag for these original 384-px weights (its
  `vit_base_patch32_384.augreg_in21k_ft_in1k` is the later AugReg training), so vrbench uses SMM's package and
  file. SMM normalises its inputs with ImageNet mean/std (docs/methods.md VR §6 item 14); so does vrbench.
- `vit_l16`: the same package's `ViT('L_16_imagenet1k')` (ImageNet-21k -> 1k at 384 px), the ViT-L of SMM's
  Table 13 (the paper names ViT-L at 384 px; its public code has no ViT-L, so vrbench takes the package SMM uses
  for ViT-B/32).
- `vit_tiny`: the same ViT class with a tiny configuration and random weights (seed 0), so tests and CPU smoke
  runs exercise the real architecture (its attention projections, where LoRA goes, and its `fc` head).
"""

from __future__ import annotations

import torchvision
from torch import nn

from vrbench.backbones.checkpoints import ensure_checkpoint, load_state
from vrbench.errors import ConfigError, MissingResourceError

WSL_URL = "https://download.pytorch.org/models/ig_resnext101_32x8-c38310e5.pth"
VIT_B32_URL = "https://github.com/lukemelas/PyTorch-Pretrained-ViT/releases/download/0.0.2/B_32_imagenet1k.pth"
VIT_L16_URL = "https://github.com/lukemelas/PyTorch-Pretrained-ViT/releases/download/0.0.2/L_16_imagenet1k.pth"
URLS = {"resnext101_32x8d_wsl": WSL_URL, "vit_b32": VIT_B32_URL, "vit_l16": VIT_L16_URL}
# pytorch_pretrained_vit's model names; vit_tiny is a keyword configuration of the same class instead.
VIT_NAMES = {"vit_b32": "B_32_imagenet1k", "vit_l16": "L_16_imagenet1k"}
TINY_VIT_NAME = "vrbench_tiny"  # a configuration entry vrbench adds to the package's own table (no weights)
TINY_VIT = {"config": {"patches": (8, 8), "dim": 32, "ff_dim": 64, "num_heads": 2, "num_layers": 2,
                       "attention_dropout_rate": 0.0, "dropout_rate": 0.1, "representation_size": None,
                       "classifier": "token"},
            "num_classes": 1000, "image_size": (32, 32), "url": None}


def _vit_class():
    try:
        from pytorch_pretrained_vit import ViT
    except ImportError:
        raise MissingResourceError("the ViT backbones need SMM's ViT package: pip install pytorch-pretrained-vit"
                                   ) from None
    return ViT


def build_architecture(name: str) -> nn.Module:
    """The network with random weights (what the loaders fill; tests use it to check shapes and counts)."""
    if name == "resnext101_32x8d_wsl":
        return torchvision.models.resnext101_32x8d(weights=None)
    if name in VIT_NAMES:
        return _vit_class()(VIT_NAMES[name], pretrained=False)
    raise ConfigError(f"unknown paper backbone {name!r}; known: {', '.join(sorted(URLS))}, vit_tiny")


def build_tiny_vit() -> nn.Module:
    """vit_tiny: seed-0 random weights; the head is drawn like the other layers (the package zeroes it, which
    would make every logit 0 and every label-mapping pass degenerate)."""
    import torch
    from pytorch_pretrained_vit.configs import PRETRAINED_MODELS

    # The package's name=None path is broken in 0.0.7 (it reads an undefined variable); a named configuration
    # goes through the same code path as B_32_imagenet1k and L_16_imagenet1k.
    PRETRAINED_MODELS.setdefault(TINY_VIT_NAME, TINY_VIT)
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(0)
    try:
        model = _vit_class()(TINY_VIT_NAME, pretrained=False)
        nn.init.normal_(model.fc.weight, std=0.02)
    finally:
        torch.random.set_rng_state(generator_state)
    return model.eval()


def load_paper_model(name: str) -> nn.Module:
    if name == "vit_tiny":
        return build_tiny_vit()
    url = URLS.get(name)
    if url is None:
        build_architecture(name)  # raises the unknown-name error
    path = ensure_checkpoint(name, url, "the weights used by the papers")  # before allocating ViT-L's 1.2 GB
    model = build_architecture(name)
    model.load_state_dict(load_state(name, path, url), strict=True)
    return model.eval()
