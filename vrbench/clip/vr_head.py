"""CLIP as a frozen classifier for visual reprogramming (ILM-VP and BLM on CLIP, docs/methods.md CLIP §1.8-1.10).

The "source classes" of CLIP are text embeddings: every template x target class name, each L2-normalised and
never averaged, in template-major order (row t*C + c). The network output for an image is
``exp(logit_scale) * normalize(encode_image(x)) @ T^T`` over those rows, so the VR label mappings (one-to-one
ILM, BLM, BLM++) choose among (template, class) prompts exactly as the originals do, and with the single
template "This is a photo of a {}." the output is already C-way (single-TP-VP, mapping ``identity``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from vrbench.clip.encoders import encode_templates
from vrbench.clip.feature_cache import FeatureCache
from vrbench.clip.models import get_clip_tokenizer, load_clip
from vrbench.clip.templates import ILM_81, ILM_DEFAULT_TEMPLATE, vr_classname

TEMPLATE_SETS: dict[str, list[str]] = {"ilm81": ILM_81, "single": [ILM_DEFAULT_TEMPLATE]}


class ClipTextHead(nn.Module):
    """Frozen CLIP image encoder followed by fixed, normalised text embeddings as the classifier."""

    def __init__(self, model: nn.Module, text: torch.Tensor) -> None:
        super().__init__()
        self.model = model
        self.register_buffer("text", F.normalize(text, dim=-1))
        self.register_buffer("scale", model.logit_scale.detach().exp().clone())

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.scale * F.normalize(self.model.encode_image(images), dim=-1) @ self.text.t()


def build_clip_head(config: dict[str, Any], classes: tuple[str, ...], results_root: Path) -> tuple[nn.Module, int]:
    """The VR backbone for a CLIP job: (module giving T*C logits, T*C)."""
    name = config["backbone"]
    model = load_clip(name)
    tokenizer = get_clip_tokenizer(name)
    templates = TEMPLATE_SETS[config.get("text_templates", "ilm81")]
    names = [vr_classname(c) for c in classes]
    cache = FeatureCache(results_root, f"{name}|fp32")
    device = model.token_embedding.weight.device
    per_template = cache.text(cache.model_key, templates, names,
                              lambda: encode_templates(model.encode_text, tokenizer, device, templates, names))
    text = F.normalize(per_template, dim=-1).reshape(len(templates) * len(names), -1)  # row t*C + c
    return ClipTextHead(model, text), text.shape[0]
