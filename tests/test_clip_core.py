"""CLIP prompt-learning core: the deep-prompt wrapper against open_clip and a hand-written forward, parameter
counts against the spec's formulas, one SGD step per method, class-set rebuilds, GPA, templates, the offline
weight error and the linear-probe C search. Everything runs on the tiny random-init CLIP on CPU.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from open_clip.model import CLIP, CLIPTextCfg, CLIPVisionCfg

from vrbench.clip import linear_probe
from vrbench.clip.encoders import PromptedCLIP
from vrbench.clip.linear_probe import COARSE_C, fewshot_val_shots, fit_linear_probe
from vrbench.clip.methods import DEFAULT_PARAMS, METHODS, RECIPES, ClipMethod, gpa_weights
from vrbench.clip.models import CLIP_MODELS, ClipModelSpec, clip_dims, get_clip_tokenizer, load_clip
from vrbench.clip.templates import (
    ILM_81,
    OPENAI_80,
    PROMPTSRC_60,
    SELECT_7,
    classname_for_prompt,
    custom_template,
    ensemble_templates,
    vr_classname,
)
from vrbench.errors import ConfigError, MissingResourceError

NAMES = ["golden_retriever", "tabby cat", "airliner"]
OTHER_NAMES = ["sea_lion", "fire truck"]
TRAINABLE = ["coop", "cocoop", "ivlp", "maple", "promptsrc", "proda"]


@pytest.fixture(scope="module")
def batch() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(10)
    return torch.randn(4, 3, 32, 32, generator=generator), torch.tensor([0, 1, 2, 0])


class MemoTextCache:
    """A minimal text cache (the interface the integrator implements): frozen features computed once per key."""

    def __init__(self) -> None:
        self.store: dict[tuple, torch.Tensor] = {}

    def text(self, model_key: str, templates: list[str], classnames: list[str], compute) -> torch.Tensor:
        key = (model_key, tuple(templates), tuple(classnames))
        if key not in self.store:
            self.store[key] = compute()
        return self.store[key]


SHARED_CACHE = MemoTextCache()  # PromptSRC's 60-template teacher is then encoded once per class list


def build(name: str, clip: PromptedCLIP, tokenizer, params: dict | None = None, classnames: list[str] = NAMES,
          dataset: str = "oxfordpets", text_cache=SHARED_CACHE, seed: int = 0) -> ClipMethod:
    torch.manual_seed(seed)
    params = {"backbone": "clip_tiny", **(params or {})}
    return METHODS[name](clip, tokenizer, list(classnames), params, dataset, text_cache)


def n_trainable(method: ClipMethod) -> int:
    return sum(p.numel() for p in method.trainable_parameters())


# ------------------------------------------------------------------------------------------ hand-written forwards
def reference_image(clip: PromptedCLIP, images: torch.Tensor, shallow: torch.Tensor | None = None,
                    deep: list[torch.Tensor] = ()) -> torch.Tensor:
    """Spec §6.2 recipe: prompts appended after the positional embedding, deep ones replace the last n tokens."""
    visual = clip.model.visual
    x = visual.conv1(images).flatten(2).transpose(1, 2)
    x = torch.cat([visual.class_embedding.expand(x.shape[0], 1, -1), x], 1) + visual.positional_embedding
    n = 0 if shallow is None else shallow.shape[0]
    if shallow is not None:
        x = torch.cat([x, shallow.expand(x.shape[0], -1, -1)], 1)
    x = visual.ln_pre(x)
    for layer, block in enumerate(visual.transformer.resblocks):
        if 1 <= layer <= len(deep):
            x = torch.cat([x[:, :-n], deep[layer - 1].expand(x.shape[0], -1, -1)], 1)
        x = block(x)
    return visual.ln_post(x)[:, 0] @ visual.proj


def reference_text(clip: PromptedCLIP, tokens: torch.Tensor, ctx: torch.Tensor, deep: list[torch.Tensor] = ()
                   ) -> torch.Tensor:
    model = clip.model
    n = ctx.shape[0]
    e = model.token_embedding(tokens)
    x = torch.cat([e[:, :1], ctx.expand(len(tokens), -1, -1), e[:, 1 + n:]], 1) + model.positional_embedding
    for layer, block in enumerate(model.transformer.resblocks):
        if 1 <= layer <= len(deep):
            x = torch.cat([x[:, :1], deep[layer - 1].expand(len(tokens), -1, -1), x[:, 1 + n:]], 1)
        x = block(x, attn_mask=model.attn_mask)
    return model.ln_final(x)[torch.arange(len(tokens)), tokens.argmax(-1)] @ model.text_projection


# ------------------------------------------------------------------------------------------ wrapper
def test_no_prompts_is_exactly_open_clip(tiny: PromptedCLIP, tokenizer, batch) -> None:
    images, _ = batch
    tokens = tokenizer(["a photo of a dog.", "itap of a tabby cat."])
    with torch.no_grad():
        assert torch.equal(tiny.encode_image(images), tiny.model.encode_image(images))
        assert torch.equal(tiny.encode_text(tokens), tiny.model.encode_text(tokens))
        via_embeddings = tiny.encode_text_embeddings(tiny.token_embedding(tokens), tokens)
        assert (via_embeddings - tiny.model.encode_text(tokens)).abs().max() < 1e-6


def test_visual_prompts_go_after_positions_and_before_ln_pre(tiny: PromptedCLIP, batch) -> None:
    images, _ = batch
    torch.manual_seed(3)
    shallow = torch.randn(2, tiny.dims.vision_width)
    deep = [torch.randn(2, tiny.dims.vision_width) for _ in range(4)]
    with torch.no_grad():
        ours = tiny.encode_image(images, shallow)
        assert (ours - reference_image(tiny, images, shallow)).abs().max() < 1e-5
        deep_ours = tiny.encode_image(images, shallow, deep)
        assert (deep_ours - reference_image(tiny, images, shallow, deep)).abs().max() < 1e-5
        # control: the same prompt inserted after ln_pre gives a different result, so the comparison can fail
        visual = tiny.model.visual
        wrong = torch.cat([visual._embeds(images), shallow.expand(len(images), -1, -1)], 1)
        wrong = visual.ln_post(visual.transformer(wrong))[:, 0] @ visual.proj
        assert (ours - wrong).abs().max() > 1e-3
        assert (ours - tiny.encode_image(images)).abs().max() > 1e-3


def test_deep_prompts_replace_instead_of_prepending(tiny: PromptedCLIP, batch) -> None:
    images, _ = batch
    lengths: list[int] = []
    hooks = [block.register_forward_pre_hook(lambda _m, args: lengths.append(args[0].shape[1]))
             for block in tiny.model.visual.transformer.resblocks]
    shallow = torch.randn(3, tiny.dims.vision_width)
    deep = [torch.randn(3, tiny.dims.vision_width) for _ in range(8)]
    try:
        with torch.no_grad():
            tiny.encode_image(images, shallow, deep)
    finally:
        for hook in hooks:
            hook.remove()
    patches = (32 // 8) ** 2
    assert lengths == [1 + patches + 3] * 12


def test_deep_text_prompts_match_reference(tiny: PromptedCLIP, tokenizer) -> None:
    tokens = tokenizer(["X X X X tabby cat.", "X X X X airliner."])
    ctx = torch.randn(4, tiny.dims.text_width)
    deep = [torch.randn(4, tiny.dims.text_width) for _ in range(8)]
    embeddings = tiny.token_embedding(tokens)
    prompts = torch.cat([embeddings[:, :1], ctx.expand(2, -1, -1), embeddings[:, 5:]], 1)
    with torch.no_grad():
        ours = tiny.encode_text_embeddings(prompts, tokens, deep, n_ctx=4)
        assert (ours - reference_text(tiny, tokens, ctx, deep)).abs().max() < 1e-5
        assert (ours - tiny.encode_text_embeddings(prompts, tokens, deep[:2], n_ctx=4)).abs().max() > 1e-4


def test_per_sample_prompts_equal_shared_prompts_sample_by_sample(tiny: PromptedCLIP, batch) -> None:
    images, _ = batch
    images = images[:2]
    shallow = torch.randn(2, 2, tiny.dims.vision_width)
    deep = [torch.randn(2, 2, tiny.dims.vision_width) for _ in range(3)]
    with torch.no_grad():
        joint = tiny.encode_image(images, shallow, deep)
        for i in range(2):
            alone = tiny.encode_image(images[i:i + 1], shallow[i], [d[i] for d in deep])
            assert (joint[i] - alone[0]).abs().max() < 1e-5


def test_prompt_depth_beyond_the_model_is_a_config_error(tiny: PromptedCLIP, tokenizer, batch) -> None:
    with pytest.raises(ConfigError, match="12 transformer layers"):
        build("ivlp", tiny, tokenizer, {"depth_vision": 13})
    with pytest.raises(ConfigError, match="12 transformer layers"):
        build("maple", tiny, tokenizer, {"depth": 13})
    with pytest.raises(ConfigError, match="the vision tower has 12"):
        tiny.encode_image(batch[0], torch.zeros(1, 48), [torch.zeros(1, 48)] * 12)


def test_resnet_clip_allows_only_unprompted_images(tokenizer) -> None:
    torch.manual_seed(0)
    model = CLIP(embed_dim=64, quick_gelu=True, vision_cfg=CLIPVisionCfg(layers=(1, 1, 1, 1), width=8, image_size=64),
                 text_cfg=CLIPTextCfg(width=32, heads=2, layers=2))
    rn50 = PromptedCLIP(model.eval())  # a miniature of RN50's ModifiedResNet tower (BatchNorm, attention pool)
    dims = clip_dims(rn50.model)
    assert (dims.vision_width, dims.vision_layers, dims.embed_dim, dims.text_width) == (None, None, 64, 32)
    images = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(rn50.encode_image(images), rn50.model.encode_image(images))
    with pytest.raises(ConfigError, match="ViT"):
        rn50.encode_image(images, torch.zeros(2, 64))
    with pytest.raises(ConfigError, match="ViT"):
        build("maple", rn50, tokenizer, classnames=["cat"])
    coop = build("coop", rn50, tokenizer, classnames=["cat", "dog"])
    coop.train()
    assert not rn50.training  # the frozen encoder (BatchNorm) stays in eval when the method trains


# ------------------------------------------------------------------------------------------ parameter counts
def expected_counts(text: int, vision: int, embed: int, classes: int) -> dict[str, int]:
    """Spec §1.3-1.7 formulas at the given widths."""
    def vl(depth: int) -> int:
        return 4 * text + (depth - 1) * 4 * text + 4 * vision + (depth - 1) * 4 * vision

    def maple(depth: int) -> int:
        return depth * (2 * text + text * vision + vision)

    hidden = embed // 16
    return {
        "coop": 16 * text, "coop_csc": 16 * text * classes, "coop_ctxv1": 4 * text,
        "cocoop": 4 * text + embed * hidden + hidden + hidden * text + text,
        "ivlp": vl(9), "promptsrc": vl(9), "promptsrc_depth3": vl(3), "maple": maple(9), "maple_depth3": maple(3),
        "proda": 32 * 16 * text,  # K = 32 prompts of 16 context vectors
    }


COUNT_CASES = {
    "coop": ("coop", {}), "coop_csc": ("coop", {"csc": True}), "coop_ctxv1": ("coop", {"ctx_init": "a photo of a"}),
    "cocoop": ("cocoop", {}), "ivlp": ("ivlp", {}), "promptsrc": ("promptsrc", {}),
    "promptsrc_depth3": ("promptsrc", {"depth_text": 3, "depth_vision": 3}),
    "maple": ("maple", {}), "maple_depth3": ("maple", {"depth": 3}), "proda": ("proda", {}),
}


class ZeroTextCache:
    """Stands in for the integrator's cache; returns zeros so no frozen text is encoded (slow at ViT-B width)."""

    def __init__(self, width: int) -> None:
        self.width = width
        self.calls: list[tuple[str, list[str], list[str]]] = []

    def text(self, model_key: str, templates: list[str], classnames: list[str], compute) -> torch.Tensor:
        self.calls.append((model_key, templates, classnames))
        return torch.zeros(len(templates), len(classnames), self.width)


