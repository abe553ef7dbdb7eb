"""ProDA (Lu et al., CVPR 2022) and PromptSRC's ablation switches on a tiny random CLIP (issue 24).

ProDA's loss is checked against the paper's formula written out with full covariance matrices, and against a
Monte Carlo estimate of the expected cross-entropy it bounds; the switches against what the full method does.
Both run the base-to-novel protocol end to end through the CLI.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from tests.conftest import run_cli
from vrbench.clip.encoders import PromptedCLIP
from vrbench.clip.methods import METHODS, ClipMethod
from vrbench.clip.templates import DEFAULT_TEMPLATE, PROMPTSRC_60
from vrbench.suite import load_suite

NAMES = ["golden_retriever", "tabby cat", "airliner", "sea lion"]


@pytest.fixture(scope="module")
def batch() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(3)
    return torch.randn(5, 3, 32, 32, generator=generator), torch.tensor([0, 1, 2, 3, 1])


def build(name: str, clip: PromptedCLIP, tokenizer, params: dict | None = None, seed: int = 0) -> ClipMethod:
    torch.manual_seed(seed)
    return METHODS[name](clip, tokenizer, list(NAMES), {"backbone": "clip_tiny", **(params or {})}, "oxfordpets")


def spread_prompts(method: ClipMethod, scale: float = 0.5) -> None:
    """Prompts far enough apart that their class embeddings differ visibly (random init is N(0, 0.02))."""
    with torch.no_grad():
        method.ctx.normal_(0, scale, generator=torch.Generator().manual_seed(1))


# ------------------------------------------------------------------------------------------ ProDA
def test_proda_loss_is_the_papers_surrogate_with_full_covariances(tiny, tokenizer, batch) -> None:
    images, labels = batch
    method = build("proda", tiny, tokenizer, {"n_prompts": 6, "n_ctx": 4, "prompt_batch": 6})
    spread_prompts(method)
    loss, logits = method.training_loss(images, labels)
    with torch.no_grad():
        w = method.prompt_text_features().double()  # (K, C, d) unit vectors
        z = F.normalize(tiny.encode_image(images), dim=-1).double()
        s = float(tiny.logit_scale())
        k, c, d = w.shape
        mu = w.mean(0)
        centred = (w - mu).reshape(k, c * d)
        sigma = (centred.t() @ centred / k).reshape(c, d, c, d)  # the empirical covariance (1/K) of all classes
        rows = []
        for b, y in enumerate(labels.tolist()):
            row = []
            for j in range(c):
                block = sigma[j, :, j] + sigma[y, :, y] - sigma[j, :, y] - sigma[y, :, j]
                row.append(s * mu[j] @ z[b] + 0.5 * s * s * z[b] @ block @ z[b])
            rows.append(torch.stack(row))
        expected = F.cross_entropy(torch.stack(rows), labels)
    assert abs(loss.item() - expected.item()) < 1e-4 * max(1.0, expected.item())
    assert torch.allclose(logits.double(), s * z @ mu.t(), atol=1e-4)  # the reported logits: the mean embedding


def test_proda_surrogate_bounds_the_expected_cross_entropy_under_the_gaussian(tiny, tokenizer, batch) -> None:
    images, labels = batch
    method = build("proda", tiny, tokenizer, {"n_prompts": 6, "n_ctx": 4, "prompt_batch": 6})
    spread_prompts(method)
    with torch.no_grad():
        loss, _ = method.training_loss(images, labels)
        w = method.prompt_text_features()
        z = F.normalize(tiny.encode_image(images), dim=-1)
        mu, k = w.mean(0), w.shape[0]
        noise = torch.randn(4000, k, generator=torch.Generator().manual_seed(0))
        samples = mu + torch.einsum("nk,kcd->ncd", noise, w - mu) / k ** 0.5  # w ~ N(mu, Sigma), Sigma of rank K-1
        logits = tiny.logit_scale() * torch.einsum("bd,ncd->nbc", z, samples)
        expected_ce = F.cross_entropy(logits.reshape(-1, len(NAMES)), labels.repeat(4000)).item()
        mean_ce = F.cross_entropy(tiny.logit_scale() * z @ mu.t(), labels).item()
    assert mean_ce < expected_ce <= loss.item() + 1e-3  # Jensen: E[CE] at most the bound; the spread costs
    assert loss.item() - mean_ce > 1e-3  # the variance term is active when prompts differ


def test_identical_prompts_reduce_proda_to_one_prompts_cross_entropy(tiny, tokenizer, batch) -> None:
    images, labels = batch
    method = build("proda", tiny, tokenizer, {"n_prompts": 4, "n_ctx": 4, "prompt_batch": 4})
    with torch.no_grad():
        method.ctx.copy_(method.ctx[:1].expand_as(method.ctx))
    method.positions = ["end"] * 4  # the same prompt four times (the class name in the same place too)
    loss, logits = method.training_loss(images, labels)
    assert abs(loss.item() - F.cross_entropy(logits, labels).item()) < 1e-5


def test_proda_prompts_put_the_class_name_after_or_inside_the_context(tiny, tokenizer, batch) -> None:
    method = build("proda", tiny, tokenizer)
    assert tuple(method.ctx.shape) == (32, 16, tiny.dims.text_width)
    assert method.positions == ["end"] * 16 + ["middle"] * 16
    images, labels = batch
    spread_prompts(method)
    method.eval()
    with torch.no_grad():
        features = method.prompt_text_features()
        mu = features.mean(0)
        logits = method(images)
    assert features.shape == (32, len(NAMES), tiny.dims.embed_dim)
    assert torch.allclose(features.norm(dim=-1), torch.ones(32, len(NAMES)), atol=1e-5)
    # testing reads the mean embedding as estimated (not renormalised)
    z = F.normalize(tiny.encode_image(images), dim=-1)
    assert torch.allclose(logits, tiny.logit_scale() * z @ mu.t(), atol=1e-4)
    assert (mu.norm(dim=-1) < 1 - 1e-3).all()


def test_each_step_estimates_the_gaussian_from_prompt_batch_random_prompts(tiny, tokenizer, batch) -> None:
    images, labels = batch
    method = build("proda", tiny, tokenizer, {"n_prompts": 6, "n_ctx": 4, "prompt_batch": 2})
    spread_prompts(method)
    touched = set()
    for step in range(6):
        method.ctx.grad = None
        loss, _ = method.training_loss(images, labels)
        loss.backward()
        moved = {k for k in range(6) if method.ctx.grad[k].abs().sum() > 0}
        assert len(moved) == 2, step  # only the two drawn prompts enter this step's mean and covariance
        touched |= moved
    assert len(touched) > 2  # a new draw every step
    torch.manual_seed(7)
    first, _ = method.training_loss(images, labels)
    torch.manual_seed(7)
    again, _ = method.training_loss(images, labels)
    assert first.item() == again.item()  # the draw comes from the global RNG the job seeds and checkpoints


def test_proda_needs_at_least_two_prompts(tiny, tokenizer) -> None:
    from vrbench.errors import ConfigError

    with pytest.raises(ConfigError, match="n_prompts must be at least 2"):
        build("proda", tiny, tokenizer, {"n_prompts": 1})
    with pytest.raises(ConfigError, match="prompt_batch must be between 2 and n_prompts"):
        build("proda", tiny, tokenizer, {"n_prompts": 4, "prompt_batch": 5})


# ------------------------------------------------------------------------------------------ PromptSRC switches
def test_without_textual_diversity_the_teacher_is_one_template(tiny, tokenizer) -> None:
    full = build("promptsrc", tiny, tokenizer, {"depth_text": 2, "depth_vision": 2})
    single = build("promptsrc", tiny, tokenizer, {"depth_text": 2, "depth_vision": 2, "textual_diversity": False})
    assert full.teacher_templates() == PROMPTSRC_60 and single.teacher_templates() == [DEFAULT_TEMPLATE]
    one = single.frozen_text([DEFAULT_TEMPLATE], single.prompt_classnames())[0]
    assert torch.allclose(single.teacher_text, one)
    assert (full.teacher_text - single.teacher_text).abs().max() > 1e-4


def test_without_gpa_the_last_epochs_prompts_are_tested(tiny, tokenizer) -> None:
    params = {"gpa_mean": 2, "gpa_std": 1, "depth_text": 2, "depth_vision": 2}
    for gpa, expected in ((False, 3.0), (True, None)):
        method = build("promptsrc", tiny, tokenizer, {**params, "gpa": gpa})
        for epoch in range(3):
            with torch.no_grad():
                for parameter in method.trainable_parameters():
                    parameter.fill_(epoch + 1.0)
            method.epoch_end(epoch, 3)
        values = {round(p.flatten()[0].item(), 6) for p in method.trainable_parameters()}
        if expected is not None:
            assert values == {expected} and method.extra_state() == {}
        else:
            assert values != {3.0}  # the Gaussian aggregate replaced the last epoch's prompts


# ------------------------------------------------------------------------------------------ end to end
BASE_TO_NOVEL = """
name: b2n
protocol: base2novel
grid:
  - {method: proda, backbone: clip_tiny, dataset: digits, shots: 2, seed: 1,
     set: {n_prompts: 3, n_ctx: 4, prompt_batch: 2}}
  - {method: promptsrc, backbone: clip_tiny, dataset: digits, shots: 2, seed: 1,
     set: {gpa: false, textual_diversity: false, label: promptsrc IVLP+L_SCL}}
