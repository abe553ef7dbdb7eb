"""Deep-prompt forward passes over a frozen open_clip CLIP, without forking its code (docs/methods.md CLIP §6.1-6.2).

open_clip's `encode_image` applies `ln_pre` inside `_embeds`, but visual prompts must enter after the
positional embedding and *before* `ln_pre`, and deep prompts must replace tokens between blocks. So the
prompted paths re-run the same submodules (conv1, blocks, ln_post, proj ...) in the PSRC order; with no
prompts both encoders delegate to open_clip, so zero-shot numbers are exactly open_clip's.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from open_clip.model import CLIP
from open_clip.transformer import VisionTransformer
from torch import Tensor, nn

from vrbench.clip.models import ClipDims, clip_dims
from vrbench.clip.templates import fill
from vrbench.errors import ConfigError

TEXT_CHUNK = 256  # prompts per frozen text-encoder call, bounds activation memory for 1000-class datasets


@torch.no_grad()
def encode_templates(encode_text: Callable[[Tensor], Tensor], tokenizer: Callable[[list[str]], Tensor],
                     device: torch.device, templates: Sequence[str], classnames: Sequence[str]) -> Tensor:
    """(T, C, embed) unnormalized frozen text features of every template filled with every class name.

    The one place that turns template x class prompts into features: zero-shot classifiers, PromptSRC's text
    teacher and the source classes of VR on CLIP (template-major, row t*C + c once flattened).
    """
    texts = [fill(template, name) for template in templates for name in classnames]
    chunks = [texts[i:i + TEXT_CHUNK] for i in range(0, len(texts), TEXT_CHUNK)]
    features = torch.cat([encode_text(tokenizer(chunk).to(device)) for chunk in chunks])
    return features.reshape(len(templates), len(classnames), -1)


def expand_prompt(prompt: Tensor, batch: int) -> Tensor:
    """A shared (n, D) prompt becomes (batch, n, D); a per-sample (batch, n, D) prompt is kept."""
    if prompt.dim() == 2:
        return prompt.unsqueeze(0).expand(batch, -1, -1)
    if prompt.dim() == 3 and prompt.shape[0] == batch:
        return prompt
    raise ValueError(f"prompt of shape {tuple(prompt.shape)} fits neither (n, D) nor ({batch}, n, D)")


def _prompt_length(prompt: Tensor) -> int:
    return prompt.shape[-2]


class PromptedCLIP(nn.Module):
    """A frozen CLIP whose encoders accept shallow and deep prompts (IVLP, MaPLe, PromptSRC, CoOp family)."""

    def __init__(self, model: CLIP) -> None:
        super().__init__()
        if not getattr(model.transformer, "batch_first", True):
            raise ConfigError("PromptedCLIP needs open_clip's batch-first (NLD) text transformer")
        self.model = model
        self.model.requires_grad_(False)
        self.dims: ClipDims = clip_dims(model)

    @property
    def is_vit(self) -> bool:
        return isinstance(self.model.visual, VisionTransformer)

    @property
    def device(self) -> torch.device:
        return self.model.token_embedding.weight.device

    def logit_scale(self) -> Tensor:
        """exp(logit_scale), frozen: 100 for the OpenAI weights (§6.3.14)."""
        return self.model.logit_scale.exp()

    # ---------------------------------------------------------------- image
    def encode_image(self, images: Tensor, shallow: Tensor | None = None,
                     deep: Sequence[Tensor] | None = None) -> Tensor:
        """Unnormalized image features (B, embed); shallow prompts are appended, deep ones replace the last n."""
        deep = list(deep or [])
        if shallow is None and not deep:
            return self.model.encode_image(images)
        visual = self._prompt_ready_visual()
        if shallow is None:
            raise ConfigError("deep visual prompts need a shallow (layer-0) prompt: they replace its tokens")
        n = _prompt_length(shallow)
        self._check_deep(deep, n, len(visual.transformer.resblocks), "vision")
        batch = images.shape[0]
        x = visual.conv1(images)
        x = x.reshape(batch, x.shape[1], -1).permute(0, 2, 1)
        cls = visual.class_embedding.view(1, 1, -1).expand(batch, -1, -1).to(x.dtype)
        x = torch.cat([cls, x], dim=1) + visual.positional_embedding.to(x.dtype)
        x = visual.patch_dropout(x)
        x = torch.cat([x, expand_prompt(shallow, batch).to(x.dtype)], dim=1)  # no positional embedding on prompts
        x = visual.ln_pre(x)
        for layer, block in enumerate(visual.transformer.resblocks):
            if 1 <= layer <= len(deep):
                x = torch.cat([x[:, :-n], expand_prompt(deep[layer - 1], batch).to(x.dtype)], dim=1)
            x = block(x)
        pooled = self._pool_first_token(visual, x)
        return pooled @ visual.proj if visual.proj is not None else pooled

    def _prompt_ready_visual(self) -> VisionTransformer:
        visual = self.model.visual
        if not self.is_vit:
            raise ConfigError(f"image prompts need a ViT image tower; this CLIP has {type(visual).__name__}")
        if visual.attn_pool is not None or visual.pool_type != "tok":
            raise ConfigError(f"image prompts need class-token pooling; this ViT pools with '{visual.pool_type}'"
                              f"{' and an attention pooler' if visual.attn_pool is not None else ''}")
        if not visual.transformer.batch_first:
            raise ConfigError("PromptedCLIP needs open_clip's batch-first (NLD) vision transformer")
        return visual

    @staticmethod
    def _pool_first_token(visual: VisionTransformer, x: Tensor) -> Tensor:
        """ln_post then token 0; LayerNorm is per token, so either order gives OpenAI's ln_post(x[:, 0])."""
        return visual.ln_post(x[:, 0])

    @staticmethod
    def _check_deep(deep: Sequence[Tensor], n: int, layers: int, tower: str) -> None:
        if len(deep) > layers - 1:
            raise ConfigError(f"{len(deep)} deep {tower} prompts need {len(deep) + 1} layers; "
                              f"the {tower} tower has {layers}")
        for prompt in deep:
            if _prompt_length(prompt) != n:
                raise ValueError(f"deep {tower} prompt has {_prompt_length(prompt)} tokens, the layer-0 prompt {n}")

    # ---------------------------------------------------------------- text
    def token_embedding(self, tokens: Tensor) -> Tensor:
        return self.model.token_embedding(tokens)

    def encode_text(self, tokens: Tensor) -> Tensor:
        """Plain frozen text features (N, embed), unnormalized: open_clip's own forward."""
        return self.model.encode_text(tokens)

    def encode_text_embeddings(self, embeddings: Tensor, tokens: Tensor, deep: Sequence[Tensor] | None = None,
                               n_ctx: int = 0) -> Tensor:
        """Text features (C, embed) from prompt embeddings (C, 77, Dt); deep[l-1] replaces positions 1..n_ctx.

        `tokens` are the placeholder token ids of the same prompts; only their argmax (EOT) is read.
        """
        model = self.model
        if model.text_pool_type != "argmax":
            raise ConfigError(f"prompted text needs EOT (argmax) pooling; this CLIP pools with "
                              f"'{model.text_pool_type}'")
        deep = list(deep or [])
        self._check_deep(deep, n_ctx, len(model.transformer.resblocks), "text")
        count = embeddings.shape[0]
        x = embeddings + model.positional_embedding.to(embeddings.dtype)  # after concatenation: ctx gets positions
        for layer, block in enumerate(model.transformer.resblocks):
            if 1 <= layer <= len(deep):
                x = torch.cat([x[:, :1], expand_prompt(deep[layer - 1], count).to(x.dtype), x[:, 1 + n_ctx:]], dim=1)
            x = block(x, attn_mask=model.attn_mask)
        x = model.ln_final(x)
        x = x[torch.arange(count, device=x.device), tokens.argmax(dim=-1)]
        projection = model.text_projection
        if projection is None:
            return x
        return projection(x) if isinstance(projection, nn.Linear) else x @ projection