def test_trainable_counts_on_tiny_follow_the_formulas(tiny: PromptedCLIP, tokenizer) -> None:
    dims = tiny.dims
    expected = expected_counts(dims.text_width, dims.vision_width, dims.embed_dim, len(NAMES))
    for case, (method, params) in COUNT_CASES.items():
        assert n_trainable(build(method, tiny, tokenizer, params)) == expected[case], case
    assert n_trainable(build("zeroshot", tiny, tokenizer)) == 0


def test_trainable_counts_at_vit_b16_dimensions() -> None:
    clip = PromptedCLIP(load_clip("clip_tiny_b16dims"))
    tokenizer = get_clip_tokenizer("clip_tiny_b16dims")
    spec_numbers = {"coop": 8_192, "coop_csc": 8_192 * len(NAMES), "coop_ctxv1": 2_048, "cocoop": 35_360,
                    "ivlp": 46_080, "promptsrc": 46_080, "promptsrc_depth3": 15_360, "maple": 3_555_072,
                    "maple_depth3": 1_185_024, "proda": 262_144}
    assert expected_counts(512, 768, 512, len(NAMES)) == spec_numbers
    cache = ZeroTextCache(512)
    for case, (method, params) in COUNT_CASES.items():
        assert n_trainable(build(method, clip, tokenizer, params, text_cache=cache)) == spec_numbers[case], case


