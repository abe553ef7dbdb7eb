"""CLIP adaptation methods (zero-shot, CoOp, ProDA, CoCoOp, IVLP, MaPLe, PromptSRC) behind one nn.Module interface.

Every method owns only its prompt parameters; the CLIP itself is a frozen `PromptedCLIP` shared with the
teachers. Class-dependent tensors (token prefix/suffix, frozen text features) are non-persistent buffers
rebuilt by `set_classnames`, as Dassl rebuilds them for novel-class and cross-dataset evaluation; learned
prompts survive. The training loop (optimizer, schedule, data) belongs to the caller (docs/methods.md CLIP §0).
"""

from __future__ import annotations

import copy
import math
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vrbench.clip.encoders import PromptedCLIP, encode_templates
from vrbench.clip.templates import (
    DEFAULT_TEMPLATE,
    PROMPTSRC_60,
    classname_for_prompt,
    custom_template,
    ensemble_templates,
)
from vrbench.errors import ConfigError
from vrbench.registry import unknown_name_message

Tokenizer = Callable[[list[str]], Tensor]
PROMPT_INIT_STD = 0.02
VL_INIT_MAX_CTX = 4  # IVLP/MaPLe/PromptSRC use CTX_INIT only when n_ctx <= 4 (§6.3.5)

_VL_PARAMS: dict[str, Any] = {"n_ctx_text": 4, "n_ctx_vision": 4, "depth_text": 9, "depth_vision": 9,
                              "ctx_init": "a photo of a"}
# Method hyperparameters with the spec's defaults (§1.3-1.7): the base-to-novel YAML values, except CoOp whose
# train.py defaults are kept (its ctxv1 init lives in RECIPES) and CoCoOp, whose only scripted config is ctxv1.
DEFAULT_PARAMS: dict[str, dict[str, Any]] = {
    "zeroshot": {},
    "zeroshot_ensemble": {},
    "coop": {"n_ctx": 16, "csc": False, "ctx_init": "", "class_token_position": "end"},
    "cocoop": {"n_ctx": 4, "ctx_init": "a photo of a"},
    "proda": {"n_prompts": 32, "n_ctx": 16, "prompt_batch": 8},
    "ivlp": dict(_VL_PARAMS),
    "maple": {"n_ctx": 2, "depth": 9, "ctx_init": "a photo of a"},
    "promptsrc": {**_VL_PARAMS, "text_loss_weight": 25.0, "image_loss_weight": 10.0, "kl_loss_weight": 1.0,
                  "gpa_mean": 15.0, "gpa_std": 1.0, "gpa": True, "textual_diversity": True},
}

# Base-to-novel training recipes from the papers' YAMLs (§7); the caller owns SGD(momentum .9, wd 5e-4),
# one warmup epoch at 1e-5 and the per-epoch cosine schedule.
RECIPES: dict[str, dict[str, Any]] = {
    "coop": {"epochs": 200, "lr": 0.002, "batch_size": 32, "ctx_init": "a photo of a"},  # vit_b16_ctxv1
    "cocoop": {"epochs": 10, "lr": 0.002, "batch_size": 1},  # vit_b16_c4_ep10_batch1_ctxv1
    "proda": {"epochs": 200, "lr": 0.002, "batch_size": 32},  # CoOp's recipe (no official config; deviations.md)
    "ivlp": {"epochs": 20, "lr": 0.0025, "batch_size": 4},  # vit_b16_c2_ep20_batch4_4+4ctx
    "maple": {"epochs": 5, "lr": 0.0035, "batch_size": 4},  # vit_b16_c2_ep5_batch4_2ctx (upstream 5 epochs)
    "promptsrc": {"epochs": 20, "lr": 0.0025, "batch_size": 4},  # vit_b16_c2_ep20_batch4_4+4ctx, GPA 15/1
}


class TextCache(Protocol):
    """Caller-provided store of frozen text features, shared across jobs with the same backbone."""

    def text(self, model_key: str, templates: list[str], classnames: list[str],
             compute: Callable[[], Tensor]) -> Tensor: ...


