"""The two other backbones of the VR papers, with the exact weights the papers used.

- `resnext101_32x8d_wsl`: ILM-VP's `torch.hub.load('facebookresearch/WSL-Images', 'resnext101_32x8d_wsl')`,
  i.e. torchvision's ResNeXt-101 32x8d architecture with the Instagram-pretrained, ImageNet-fine-tuned weights
  from the hub's URL (timm's `resnext101_32x8d.fb_wsl_ig1b_ft_in1k` carries the same weights).
- `vit_b32`: SMM's `pytorch_pretrained_vit.ViT('B_32_imagenet1k')`, the original ViT-B/32 pretrained on
  ImageNet-21k and fine-tuned on ImageNet-1k at 384 px. timm has no tag for these original 384-px weights (its
  `vit_base_patch32_384.augreg_in21k_ft_in1k` is the later AugReg training), so vrbench uses SMM's package and
  file. SMM normalises its inputs with ImageNet mean/std (spec §6 item 14); so does vrbench.
"""

from __future__ import annotations

import torchvision
from torch import nn

from vrbench.backbones.checkpoints import ensure_checkpoint, load_state
from vrbench.errors import ConfigError, MissingResourceError

WSL_URL = "https://download.pytorch.org/models/ig_resnext101_32x8-c38310e5.pth"
VIT_B32_URL = "https://github.com/lukemelas/PyTorch-Pretrained-ViT/releases/download/0.0.2/B_32_imagenet1k.pth"


def build_architecture(name: str) -> nn.Module:
    """The network with random weights (what the loaders fill; tests use it to check shapes and counts)."""
    if name == "resnext101_32x8d_wsl":
        return torchvision.models.resnext101_32x8d(weights=None)
    if name == "vit_b32":
        try:
            from pytorch_pretrained_vit import ViT
        except ImportError:
            raise MissingResourceError("backbone 'vit_b32' needs SMM's ViT package: pip install "
                                       "pytorch-pretrained-vit") from None
        return ViT("B_32_imagenet1k", pretrained=False)
    raise ConfigError(f"unknown paper backbone {name!r}; known: resnext101_32x8d_wsl, vit_b32")


def load_paper_model(name: str) -> nn.Module:
    url = {"resnext101_32x8d_wsl": WSL_URL, "vit_b32": VIT_B32_URL}.get(name)
    if url is None:
        build_architecture(name)  # raises the unknown-name error
    model = build_architecture(name)
    path = ensure_checkpoint(name, url, "the weights used by the papers")
    model.load_state_dict(load_state(name, path, url), strict=True)
    return model.eval()