# ------------------------------------------------------------------------------------------ training
@pytest.mark.parametrize("name", TRAINABLE)
def test_one_sgd_step_lowers_the_loss(name: str, tiny: PromptedCLIP, tokenizer, batch) -> None:
    images, labels = batch
    method = build(name, tiny, tokenizer)
    method.train()
    optimizer = torch.optim.SGD(method.trainable_parameters(), lr=RECIPES[name]["lr"], momentum=0.9,
                                weight_decay=5e-4)
    torch.manual_seed(0)  # ProDA draws its prompts per step from the global RNG: the same draw before and after
    loss, logits = method.training_loss(images, labels)
    assert logits.shape == (4, len(NAMES))
    optimizer.zero_grad()
    loss.backward()
    for param_name, parameter in method.named_trainable_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, param_name
    assert all(p.grad is None for p in tiny.parameters())
    method.eval()
    with torch.no_grad():
        before_eval = method(images)
    optimizer.step()
    method.train()
    torch.manual_seed(0)
    with torch.no_grad():
        after, _ = method.training_loss(images, labels)
    assert after.item() < loss.item()
    method.eval()
    with torch.no_grad():
        assert (method(images) - before_eval).abs().max() > 0  # no stale memoized text features


def test_zero_shot_uses_the_custom_template_and_the_cache(tiny: PromptedCLIP, tokenizer, batch) -> None:
    images, _ = batch
    cache = ZeroTextCache(tiny.dims.embed_dim)
    recorded: list = []

    class PassThrough:
        def text(self, model_key, templates, classnames, compute):
            recorded.append((model_key, templates, classnames))
            return compute()

    method = build("zeroshot", tiny, tokenizer, {"backbone": "clip_tiny"}, dataset="dtd", text_cache=PassThrough())
    assert recorded == [("clip_tiny", ["{} texture."], ["golden retriever", "tabby cat", "airliner"])]
    with torch.no_grad():
        text = F.normalize(tiny.model.encode_text(tokenizer([f"{n} texture." for n in recorded[0][2]])), dim=-1)
        expected = tiny.logit_scale() * F.normalize(tiny.model.encode_image(images), dim=-1) @ text.t()
        assert (method(images) - expected).abs().max() < 1e-5
    ensemble = build("zeroshot_ensemble", tiny, tokenizer, dataset="dtd", text_cache=cache)
    assert cache.calls[-1][1] == [*SELECT_7, "{} texture."]
    assert not ensemble.trains and not ensemble.changes_image_path


