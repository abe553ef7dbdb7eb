"""The VR loop's speed levers keep its numbers: bitwise where only memory or autograd bookkeeping changes, within
1e-4 of the logits where BatchNorm folding changes the rounding (vrbench.engine.speed)."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
from torch import nn

from vrbench.backbones.efficientnet_lite import load_efficientnet_lite
from vrbench.engine import loop
from vrbench.engine.border import SHARE_ENV
from vrbench.engine.fusion import FUSE_ENV
from vrbench.engine.loop import Job
from vrbench.engine.speed import FOLD_ENV, fold_batchnorm, fold_enabled, keep_freed_memory
from vrbench.methods.padding import PaddingVR
from vrbench.store.rundir import ENV, read_json, run_dir, write_config
from vrbench.suite import parse_suite


@pytest.fixture(scope="module")
def lite0() -> nn.Module:
    return load_efficientnet_lite("efficientnet_lite0").requires_grad_(False)


def _batch(canvas: int = 64) -> tuple[PaddingVR, torch.Tensor]:
    torch.manual_seed(0)
    vr = PaddingVR(32, canvas, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
    with torch.no_grad():
        vr.program.normal_()  # a pattern that has learned something, not the grey start
    return vr, torch.rand(4, 3, 32, 32)


def test_folded_lite0_matches_the_eager_model_within_1e_4(lite0: nn.Module) -> None:
    folded, pairs = fold_batchnorm(lite0)
    assert pairs == 49  # stem, head, and every expand/depthwise/project conv of the 16 blocks
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    folded = folded.to(memory_format=torch.channels_last)
    vr, x = _batch()
    with torch.no_grad():
        eager = lite0(vr(x))
        fast = folded(vr(x).contiguous(memory_format=torch.channels_last))
    assert eager.argmax(1).tolist() == fast.argmax(1).tolist()
    assert (eager - fast).abs().max().item() < 1e-4
    assert not torch.equal(eager, fast)  # a rounding change: VRBENCH_FOLD_BN=0 gives the unfolded bits


def test_folded_pattern_gradient_points_the_same_way(lite0: nn.Module) -> None:
    folded = fold_batchnorm(lite0)[0].to(memory_format=torch.channels_last)
    vr, x = _batch()
    grads = []
    for model in (lite0, folded):
        vr.program.grad = None
        model(vr(x).contiguous(memory_format=torch.channels_last))[:, :10].logsumexp(1).sum().backward()
        grads.append(vr.program.grad.clone())
    cosine = nn.functional.cosine_similarity(grads[0].flatten(), grads[1].flatten(), dim=0).item()
    assert cosine > 0.999


def test_fold_leaves_models_without_a_conv_bn_pair_alone() -> None:
    linear = nn.Sequential(nn.Linear(4, 4), nn.ReLU())
    assert fold_batchnorm(linear) == (linear, 0)

    class Shared(nn.Module):  # the conv's output feeds the BN and a skip: folding would change the skip
        def __init__(self) -> None:
            super().__init__()
            self.conv, self.bn = nn.Conv2d(3, 3, 1), nn.BatchNorm2d(3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = self.conv(x)
            return self.bn(y) + y

    shared = Shared().eval()
    assert fold_batchnorm(shared) == (shared, 0)


def test_fold_is_on_by_default_and_can_be_switched_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(FOLD_ENV, raising=False)
    assert fold_enabled()
    monkeypatch.setenv(FOLD_ENV, "1")
    assert fold_enabled()
    for off in ("0", "off", "False"):
        monkeypatch.setenv(FOLD_ENV, off)
        assert not fold_enabled()


def test_inference_mode_and_kept_memory_give_bitwise_the_same_logits(lite0: nn.Module) -> None:
    model = copy.deepcopy(lite0).to(memory_format=torch.channels_last)
    vr, x = _batch()
    with torch.no_grad():
        reference = model(vr(x).contiguous(memory_format=torch.channels_last))
    try:
        assert keep_freed_memory(True)  # glibc on the Linux machines vrbench runs on
        with torch.inference_mode():
            kept = model(vr(x).contiguous(memory_format=torch.channels_last))
    finally:
        keep_freed_memory(False)
    assert torch.equal(reference, kept)


def test_stacked_inference_batches_give_bitwise_the_same_logits(lite0: nn.Module) -> None:
    """An eval-mode convnet computes each image on its own: three batches of 32 through the model at once give the
    same bits as one at a time (unfolded and folded), which is what lets the engine stack its inference passes."""
    vr, _ = _batch()
    torch.manual_seed(1)
    x = torch.rand(96, 3, 32, 32)
    for model in (copy.deepcopy(lite0), fold_batchnorm(lite0)[0]):
        model = model.to(memory_format=torch.channels_last)
        with torch.inference_mode():
            inputs = vr(x).contiguous(memory_format=torch.channels_last)
            stacked = model(inputs)
            one_by_one = torch.cat([model(inputs[i:i + 32]) for i in range(0, 96, 32)])
        assert torch.equal(stacked, one_by_one)


def _finished_job(tmp_path: Path, grid: str, monkeypatch: pytest.MonkeyPatch, inference_batch: int = 128,
                  fuse: bool = True, share: bool = True, epochs: int = 2, canvas: int = 64) -> Job:
    monkeypatch.setattr(loop, "INFERENCE_BATCH", inference_batch)
    monkeypatch.setenv(FUSE_ENV, "1" if fuse else "0")
    monkeypatch.setenv(SHARE_ENV, "1" if share else "0")
    suite = parse_suite(f"""