def random_prompt(*shape: int) -> nn.Parameter:
    """A prompt drawn from N(0, 0.02), the init of every random context in the PSRC/COOP trainers."""
    return nn.Parameter(nn.init.normal_(torch.empty(*shape), std=PROMPT_INIT_STD))


def gpa_weights(mean: float, std: float, epochs: int) -> list[float]:
    """PromptSRC's GPA weights: Gaussian pdf at 1-based epochs 1..E, normalized to sum to 1 (§1.7)."""
    pdf = [math.exp(-0.5 * ((epoch - mean) / std) ** 2) / (std * math.sqrt(2 * math.pi))
           for epoch in range(1, epochs + 1)]
    total = sum(pdf)
    return [value / total for value in pdf]


def _normalize(x: Tensor) -> Tensor:
    return F.normalize(x, dim=-1)


# ------------------------------------------------------------------------------------------ context init
@dataclass
class ContextInit:
    """Initial learnable context and the text that stands in for it, so EOT positions stay right."""

    vectors: Tensor
    prefix: str
    n_ctx: int


def _word_embeddings(clip: PromptedCLIP, tokenizer: Tokenizer, words: str, count: int) -> Tensor:
    tokens = tokenizer([words]).to(clip.device)
    available = int(tokens[0].argmax()) - 1
    if count > available:
        raise ConfigError(f"ctx_init '{words}' has {available} tokens, fewer than the {count} context tokens")
    with torch.no_grad():
        return clip.token_embedding(tokens)[0, 1:1 + count].clone()


def _placeholder(n_ctx: int) -> str:
    return " ".join(["X"] * n_ctx)


def coop_context(clip: PromptedCLIP, tokenizer: Tokenizer, n_ctx: int, ctx_init: str,
                 class_specific: int | None = None) -> ContextInit:
    """CoOp/CoCoOp rule: a non-empty init overrides n_ctx to its word count and forces a unified context."""
    if ctx_init:
        words = ctx_init.replace("_", " ")
        count = len(words.split(" "))
        return ContextInit(_word_embeddings(clip, tokenizer, words, count), words, count)
    _check_positive("n_ctx", n_ctx)
    width = clip.dims.text_width
    shape = (class_specific, n_ctx, width) if class_specific else (n_ctx, width)
    return ContextInit(random_prompt(*shape).data, _placeholder(n_ctx), n_ctx)


def vl_context(clip: PromptedCLIP, tokenizer: Tokenizer, n_ctx: int, ctx_init: str) -> ContextInit:
    """IVLP/MaPLe/PromptSRC rule: the first n_ctx init words when n_ctx <= 4; the full init stays in the text."""
    _check_positive("n_ctx", n_ctx)
    if ctx_init and n_ctx <= VL_INIT_MAX_CTX:
        return ContextInit(_word_embeddings(clip, tokenizer, ctx_init, n_ctx), ctx_init, n_ctx)
    return ContextInit(random_prompt(n_ctx, clip.dims.text_width).data, _placeholder(n_ctx), n_ctx)


def _check_positive(key: str, value: int) -> None:
    if int(value) < 1:
        raise ConfigError(f"{key} must be at least 1, got {value}")


def _check_depth(key: str, depth: int, layers: int | None, minimum: int = 1) -> None:
    if depth < minimum:
        raise ConfigError(f"{key} must be at least {minimum}, got {depth}")
    if layers is not None and depth > layers:
        raise ConfigError(f"{key} {depth} exceeds the {layers} transformer layers of this CLIP")