def test_ensemble_normalizes_each_template_before_averaging(tiny: PromptedCLIP, tokenizer) -> None:
    method = build("zeroshot_ensemble", tiny, tokenizer, dataset="imagenet")
    with torch.no_grad():
        per_template = torch.stack([F.normalize(tiny.encode_text(tokenizer([t.format(n) for n in
                                                                            method.prompt_classnames()])), dim=-1)
                                    for t in SELECT_7])
    assert (method.text_features() - F.normalize(per_template.mean(0), dim=-1)).abs().max() < 1e-6


def test_promptsrc_loss_terms(tiny: PromptedCLIP, tokenizer, batch) -> None:
    images, labels = batch
    method = build("promptsrc", tiny, tokenizer)
    method.train()
    loss, logits = method.training_loss(images, labels)
    with torch.no_grad():
        teacher_text = F.normalize(SHARED_CACHE.text("clip_tiny", PROMPTSRC_60, method.prompt_classnames(),
                                                     lambda: None).mean(0), dim=-1)
        teacher_image = F.normalize(tiny.model.encode_image(images), dim=-1)
        image = F.normalize(method.image_features(images), dim=-1)
        text = F.normalize(method.text_features(), dim=-1)
        scale = tiny.logit_scale()
        p_teacher = (scale * teacher_image @ teacher_text.t()).softmax(-1)
        log_p = (scale * image @ text.t()).log_softmax(-1)
        kl = (p_teacher * (p_teacher.log() - log_p)).sum() / (len(images) * len(NAMES))  # KL(p_zs || p) / (B*C)
        expected = (F.cross_entropy(scale * image @ text.t(), labels) + kl + 25 * (text - teacher_text).abs().mean()
                    + 10 * (image - teacher_image).abs().mean())
    assert torch.allclose(logits, scale * image @ text.t(), atol=1e-5)
    assert abs(loss.item() - expected.item()) < 1e-4
    method.eval()
    with torch.no_grad():
        assert torch.allclose(method(images), logits, atol=1e-5)  # test time: the prompted model only