name: t
grid: {grid}
defaults: {{epochs: {epochs}, batch_size: 32, subset: {{train: 100, test: 70}}, milestones: []}}
overrides: [{{match: {{dataset: digits}}, set: {{image_size: 32, canvas: {canvas}}}}}]
""")
    (spec,) = suite.jobs
    directory = run_dir(tmp_path / f"results-{inference_batch}-{fuse}-{share}", spec.run_id)
    write_config(directory, spec.run_id, spec.method, spec.config, {"device": "cpu", "threads": 2})
    job = Job(directory)
    job.run()
    return job


@pytest.mark.parametrize("grid", [
    "{input: padding, mapping: ilm, backbone: efficientnet_lite0, dataset: digits, seed: 0}",
    # random crops and flips in the mapping pass: the draws must stay those of the training batches
    "{input: full, mapping: blm, backbone: efficientnet_lite0, dataset: digits, seed: 0, set: {resolution: 48}}",
])
def test_a_job_with_stacked_inference_passes_ends_with_the_same_numbers(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, grid: str) -> None:
    # without the shared border, which a batch of one cannot use: this test is about stacking alone
    one, stacked = (_finished_job(tmp_path, grid, monkeypatch, inference_batch=size, share=False)
                    for size in (1, 128))
    assert stacked.inference_batch == 128 and one.inference_batch == 32  # never below the training batch
    _assert_same_numbers(one, stacked)


def _assert_same_numbers(one: Job, other: Job) -> None:
    numbers = [[{k: v for k, v in row.items() if k != "seconds"} for row in job.history] for job in (one, other)]
    assert numbers[0] == numbers[1]  # every epoch's loss and accuracies, exactly
    assert torch.equal(one.mapping.mapping, other.mapping.mapping)
    for a, b in zip(one.input.parameters(), other.input.parameters(), strict=True):
        assert torch.equal(a, b)


def test_a_job_with_fused_activations_ends_with_the_same_numbers(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    grid = "{input: padding, mapping: ilm, backbone: efficientnet_lite0, dataset: digits, seed: 0}"
    # without the shared border, whose head ends elsewhere in a fused graph (another order of sums)
    plain, fused = (_finished_job(tmp_path, grid, monkeypatch, fuse=fuse, share=False) for fuse in (False, True))
    assert (plain.fused_activations, fused.fused_activations, fused.frozen_chains) == (0, 33, 15)
    (session,) = read_json(fused.directory / ENV)["sessions"]
    assert session["fused_activations"] == 33 and session["fuse_activations"] == "on"
    assert read_json(plain.directory / ENV)["levers"]["fuse_activations"] == "off"
    _assert_same_numbers(plain, fused)


def test_a_job_with_the_shared_border_ends_within_rounding_of_the_same_numbers(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The border through the first layers once moves the pattern's gradient in the last bits (engine/border.py):
    after an epoch (4 Adam steps) the same mapping, accuracies within one image, the pattern close."""
    grid = "{input: padding, mapping: ilm, backbone: efficientnet_lite0, dataset: digits, seed: 0}"
    # 96 px, as the embedded suite: at 64 px the batch would run whole (test_border.py)
    whole, shared = (_finished_job(tmp_path, grid, monkeypatch, share=share, epochs=1, canvas=96)
                     for share in (False, True))
    assert (whole.shared_border, shared.shared_border) == (False, True)
    assert read_json(shared.directory / ENV)["levers"]["shared_border"] == "on"
    assert read_json(shared.directory / ENV)["sessions"][0]["shared_border_batches"] > 0  # a plan ran
    assert read_json(whole.directory / ENV)["levers"]["shared_border"] == "off"
    assert any(plan is not None for plan in shared.model._plans.values())  # the stages ran
    assert torch.equal(whole.mapping.mapping, shared.mapping.mapping)  # from the first pattern: logits equal
    for ours, theirs in zip(shared.history, whole.history, strict=True):  # within one image (100 train, 70 test)
        assert abs(ours["train_acc"] - theirs["train_acc"]) <= 100 / 100
        assert abs(ours["test_acc"] - theirs["test_acc"]) <= 100 / 70
    # Adam's normalised step moves a pattern pixel by up to lr wherever its gradient is near zero and rounding
    # flips its sign (lr 0.01); measured after these 4 steps: median 1.1e-4, 99th percentile 2.7e-3, largest 1.6e-2
    for a, b in zip(whole.input.parameters(), shared.input.parameters(), strict=True):
        gap = (a - b).abs().detach()
        assert gap.median() <= 5e-4 and torch.quantile(gap.flatten(), 0.99) <= 1e-2


