"""The VR loop's speed levers keep its numbers: bitwise where only memory or autograd bookkeeping changes, within
1e-4 of the logits where BatchNorm folding changes the rounding (vrbench.engine.speed)."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from vrbench.backbones.efficientnet_lite import load_efficientnet_lite
from vrbench.engine.speed import FOLD_ENV, fold_batchnorm, fold_enabled, keep_freed_memory
from vrbench.methods.padding import PaddingVR


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
    assert not torch.equal(eager, fast)  # it is a rounding change, which is why it is opt-in


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


def test_fold_is_opt_in(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(FOLD_ENV, raising=False)
    assert not fold_enabled()
    monkeypatch.setenv(FOLD_ENV, "1")
    assert fold_enabled()
    monkeypatch.setenv(FOLD_ENV, "off")
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