@pytest.mark.parametrize("position", ["front", "middle"])
def test_coop_class_token_position(position: str, tiny: PromptedCLIP, tokenizer) -> None:
    method = build("coop", tiny, tokenizer, {"n_ctx": 4, "class_token_position": position})
    prompts = method.prompt_embeddings()
    names = tokenizer(["tabby cat"])
    length = int(names[0].argmax()) - 1
    class_embedding = tiny.token_embedding(names)[0, 1:1 + length]
    start = 1 if position == "front" else 1 + 2
    assert torch.equal(prompts[1, start:start + length], class_embedding)
    ctx_slots = [1 + length, 2 + length, 3 + length, 4 + length] if position == "front" else [1, 2, 3 + length,
                                                                                              4 + length]
    assert torch.equal(prompts[1, ctx_slots], method.ctx)
    end = build("coop", tiny, tokenizer, {"n_ctx": 4})
    assert torch.equal(end.prompt_embeddings()[1, 1:5], end.ctx)
    assert torch.equal(prompts[:, 0], end.prompt_embeddings()[:, 0])
    assert torch.equal(prompts[:, 1 + 4 + length:], end.prompt_embeddings()[:, 1 + 4 + length:])


def test_vl_init_takes_the_first_words_and_keeps_the_full_string(tiny: PromptedCLIP, tokenizer) -> None:
    maple = build("maple", tiny, tokenizer)
    words = tiny.token_embedding(tokenizer(["a photo of a"]))[0, 1:3]
    assert torch.equal(maple.ctx.detach(), words)
    assert maple.prompts.tokens[0].tolist()[:6] == tokenizer(["a photo of a golden retriever."])[0].tolist()[:6]
    coop = build("coop", tiny, tokenizer, {"n_ctx": 16, "ctx_init": "a photo of a", "csc": True})
    assert coop.ctx.shape == (4, tiny.dims.text_width) and not coop.csc
    ivlp = build("ivlp", tiny, tokenizer, {"n_ctx_text": 5})
    assert ivlp.prompt_prefix == "X X X X X"  # n_ctx > 4: random context, placeholder text