def test_inputs_without_a_shared_pattern_run_the_backbone_whole(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """SMM's masks and the resize inputs' gradients are per image: the engine must not share the border for them."""
    grid = "{input: full, mapping: ilm, backbone: efficientnet_lite0, dataset: digits, seed: 0, set: {resolution: 48}}"
    job = _finished_job(tmp_path, grid, monkeypatch, epochs=1)
    assert not job.input.shared_pattern and not job.shared_border
    assert read_json(job.directory / ENV)["levers"]["shared_border"] == "off"


def _built_digits_job(tmp_path: Path, mapping: str, settings: str) -> Job:
    """A built one-epoch padding-VR job on Lite0 and 32-px digits on a 64-px canvas (``settings``: more defaults)."""
    (spec,) = parse_suite(f"""
name: t
grid: {{input: padding, mapping: {mapping}, backbone: efficientnet_lite0, dataset: digits, seed: 0}}
defaults: {{epochs: 1, {settings}, image_size: 32, canvas: 64}}
""").jobs
    directory = run_dir(tmp_path / "results", spec.run_id)
    write_config(directory, spec.run_id, spec.method, spec.config, {"device": "cpu", "threads": 2})
    job = Job(directory)
    job.build()
    return job


@pytest.mark.parametrize("fuse", [True, False])
def test_a_nan_pattern_fails_the_job_with_fused_and_plain_kernels(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                   fuse: bool) -> None:
    """Fused kernels clamp NaN to numbers (tests/test_fusion.py), so the NaN guard looks where it enters: the
    backbone's input. A NaN pattern stops training and evaluation alike, whichever kernels run (an inf one is
    squashed by ILM-VP's sigmoid, as in the paper's code)."""
    monkeypatch.setenv(FUSE_ENV, "1" if fuse else "0")
    job = _built_digits_job(tmp_path, "ilm", "batch_size: 32, subset: {train: 64, test: 40}")
    job.first_start()
    job.epoch_start(0)  # ILM estimates its mapping here
    assert (job.fused_activations > 0) is fuse
    with torch.no_grad():
        job.input.program[0, 0, 0] = float("nan")
    with pytest.raises(FloatingPointError, match=r"backbone's input holds NaN or inf .* at epoch 1, batch 1"):
        job.train_epoch(0)
    with pytest.raises(FloatingPointError, match="backbone's input holds NaN or inf"):
        job.evaluate(job.splits.test)


def test_the_input_guard_catches_nan_and_both_infinities_but_not_large_finite_inputs(tmp_path: Path) -> None:
    """The guard reads the sum of the backbone's input: NaN, +inf and -inf (alone or together) all make it
    non-finite; finite inputs far beyond an image's range do not."""
    job = _built_digits_job(tmp_path, "rlm", "batch_size: 8, subset: {train: 16, test: 8}")
    job.input = nn.Identity()
    with torch.no_grad():
        assert job.logits(torch.full((2, 3, 64, 64), 1e6)).shape[0] == 2
        for bad in ([float("nan")], [float("inf")], [-float("inf")], [float("inf"), -float("inf")]):
            x = torch.zeros(2, 3, 64, 64)
            x.view(-1)[: len(bad)] = torch.tensor(bad)
            with pytest.raises(FloatingPointError, match="backbone's input holds NaN or inf"):
                job.logits(x)