# ------------------------------------------------------------------------------------------ class prompts
class ClassPrompts(nn.Module):
    """Tokenized "<prefix> <class>." prompts split around the context: SOS | n_ctx slots | class, '.', EOS."""

    def __init__(self) -> None:
        super().__init__()
        self.n_ctx = 0
        for name in ("tokens", "token_prefix", "token_suffix", "name_lens"):
            self.register_buffer(name, None, persistent=False)

    def rebuild(self, clip: PromptedCLIP, tokenizer: Tokenizer, prefix: str, classnames: list[str],
                n_ctx: int) -> None:
        names = [classname_for_prompt(name) for name in classnames]
        tokens = tokenizer([f"{prefix} {name}." for name in names]).to(clip.device)
        with torch.no_grad():
            embedding = clip.token_embedding(tokens)
        self.n_ctx = n_ctx
        self.tokens = tokens
        self.token_prefix = embedding[:, :1].clone()
        self.token_suffix = embedding[:, 1 + n_ctx:].clone()
        self.name_lens = tokenizer(names).to(clip.device).argmax(dim=-1) - 1  # BPE length between SOS and EOT

    @property
    def count(self) -> int:
        return self.tokens.shape[0]

    def assemble(self, ctx: Tensor) -> Tensor:
        """[SOS, ctx, class tokens ...] for every class; ctx is (n, D) shared or (C, n, D)."""
        if ctx.dim() == 2:
            ctx = ctx.unsqueeze(0).expand(self.count, -1, -1)
        return torch.cat([self.token_prefix, ctx, self.token_suffix], dim=1)