# ------------------------------------------------------------------------------------------ class sets
@pytest.mark.parametrize("name", TRAINABLE)
def test_set_classnames_rebuilds_and_keeps_learned_prompts(name: str, tiny: PromptedCLIP, tokenizer, batch) -> None:
    images, labels = batch
    method = build(name, tiny, tokenizer)
    loss, _ = method.training_loss(images, labels)
    loss.backward()
    torch.optim.SGD(method.trainable_parameters(), lr=0.001).step()
    learned = {n: p.detach().clone() for n, p in method.named_trainable_parameters()}
    method.set_classnames(OTHER_NAMES)
    method.eval()
    with torch.no_grad():
        logits = method(images)
    assert logits.shape == (4, len(OTHER_NAMES))
    for n, p in method.named_trainable_parameters():
        assert torch.equal(p, learned[n]), n
    fresh = build(name, tiny, tokenizer, classnames=OTHER_NAMES, seed=5)
    fresh.load_state_dict({n: t for n, t in learned.items()}, strict=False)
    fresh.eval()
    with torch.no_grad():
        assert (fresh(images) - logits).abs().max() < 1e-5
    if name == "promptsrc":
        assert method.teacher_text.shape == (len(OTHER_NAMES), tiny.dims.embed_dim)


def test_csc_coop_refuses_another_class_count(tiny: PromptedCLIP, tokenizer) -> None:
    method = build("coop", tiny, tokenizer, {"csc": True})
    with pytest.raises(ConfigError, match="class-specific"):
        method.set_classnames(OTHER_NAMES)
    method.set_classnames(["a", "b", "c"])
    assert method.prompts.count == 3


# ------------------------------------------------------------------------------------------ GPA
def test_gpa_weights_match_the_spec() -> None:
    weights = gpa_weights(15, 1, 20)
    assert [round(w, 3) for w in weights[12:17]] == [0.054, 0.242, 0.399, 0.242, 0.054]
    assert math.isclose(sum(weights), 1.0)
    broad = gpa_weights(6, 10, 20)
    assert broad[5] == max(broad) and round(broad[5], 3) == 0.063 and round(broad[-1], 3) == 0.024


def test_gpa_loads_the_weighted_sum_after_the_last_epoch(tiny: PromptedCLIP, tokenizer) -> None:
    epochs = 5
    method = build("promptsrc", tiny, tokenizer, {"gpa_mean": 3, "gpa_std": 1, "depth_text": 2,
                                                  "depth_vision": 2})
    weights = gpa_weights(3, 1, epochs)
    for epoch in range(epochs):
        with torch.no_grad():
            for parameter in method.trainable_parameters():
                parameter.fill_(epoch + 1.0)
        method.epoch_end(epoch, epochs)
        if epoch < epochs - 1:
            assert all(p.eq(epoch + 1.0).all() for p in method.trainable_parameters())  # untouched until the end
    expected = sum(w * (e + 1.0) for e, w in enumerate(weights))
    for parameter in method.trainable_parameters():
        assert torch.allclose(parameter, torch.full_like(parameter, expected), atol=1e-6)
    assert not math.isclose(expected, epochs)  # the aggregate differs from the last epoch's prompts


def test_gpa_resume_from_extra_state(tiny: PromptedCLIP, tokenizer) -> None:
    params = {"gpa_mean": 2, "gpa_std": 1, "depth_text": 2, "depth_vision": 2}
    values = [0.5, -1.0, 2.0, 3.0]
    straight = build("promptsrc", tiny, tokenizer, params)
    first = build("promptsrc", tiny, tokenizer, params)
    for epoch, value in enumerate(values):
        with torch.no_grad():
            for parameter in straight.trainable_parameters():
                parameter.fill_(value)
        straight.epoch_end(epoch, len(values))
        if epoch < 2:
            with torch.no_grad():
                for parameter in first.trainable_parameters():
                    parameter.fill_(value)
            first.epoch_end(epoch, len(values))
    second = build("promptsrc", tiny, tokenizer, params, seed=9)
    second.load_extra_state(first.extra_state())
    for epoch, value in list(enumerate(values))[2:]:
        with torch.no_grad():
            for parameter in second.trainable_parameters():
                parameter.fill_(value)
        second.epoch_end(epoch, len(values))
    for a, b in zip(straight.trainable_parameters(), second.trainable_parameters(), strict=True):
        assert torch.equal(a, b)