defaults: {epochs: 1, batch_size: 8, subset: {test: 40}, test_batch_size: 40}
"""


def test_proda_and_the_switched_promptsrc_run_base_to_novel_end_to_end(tmp_path: Path) -> None:
    """Training on the base classes, the learned prompts reloaded for the novel classes, through the CLI."""
    suite = tmp_path / "suite.yaml"
    suite.write_text(BASE_TO_NOVEL, encoding="utf-8")
    results = tmp_path / "results"
    run = run_cli("run", str(suite), "--results", str(results), "--threads", "1", cwd=tmp_path)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    jobs = load_suite(suite).jobs
    assert [(j.method, j.config["stage"]) for j in jobs] == [
        ("proda", "train"), ("proda", "eval"), ("promptsrc IVLP+L_SCL", "train"), ("promptsrc IVLP+L_SCL", "eval")]
    for train, evaluation in (jobs[:2], jobs[2:]):
        directory = results / "runs" / train.run_id
        result = json.loads((directory / "result.json").read_text())
        assert result["trainable_params"] > 0 and 0 <= result["final_acc"] <= 100
        prompts = torch.load(directory / "prompts.pt", weights_only=True)["prompts"]
        novel = results / "runs" / evaluation.run_id
        assert evaluation.config["train_run"] == train.run_id
        assert json.loads((novel / "data.json").read_text())["classes"] == ["5", "6", "7", "8", "9"]
        assert 0 <= json.loads((novel / "result.json").read_text())["final_acc"] <= 100
        if train.method == "proda":
            assert tuple(prompts["ctx"].shape) == (3, 4, 32) and result["trainable_params"] == 3 * 4 * 32