# ------------------------------------------------------------------------------------------ base class
class ClipMethod(nn.Module):
    """One CLIP adaptation method: logits = scale * cos(image, class text), plus its training loss."""

    name: ClassVar[str]
    trains: ClassVar[bool] = True
    changes_image_path: ClassVar[bool] = True  # False: forward only needs the frozen encoder's image features

    def __init__(self, clip: PromptedCLIP, tokenizer: Tokenizer, classnames: list[str], params: dict[str, Any],
                 dataset: str, text_cache: TextCache | None = None) -> None:
        super().__init__()
        self.clip = clip
        self.tokenizer = tokenizer
        self.dataset = dataset
        self.text_cache = text_cache
        self.params: dict[str, Any] = {**DEFAULT_PARAMS.get(self.name, {}), **(params or {})}
        self.classnames: list[str] = list(classnames)
        self._text_memo: tuple[tuple, Tensor] | None = None
        self.build()
        self.set_classnames(self.classnames)

    # hooks ------------------------------------------------------------------------------------------
    def build(self) -> None:
        """Create the method's parameters from self.params (before the first set_classnames)."""

    def set_classnames(self, classnames: list[str]) -> None:
        """Rebuild every class-dependent buffer for another class list; learned prompts are kept."""
        self.classnames = list(classnames)
        self._text_memo = None

    def text_features(self) -> Tensor:
        """Unnormalized class text features (C, embed) for methods whose text does not depend on the image."""
        raise NotImplementedError

    def image_features(self, images: Tensor) -> Tensor:
        """Unnormalized image features (B, embed); prompted methods override this."""
        return self.clip.encode_image(images)

    # common interface -------------------------------------------------------------------------------
    def forward(self, images: Tensor) -> Tensor:
        return self.logits_from_image_features(self.image_features(images))

    def logits_from_image_features(self, image_features: Tensor) -> Tensor:
        """Logits from precomputed image features (cacheable when changes_image_path is False)."""
        return self.clip.logit_scale() * _normalize(image_features) @ _normalize(self.class_text()).t()

    def training_loss(self, images: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
        logits = self(images)
        return F.cross_entropy(logits, labels), logits

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [parameter for _, parameter in self.named_trainable_parameters()]

    def named_trainable_parameters(self) -> list[tuple[str, nn.Parameter]]:
        return [(name, p) for name, p in self.named_parameters() if p.requires_grad]

    def epoch_end(self, epoch: int, epochs: int) -> None:
        """Called after the LR step of 0-based `epoch`."""

    def extra_state(self) -> dict[str, Any]:
        return {}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        """Restore what extra_state returned (nothing by default)."""

    def train(self, mode: bool = True) -> ClipMethod:
        """Only the method switches mode: the frozen CLIP stays in eval (RN50's BatchNorm must not update)."""
        super().train(mode)
        self.clip.eval()
        return self

    # helpers ----------------------------------------------------------------------------------------
    def prompt_classnames(self) -> list[str]:
        return [classname_for_prompt(name) for name in self.classnames]

    def class_text(self) -> Tensor:
        """text_features(), memoized at evaluation (no grad, eval mode) until a trainable tensor changes."""
        if self.training or torch.is_grad_enabled():
            return self.text_features()
        key = tuple((id(p), p._version, p.device) for p in self.trainable_parameters())
        if self._text_memo is None or self._text_memo[0] != key:
            self._text_memo = (key, self.text_features())
        return self._text_memo[1]

    def frozen_text(self, templates: list[str], classnames: list[str]) -> Tensor:
        """(T, C, embed) unnormalized frozen text features of every template x class, via the cache if any."""
        def compute() -> Tensor:
            return encode_templates(self.clip.encode_text, self.tokenizer, self.clip.device, templates, classnames)

        if self.text_cache is None:
            return compute()
        key = str(self.params.get("backbone", ""))
        return self.text_cache.text(key, list(templates), list(classnames), compute).to(self.clip.device)


# ------------------------------------------------------------------------------------------ zero-shot
class ZeroShotCLIP(ClipMethod):
    """ZeroshotCLIP (§1.1): the dataset's hand-made template, frozen encoders."""

    name = "zeroshot"
    trains = False
    changes_image_path = False

    def templates(self) -> list[str]:
        return [custom_template(self.dataset)]

    def set_classnames(self, classnames: list[str]) -> None:
        super().set_classnames(classnames)
        features = self.frozen_text(self.templates(), self.prompt_classnames())
        self.register_buffer("classifier", self.combine(features), persistent=False)

    @staticmethod
    def combine(features: Tensor) -> Tensor:
        return _normalize(features[0])

    def text_features(self) -> Tensor:
        return self.classifier

    def logits_from_image_features(self, image_features: Tensor) -> Tensor:
        return self.clip.logit_scale() * _normalize(image_features) @ self.classifier.t()  # already normalized


class ZeroShotEnsembleCLIP(ZeroShotCLIP):
    """ZeroshotCLIP2 (§1.1): 7 selected templates (+ the custom one off ImageNet), normalized, averaged."""

    name = "zeroshot_ensemble"

    def templates(self) -> list[str]:
        return ensemble_templates(self.dataset)

    @staticmethod
    def combine(features: Tensor) -> Tensor:
        return _normalize(_normalize(features).mean(dim=0))


# ------------------------------------------------------------------------------------------ learned context
class ContextMethod(ClipMethod):
    """Methods whose text prompt is [SOS][learned context][class tokens]: CoOp, CoCoOp, IVLP, PromptSRC, MaPLe.

    The context is learned; the class part is rebuilt from the tokenized "<prefix> <class>." for every class list.
    """

    def _init_context(self, init: ContextInit) -> None:
        self.ctx = nn.Parameter(init.vectors)
        self.prompt_prefix = init.prefix
        self.n_ctx = init.n_ctx
        self.prompts = ClassPrompts()

    def set_classnames(self, classnames: list[str]) -> None:
        super().set_classnames(classnames)
        self.prompts.rebuild(self.clip, self.tokenizer, self.prompt_prefix, self.classnames, self.n_ctx)


# ------------------------------------------------------------------------------------------ CoOp
_POSITIONS = ("end", "middle", "front")


def class_token_order(prompts: ClassPrompts, n_ctx: int, position: str) -> Tensor:
    """Per-class permutation of the 'end' layout that moves the class tokens to the middle or front (CoOp)."""
    m, half = n_ctx, n_ctx // 2
    length = prompts.tokens.shape[1]
    rows = []
    for name_len in prompts.name_lens.tolist():
        if 1 + m + name_len >= length:
            raise ConfigError(f"class name of {name_len} tokens does not fit the context with {m} ctx tokens")
        ctx = list(range(1, 1 + m))
        cls = list(range(1 + m, 1 + m + name_len))
        rest = list(range(1 + m + name_len, length))
        body = ctx[:half] + cls + ctx[half:] if position == "middle" else cls + ctx
        rows.append([0, *body, *rest])
    return torch.tensor(rows, device=prompts.tokens.device)


def reorder(prompts: Tensor, order: Tensor | None) -> Tensor:
    """Apply a class_token_order permutation to (C, 77, D) prompt embeddings (None: the 'end' layout)."""
    if order is None:
        return prompts
    return torch.gather(prompts, 1, order.unsqueeze(-1).expand(-1, -1, prompts.shape[-1]))


class CoOp(ContextMethod):
    """CoOp (§1.3): M learnable context vectors before/around/after the class tokens; text side only."""

    name = "coop"
    changes_image_path = False

    def build(self) -> None:
        params = self.params
        self.position = str(params["class_token_position"])
        if self.position not in _POSITIONS:
            raise ConfigError(f"class_token_position must be one of {', '.join(_POSITIONS)}, got '{self.position}'")
        self.csc = bool(params["csc"]) and not params["ctx_init"]  # an init always gives a unified context
        init = coop_context(self.clip, self.tokenizer, int(params["n_ctx"]), str(params["ctx_init"]),
                            class_specific=len(self.classnames) if self.csc else None)
        self._init_context(init)
        self.register_buffer("order", None, persistent=False)

    def set_classnames(self, classnames: list[str]) -> None:
        if self.csc and len(classnames) != self.ctx.shape[0]:
            raise ConfigError(f"class-specific CoOp learned a context for {self.ctx.shape[0]} classes and cannot "
                              f"be applied to {len(classnames)}; use csc: false for novel or cross-dataset tests")
        super().set_classnames(classnames)
        self.order = None if self.position == "end" else self._token_order()

    def _token_order(self) -> Tensor:
        return class_token_order(self.prompts, self.n_ctx, self.position)

    def prompt_embeddings(self) -> Tensor:
        """(C, 77, D) prompt embeddings with the class tokens at the configured position."""
        return reorder(self.prompts.assemble(self.ctx), self.order)

    def text_features(self) -> Tensor:
        return self.clip.encode_text_embeddings(self.prompt_embeddings(), self.prompts.tokens)


# ------------------------------------------------------------------------------------------ ProDA
class ProDA(ContextMethod):
    """ProDA (Lu et al., CVPR 2022, "Prompt Distribution Learning"): K learnable prompts whose output embeddings
    of each class are modelled as a Gaussian.

    Every prompt k gives class j the normalised text feature w_kj. The classifier is random, w ~ N(mu, Sigma), with
    mu and Sigma the empirical mean and covariance over the K prompts. Training minimises the paper's surrogate
    loss, the upper bound of E_w[cross-entropy] from Jensen's inequality and the Gaussian's moment generating
    function: cross-entropy over the logits mu_j.z/tau + (1/2tau^2) z'(Sigma_jj + Sigma_yy - 2 Sigma_jy)z, where the
    quadratic term is the variance over the prompts of (w_kj - w_ky).z/tau, computed from K per-prompt logits without
    forming a covariance matrix. Each training step estimates mu and Sigma from `prompt_batch` of the K prompts drawn
    at random (the global RNG): all K prompts of all C classes would be K times CoOp's text batch, beyond a GPU's
    memory on ImageNet. Testing uses the mean embedding mu of all K prompts. The choices the paper leaves open
    (prompt count, length and sampling, class-token positions, the 1/K covariance, mu not renormalised) are listed
    in docs/deviations.md; the official code is not public.
    """

    name = "proda"
    changes_image_path = False

    def build(self) -> None:
        params = self.params
        self.n_prompts, n_ctx = int(params["n_prompts"]), int(params["n_ctx"])
        _check_positive("n_prompts", self.n_prompts)
        _check_positive("n_ctx", n_ctx)
        if self.n_prompts < 2:
            raise ConfigError("proda models the prompts' embeddings as a Gaussian: n_prompts must be at least 2")
        self.prompt_batch = int(params["prompt_batch"])
        if not 2 <= self.prompt_batch <= self.n_prompts:
            raise ConfigError(f"prompt_batch must be between 2 and n_prompts ({self.n_prompts}), "
                              f"got {self.prompt_batch}")
        self.ctx = random_prompt(self.n_prompts, n_ctx, self.clip.dims.text_width)
        self.prompt_prefix, self.n_ctx = _placeholder(n_ctx), n_ctx
        self.prompts = ClassPrompts()
        # The class name after the context (first half of the prompts) or in its middle (second half).
        half = self.n_prompts // 2
        self.positions = ["end"] * (self.n_prompts - half) + ["middle"] * half
        self.register_buffer("middle_order", None, persistent=False)

    def set_classnames(self, classnames: list[str]) -> None:
        super().set_classnames(classnames)
        self.middle_order = class_token_order(self.prompts, self.n_ctx, "middle")

    def prompt_text_features(self, chosen: list[int] | None = None) -> Tensor:
        """(K', C, embed) normalised text features of the chosen prompts (default: all K) for every class."""
        chosen = list(range(self.n_prompts)) if chosen is None else chosen
        embeddings = torch.cat([
            reorder(self.prompts.assemble(self.ctx[k]), None if self.positions[k] == "end" else self.middle_order)
            for k in chosen])
        tokens = self.prompts.tokens.repeat(len(chosen), 1)
        features = self.clip.encode_text_embeddings(embeddings, tokens)
        return _normalize(features).view(len(chosen), self.prompts.count, -1)

    def text_features(self) -> Tensor:
        """The mean embedding mu (C, embed): the classifier at test time."""
        return self.prompt_text_features().mean(dim=0)

    def logits_from_image_features(self, image_features: Tensor) -> Tensor:
        """scale * z.mu_j, mu as estimated (the mean of unit vectors, not renormalised), as in training."""
        return self.clip.logit_scale() * _normalize(image_features) @ self.class_text().t()

    def training_loss(self, images: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
        with torch.no_grad():
            image = _normalize(self.clip.encode_image(images))
        chosen = sorted(torch.randperm(self.n_prompts)[:self.prompt_batch].tolist())
        per_prompt = self.clip.logit_scale() * torch.einsum("bd,kcd->kbc", image, self.prompt_text_features(chosen))
        mean = per_prompt.mean(dim=0)  # z.mu_j / tau, mu estimated from the chosen prompts
        rows = torch.arange(labels.shape[0], device=labels.device)
        differences = per_prompt - per_prompt[:, rows, labels].unsqueeze(-1)  # (w_kj - w_ky).z / tau
        variance = differences.var(dim=0, unbiased=False)  # z'(Sigma_jj + Sigma_yy - 2 Sigma_jy)z / tau^2; 0 at y
        return F.cross_entropy(mean + 0.5 * variance, labels), mean


# ------------------------------------------------------------------------------------------ CoCoOp
class CoCoOp(ContextMethod):
    """CoCoOp (§1.4): context shifted per image by a meta-net of the image feature; C text passes per image."""

    name = "cocoop"
    changes_image_path = False

    def build(self) -> None:
        init = coop_context(self.clip, self.tokenizer, int(self.params["n_ctx"]), str(self.params["ctx_init"]))
        self._init_context(init)
        vis_dim, ctx_dim = self.clip.dims.embed_dim, self.clip.dims.text_width
        hidden = vis_dim // 16
        if hidden < 1:
            raise ConfigError(f"CoCoOp's meta-net needs an embedding width of at least 16, got {vis_dim}")
        self.meta_net = nn.Sequential(OrderedDict([
            ("linear1", nn.Linear(vis_dim, hidden)),
            ("relu", nn.ReLU(inplace=True)),
            ("linear2", nn.Linear(hidden, ctx_dim)),
        ]))

    def logits_from_image_features(self, image_features: Tensor) -> Tensor:
        features = _normalize(image_features)
        shifted = self.ctx.unsqueeze(0) + self.meta_net(features).unsqueeze(1)  # (B, n_ctx, D)
        rows = []
        for feature, ctx in zip(features, shifted, strict=True):
            text = self.clip.encode_text_embeddings(self.prompts.assemble(ctx), self.prompts.tokens)
            rows.append(feature @ _normalize(text).t())
        return self.clip.logit_scale() * torch.stack(rows)


# ------------------------------------------------------------------------------------------ IVLP / PromptSRC
class IVLP(ContextMethod):
    """Independent V-L prompting (§1.5): separate deep prompts in both towers, replaced at layers 1..J-1."""

    name = "ivlp"

    def build(self) -> None:
        params, dims = self.params, self.clip.dims
        n_text, n_vision = int(params["n_ctx_text"]), int(params["n_ctx_vision"])
        depth_text, depth_vision = int(params["depth_text"]), int(params["depth_vision"])
        _check_depth("depth_text", depth_text, dims.text_layers)
        _check_depth("depth_vision", depth_vision, dims.vision_layers, minimum=0)
        if depth_vision and not self.clip.is_vit:
            raise ConfigError(f"{self.name} prompts the image tower, which needs a ViT CLIP (got a ResNet); "
                              "set depth_vision: 0 for text-only prompts")
        init = vl_context(self.clip, self.tokenizer, n_text, str(params["ctx_init"]))
        self._init_context(init)
        self.deep_text = nn.ParameterList([random_prompt(n_text, dims.text_width) for _ in range(depth_text - 1)])
        if depth_vision:
            _check_positive("n_ctx_vision", n_vision)
            self.visual_ctx = random_prompt(n_vision, dims.vision_width)
        else:
            self.register_parameter("visual_ctx", None)
        self.deep_vision = nn.ParameterList(
            [random_prompt(n_vision, dims.vision_width) for _ in range(max(depth_vision - 1, 0))])

    def text_features(self) -> Tensor:
        return self.clip.encode_text_embeddings(self.prompts.assemble(self.ctx), self.prompts.tokens,
                                                list(self.deep_text), self.n_ctx)

    def image_features(self, images: Tensor) -> Tensor:
        return self.clip.encode_image(images, self.visual_ctx, list(self.deep_vision))


class PromptSRC(IVLP):
    """PromptSRC (§1.7): IVLP prompts regularized towards the frozen CLIP, then Gaussian prompt aggregation."""

    name = "promptsrc"

    def build(self) -> None:
        super().build()
        self._gpa: dict[str, Tensor] | None = None

    def set_classnames(self, classnames: list[str]) -> None:
        super().set_classnames(classnames)
        self._teacher: Tensor | None = None

    def teacher_templates(self) -> list[str]:
        """The 60 templates of textual diversity; without it (the supplement's ablation rows 2-3) one feature per
        class, the frozen CLIP's "a photo of a {}." (the hand-crafted prompt PromptSRC's text prompts start from)."""
        return list(PROMPTSRC_60) if self.params.get("textual_diversity", True) else [DEFAULT_TEMPLATE]

    @property
    def teacher_text(self) -> Tensor:
        """The textual-diversity teacher: the unnormalized mean over the templates of the frozen features.

        Built on first use, because only training needs it: an evaluation job on 1000 ImageNet classes would
        otherwise encode 60,000 prompts it never reads.
        """
        if self._teacher is None:
            self._teacher = self.frozen_text(self.teacher_templates(), self.prompt_classnames()).mean(dim=0)
        return self._teacher

    def training_loss(self, images: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
        params = self.params
        scale = self.clip.logit_scale()
        image = _normalize(self.image_features(images))
        text = _normalize(self.text_features())
        logits = scale * image @ text.t()
        teacher_text = _normalize(self.teacher_text)
        with torch.no_grad():
            teacher_image = _normalize(self.clip.encode_image(images))  # the same frozen encoder, no prompts
        teacher_logits = scale * teacher_image @ teacher_text.t()
        kl = F.kl_div(F.log_softmax(logits, dim=1), F.log_softmax(teacher_logits, dim=1), reduction="sum",
                      log_target=True) / logits.numel()
        loss = (F.cross_entropy(logits, labels)
                + float(params["kl_loss_weight"]) * kl
                + float(params["text_loss_weight"]) * F.l1_loss(text, teacher_text, reduction="mean")
                + float(params["image_loss_weight"]) * F.l1_loss(image, teacher_image, reduction="mean"))
        return loss, logits

    def epoch_end(self, epoch: int, epochs: int) -> None:
        """Accumulate w_e * prompts; after the last epoch the prompts become the aggregate (what gets tested).
        Without GPA (gpa: false, the ablation's row 2) the last epoch's prompts are tested as they are."""
        if not self.params.get("gpa", True):
            return
        weight = gpa_weights(float(self.params["gpa_mean"]), float(self.params["gpa_std"]), epochs)[epoch]
        named = self.named_trainable_parameters()
        with torch.no_grad():
            if epoch == 0 or self._gpa is None:
                self._gpa = {name: torch.zeros_like(parameter) for name, parameter in named}
            for name, parameter in named:
                self._gpa[name] = self._gpa[name] + weight * parameter.detach()
            if epoch == epochs - 1:
                for name, parameter in named:
                    parameter.copy_(self._gpa[name])

    def extra_state(self) -> dict[str, Any]:
        if self._gpa is None:
            return {}
        return {"gpa": {name: tensor.detach().cpu().clone() for name, tensor in self._gpa.items()}}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        gpa = state.get("gpa")
        self._gpa = None if gpa is None else {name: tensor.to(self.clip.device).clone() for name, tensor in gpa.items()}


# ------------------------------------------------------------------------------------------ MaPLe
class MaPLe(ContextMethod):
    """MaPLe (§1.6): deep text prompts whose linear projections are the vision prompts (no own vision params)."""

    name = "maple"

    def build(self) -> None:
        params, dims = self.params, self.clip.dims
        if not self.clip.is_vit:
            raise ConfigError("maple couples text prompts into the image tower, which needs a ViT CLIP (got a ResNet)")
        n_ctx, depth = int(params["n_ctx"]), int(params["depth"])
        _check_depth("depth", depth, min(dims.text_layers, dims.vision_layers))
        init = vl_context(self.clip, self.tokenizer, n_ctx, str(params["ctx_init"]))
        self._init_context(init)
        self.proj = nn.Linear(dims.text_width, dims.vision_width)
        self.compound_prompts_text = nn.ParameterList(
            [random_prompt(n_ctx, dims.text_width) for _ in range(depth - 1)])
        coupling = nn.Linear(dims.text_width, dims.vision_width)
        self.compound_prompt_projections = nn.ModuleList([copy.deepcopy(coupling) for _ in range(depth - 1)])

    def text_features(self) -> Tensor:
        return self.clip.encode_text_embeddings(self.prompts.assemble(self.ctx), self.prompts.tokens,
                                                list(self.compound_prompts_text), self.n_ctx)

    def image_features(self, images: Tensor) -> Tensor:
        deep = [layer(prompt) for layer, prompt in zip(self.compound_prompt_projections, self.compound_prompts_text,
                                                       strict=True)]
        return self.clip.encode_image(images, self.proj(self.ctx), deep)


METHODS: dict[str, type[ClipMethod]] = {
    method.name: method for method in (ZeroShotCLIP, ZeroShotEnsembleCLIP, CoOp, ProDA, CoCoOp, IVLP, MaPLe,
                                       PromptSRC)
}


def build_method(name: str, clip: PromptedCLIP, tokenizer: Tokenizer, classnames: list[str],
                 params: dict[str, Any], dataset: str, text_cache: TextCache | None = None) -> ClipMethod:
    """Look a method up by name (clear error for unknown names) and build it."""
    if name not in METHODS:
        raise ConfigError(unknown_name_message("CLIP method", name, list(METHODS)))
    return METHODS[name](clip, tokenizer, classnames, params, dataset, text_cache)