# ------------------------------------------------------------------------------------------ templates, tokenizer
def test_template_lists() -> None:
    assert (len(OPENAI_80), len(SELECT_7), len(PROMPTSRC_60), len(ILM_81)) == (80, 7, 60, 81)
    assert OPENAI_80[0] == "a bad photo of a {}." and OPENAI_80[39] == "a photo of a {}."
    assert OPENAI_80[-2:] == ["a photo of a small {}.", "a tattoo of the {}."]
    assert SELECT_7 == ["itap of a {}.", "a bad photo of the {}.", "a origami {}.", "a photo of the large {}.",
                        "a {} in a video game.", "art of the {}.", "a photo of the small {}."]
    assert PROMPTSRC_60[0] == "a photo of a {}." and PROMPTSRC_60[1:] == OPENAI_80[:39] + OPENAI_80[40:60]
    assert "a jpeg corrupted photo of the {}." not in PROMPTSRC_60 and "a tattoo of the {}." not in PROMPTSRC_60
    assert ILM_81[0] == "This is a photo of a {}." and ILM_81[1:] == OPENAI_80


def test_custom_and_ensemble_templates() -> None:
    assert custom_template("eurosat") == "a centered satellite photo of {}."
    assert custom_template("ucf101") == "a photo of a person doing {}."
    assert custom_template("food101") == "a photo of {}, a type of food."
    assert custom_template("digits") == custom_template("imagenet_r") == "a photo of a {}."
    assert ensemble_templates("imagenet") == SELECT_7
    assert ensemble_templates("oxfordpets") == [*SELECT_7, "a photo of a {}, a type of pet."]
    assert len(ensemble_templates("dtd")) == len(ensemble_templates("dtd")) == 8  # no list mutation
    assert len(SELECT_7) == 7
    assert classname_for_prompt("Apply_Eye_Makeup") == "Apply Eye Makeup"
    assert vr_classname("Apply_Eye-Makeup") == "apply eye makeup"


def test_tokenizer_context_and_eot() -> None:
    tokenizer = get_clip_tokenizer("clip_vit_b16")
    tokens = tokenizer(["a photo of a dog.", "A Photo of a DOG."])
    assert tokens.shape == (2, 77)
    assert torch.equal(tokens[0], tokens[1])  # lowercased
    eot = int(tokens[0].argmax())
    assert tokens[0, 0] == 49406 and tokens[0, eot] == 49407 and eot == 7 and tokens[0, eot + 1:].eq(0).all()


# ------------------------------------------------------------------------------------------ weights
def _offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import huggingface_hub.constants as hf_constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(tmp_path / "hf"))  # a cached copy must not be found
    monkeypatch.delenv("VRBENCH_CLIP_WEIGHTS", raising=False)


def test_missing_pretrained_weights_fail_fast_with_advice(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _offline(monkeypatch, tmp_path)
    start = time.monotonic()
    with pytest.raises(MissingResourceError) as error:
        load_clip("clip_vit_b16")
    assert time.monotonic() - start < 60
    message = str(error.value)
    assert "open_clip.create_model('ViT-B-16-quickgelu', pretrained='openai')" in message
    assert "HF_HOME" in message and "$VRBENCH_CLIP_WEIGHTS/clip_vit_b16.bin" in message
    with pytest.raises(ConfigError, match="unknown CLIP model"):
        load_clip("clip_vit_b61")


def test_weights_file_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _offline(monkeypatch, tmp_path)
    reference = load_clip("clip_tiny")
    with torch.no_grad():
        for parameter in reference.parameters():
            parameter.mul_(0.5)
    torch.save(reference.state_dict(), tmp_path / "clip_tiny_pretrained.bin")
    monkeypatch.setitem(CLIP_MODELS, "clip_tiny_pretrained",
                        ClipModelSpec("clip_tiny_pretrained", "vrbench-tiny-vit", "openai", "test"))
    monkeypatch.setenv("VRBENCH_CLIP_WEIGHTS", str(tmp_path))
    loaded = load_clip("clip_tiny_pretrained")
    assert not loaded.training and not any(p.requires_grad for p in loaded.parameters())
    for (name, a), b in zip(reference.state_dict().items(), loaded.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    (tmp_path / "clip_tiny_pretrained.bin").write_bytes(b"not a checkpoint")
    with pytest.raises(MissingResourceError, match="cannot load CLIP weights"):
        load_clip("clip_tiny_pretrained")


def test_random_init_is_deterministic_and_leaves_the_global_rng_alone() -> None:
    torch.manual_seed(123)
    state = torch.get_rng_state()
    first, second = load_clip("clip_tiny"), load_clip("clip_tiny")
    assert torch.equal(torch.get_rng_state(), state)
    assert all(torch.equal(a, b) for a, b in zip(first.parameters(), second.parameters(), strict=True))
    assert CLIP_MODELS["clip_vit_b16"].model_name == "ViT-B-16-quickgelu"
    assert set(DEFAULT_PARAMS) == set(METHODS)


# ------------------------------------------------------------------------------------------ linear probe
def test_linear_probe_separates_blobs() -> None:
    rng = np.random.default_rng(0)
    centres = rng.normal(0, 10, (3, 8))

    def sample(per_class: int) -> tuple[np.ndarray, np.ndarray]:
        labels = np.repeat(np.arange(3), per_class)
        return centres[labels] + rng.normal(0, 1, (len(labels), 8)), labels

    result = fit_linear_probe(*sample(4), *sample(4), *sample(50))
    assert result["acc"] == 100.0
    assert [r["C"] for r in result["search"] if r["stage"] == "coarse"] == list(COARSE_C)
    assert len([r for r in result["search"] if r["stage"] == "bisect"]) == 8


class FakeClassifier:
    """Predicts correctly for the first k inputs, k falling with |log10 C - 0.5|: a known validation curve."""

    def __init__(self, solver: str, max_iter: int, C: float, **kwargs) -> None:
        assert (solver, max_iter) == ("lbfgs", 1000) and kwargs.get("penalty", "l2") == "l2"
        self.k = 100 - round(10 * abs(math.log10(C) - 0.5))

    def fit(self, x: np.ndarray, y: np.ndarray) -> FakeClassifier:
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        return np.where(x[:, 0] < self.k, 0, 1)


def test_c_search_follows_the_bisection_rule(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(linear_probe, "LogisticRegression", FakeClassifier)
    x = np.arange(100, dtype=float).reshape(-1, 1)
    y = np.zeros(100, dtype=int)
    result = fit_linear_probe(x, y, x, y, x, y, num_steps=3)
    coarse = [r["val_acc"] for r in result["search"] if r["stage"] == "coarse"]
    assert coarse == pytest.approx([45.0, 65.0, 85.0, 95.0, 75.0, 55.0, 35.0])  # best C = 1: interval [0.1, 10]
    steps = [r for r in result["search"] if r["stage"] == "bisect"]
    assert [(round(math.log10(s["C_left"]), 6), round(math.log10(s["C_right"]), 6)) for s in steps] == [
        (-1.0, 1.0), (0.0, 1.0), (0.0, 0.5)]
    assert [round(math.log10(s["C"]), 6) for s in steps] == [1.0, 0.0, 0.5]  # right wins, tie goes left, right
    assert math.isclose(result["C"], 10 ** 0.5) and result["acc"] == 100.0
    assert [fewshot_val_shots(k) for k in (1, 2, 4, 8, 16)] == [1, 2, 4, 4, 4]
