"""The shared border (vrbench.engine.border): the first layers once for what a batch's images have in common gives
the model's logits and, within float rounding, its pattern gradient, with less work; and it steps aside where it
cannot help or reads a layer wrong."""

from __future__ import annotations

import copy
import logging

import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from vrbench.backbones.efficientnet_lite import load_efficientnet_lite
from vrbench.engine.border import (
    SHARE_ENV,
    Axis,
    SharedBorder,
    Span,
    check_sample,
    differing_box,
    share_border,
    share_enabled,
)
from vrbench.engine.fusion import fuse_activations
from vrbench.engine.speed import fold_batchnorm


def _folded(model: nn.Module, fuse: bool) -> nn.Module:
    folded, _ = fold_batchnorm(model.eval().requires_grad_(False))
    folded = folded.to(memory_format=torch.channels_last).requires_grad_(False)
    if fuse:
        fuse_activations(folded)
    return folded


def _backbone(name: str) -> nn.Module:
    torch.manual_seed(0)
    return (load_efficientnet_lite(name) if name.startswith("efficientnet") else
            getattr(torchvision.models, name)())  # random weights: the geometry is what matters here


def _padded(batch: int, image: int, canvas: int, pattern: torch.Tensor) -> torch.Tensor:
    """Padding VR's input: images in the middle of the canvas, the same pattern around them."""
    before = (canvas - image + 1) // 2
    images = torch.rand(batch, 3, image, image) * 4 - 2
    return F.pad(images, (before, canvas - image - before, before, canvas - image - before)) + pattern


def _step(model: nn.Module, images: torch.Tensor, pattern: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A training step's view: logits and the gradient that reaches the pattern."""
    pattern = pattern.clone().requires_grad_(True)
    out = model((images + pattern).contiguous(memory_format=torch.channels_last))
    (out * torch.linspace(-1, 1, out.shape[1])).sum().backward()
    return out.detach(), pattern.grad


def test_axis_follows_the_receptive_field_through_windows() -> None:
    axis = Axis(8).window(3, 1, 1, 1, 1)  # 3x3, stride 1, padding 1: position i sees [i - 1, i + 2)
    assert axis == Axis(8, 1, -1, 3)
    axis = axis.window(3, 2, 1, 1, 1)  # then stride 2: position i sees [2i - 2, 2i + 3)
    assert axis == Axis(4, 2, -2, 5)
    assert axis.union(Axis(4, 2, 0, 1)) == Axis(4, 2, -2, 5)  # a 1x1 stride-2 shortcut beside it
    assert axis.union(Axis(4, 1)) is None  # another grid: no elementwise op of the two can be placed


def test_span_crops_on_the_stride_and_keeps_every_reached_field() -> None:
    axis = Axis(24, 4, -4, 13)  # Lite0's stem and first stage on 96 px
    span = Span.of(axis, 96, 32, 64)
    assert span.crop.start % 4 == 0 and (96 - span.crop.stop) % 4 == 0
    for i in range(axis.size):  # every position whose field meets the box is in the region, with its field cropped
        field = (axis.start + i * axis.jump, axis.start + i * axis.jump + axis.extent)
        if field[0] < 64 and field[1] > 32:
            assert span.region.start <= i < span.region.stop
            assert max(field[0], 0) >= span.crop.start and min(field[1], 96) <= span.crop.stop
        else:
            assert not span.region.start <= i < span.region.stop
    assert span.inside.start == span.region.start - span.crop.start // 4


@pytest.mark.parametrize(("name", "fuse", "image", "canvas"), [
    ("efficientnet_lite0", True, 32, 96),  # the embedded task, as the engine runs it
    ("efficientnet_lite0", True, 33, 97),  # odd sizes: TF 'same' pads the stem's input unevenly
    ("efficientnet_lite0", False, 32, 96),  # plain (unfused) convolutions
    ("resnet18", True, 32, 224),  # ILM-VP's CIFAR setting: 32 px on 224
])
def test_shared_border_gives_the_logits_and_pattern_gradient_of_the_model(name: str, fuse: bool, image: int,
                                                                         canvas: int) -> None:
    model = _folded(_backbone(name), fuse)
    shared = share_border(copy.deepcopy(model))
    assert isinstance(shared, SharedBorder)
    pattern = torch.randn(1, 3, canvas, canvas)
    images = _padded(6, image, canvas, torch.zeros(1, 3, canvas, canvas))
    plan = shared.plan((images + pattern).contiguous(memory_format=torch.channels_last))
    assert plan is not None and plan.stages[0].rows.fraction(canvas) < 1
    with torch.inference_mode():
        x = (images + pattern).contiguous(memory_format=torch.channels_last)
        logits, ours = model(x), shared(x)
    scale = logits.abs().max()
    assert (ours - logits).abs().max() <= 1e-4 * scale
    (logits, gradient), (ours, our_gradient) = _step(model, images, pattern), _step(shared, images, pattern)
    assert (ours - logits).abs().max() <= 1e-4 * scale
    assert (our_gradient - gradient).abs().max() <= 1e-5 * gradient.abs().max()


@pytest.mark.parametrize(("name", "canvas"), [("efficientnet_lite0", 96), ("resnet18", 224)])
def test_fusion_changes_neither_the_plan_nor_a_number(name: str, canvas: int) -> None:
    """The stages end at block boundaries, which fusion leaves in place: VRBENCH_FUSE_ACTIVATIONS stays a switch
    for measuring, with the shared border on as with it off."""
    plain, fused = (share_border(_folded(_backbone(name), fuse=fuse)) for fuse in (False, True))
    pattern = torch.randn(1, 3, canvas, canvas)
    images = _padded(4, 32, canvas, torch.zeros(1, 3, canvas, canvas))
    x = (images + pattern).contiguous(memory_format=torch.channels_last)
    crops = [[(stage.rows.crop, stage.cols.crop) for stage in model.plan(x).stages] for model in (plain, fused)]
    assert crops[0] == crops[1] and len(crops[0]) >= 2
    (logits, gradient), (fused_logits, fused_gradient) = (_step(model, images, pattern) for model in (plain, fused))
    assert torch.equal(logits, fused_logits) and torch.equal(gradient, fused_gradient)


@pytest.mark.parametrize(("name", "canvas", "at_most"), [
    # measured 0.94: the head (stride 4, a fifth of the multiply-adds) on a 56-px crop of the 96-px canvas
    ("efficientnet_lite0", 96, 0.95),
    # measured 0.82: stem, max pool and layer 1 (a third of the multiply-adds) on a 120-px crop of 224 px
    ("resnet18", 224, 0.85),
])
def test_the_batch_runs_the_head_only_around_its_images(name: str, canvas: int, at_most: float) -> None:
    """Work counted, not timed: the forward's FLOPs (aten's convolutions: the unfused model) with and without."""
    model = _folded(_backbone(name), fuse=False)
    shared = share_border(copy.deepcopy(model))
    x = _padded(32, 32, canvas, torch.randn(1, 3, canvas, canvas)).contiguous(memory_format=torch.channels_last)
    shared.plan(x)  # the plan and its one-time check (on 8 images) happen before: the cost counted is per batch
    flops = []
    for network in (model, shared):
        with torch.inference_mode(), FlopCounterMode(display=False) as counter:
            network(x)
        flops.append(counter.get_total_flops())
    assert flops[1] <= at_most * flops[0]


def test_a_plan_that_would_save_little_is_not_made() -> None:
    """At the smoke suite's 64-px canvas the crop would keep 77 % of Lite0's first stage (a promised 3 %, measured
    nothing): the batch runs whole, and the border is not worth its bookkeeping."""
    shared = share_border(_folded(_backbone("efficientnet_lite0"), fuse=True))
    assert shared.plan(_padded(32, 32, 64, torch.randn(1, 3, 64, 64)).contiguous(
        memory_format=torch.channels_last)) is None
    assert shared.plan(_padded(32, 32, 96, torch.randn(1, 3, 96, 96)).contiguous(
        memory_format=torch.channels_last)) is not None


def test_images_that_differ_everywhere_run_the_whole_model() -> None:
    model = _folded(_backbone("efficientnet_lite0"), fuse=True)
    shared = share_border(copy.deepcopy(model))
    x = torch.randn(4, 3, 64, 64).contiguous(memory_format=torch.channels_last)
    assert differing_box(x) == (0, 64, 0, 64) and shared.plan(x) is None
    assert differing_box(x[:1]) is None and shared.plan(x[:1]) is None  # one image: nothing to share
    with torch.inference_mode():
        assert torch.equal(model(x), shared(x))


class _ShiftingConv(nn.Conv2d):
    """Looks like a convolution but shifts its input by a quarter turn of the rows first: not local."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(torch.roll(x, x.shape[-2] // 4, dims=-2))


class _ShiftingNet(nn.Module):
    """A stem that only looks local, then a residual block (the block boundaries a plan needs)."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = _ShiftingConv(3, 64, 3, padding=1)
        self.block, self.head = nn.Conv2d(64, 64, 3, padding=1), nn.Conv2d(64, 8, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.stem(x))
        x = x + torch.relu(self.block(x))
        return self.head(x).mean(dim=(2, 3))


def test_a_layer_read_wrong_is_caught_and_the_batch_runs_whole(caplog: pytest.LogCaptureFixture) -> None:
    torch.manual_seed(0)

    class ConvLeaves(torch.fx.Tracer):  # as fold_batchnorm traces: every Conv2d, subclasses too, one node
        def is_leaf_module(self, module: nn.Module, name: str) -> bool:
            return isinstance(module, nn.Conv2d) or super().is_leaf_module(module, name)

    network = _ShiftingNet().eval().requires_grad_(False)
    model = torch.fx.GraphModule(network, ConvLeaves().trace(network))
    shared = share_border(copy.deepcopy(model))
    x = _padded(8, 8, 64, torch.randn(1, 3, 64, 64)).contiguous(memory_format=torch.channels_last)
    with caplog.at_level(logging.WARNING, logger="vrbench.engine.border"), torch.inference_mode():
        out = shared(x)
        assert torch.equal(out, model(x))
    assert "differ from the whole computation" in caplog.text
    assert shared.plan(x) is None


class _DownShiftConv(nn.Conv2d):
    """Looks like a convolution but first moves its input 16 rows down (zeros come in at the top): not local, yet
    exact on a crop wherever the rows it reads are zero, as around an image on ILM-VP's initial (zero) pattern."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(F.pad(x, (0, 0, 16, 0))[..., :-16, :])


def test_a_misread_layer_is_caught_when_the_first_two_images_are_equal(caplog: pytest.LogCaptureFixture) -> None:
    """The check looks at images that differ: with images 0 and 1 equal, a check on those two alone (as it was)
    passed this plan, whose region misses the rows below the images that the shift fills from them."""

    class ConvLeaves(torch.fx.Tracer):
        def is_leaf_module(self, module: nn.Module, name: str) -> bool:
            return isinstance(module, nn.Conv2d) or super().is_leaf_module(module, name)

    torch.manual_seed(0)
    network = _ShiftingNet().eval().requires_grad_(False)
    network.stem = _DownShiftConv(3, 64, 3, padding=1)
    model = torch.fx.GraphModule(network, ConvLeaves().trace(network))
    shared = share_border(copy.deepcopy(model))
    x = _padded(8, 8, 64, torch.zeros(1, 3, 64, 64))
    x[1] = x[0]
    x = x.contiguous(memory_format=torch.channels_last)
    with caplog.at_level(logging.WARNING, logger="vrbench.engine.border"), torch.inference_mode():
        assert torch.equal(shared(x), model(x))
    assert "differ from the whole computation" in caplog.text and shared.plan(x) is None
    assert check_sample(x[:2]) is None  # two equal images: nothing to check a plan on
    assert check_sample(x) is not None


@pytest.mark.parametrize("fuse", [False, True])
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
@pytest.mark.parametrize("where", [0, 1])
def test_nan_and_inf_in_the_first_images_reach_the_logits_as_in_the_model(fuse: bool, bad: float,
                                                                          where: int) -> None:
    """A non-finite pixel in image 0 or 1 of a shape's first batch neither breaks the plan check (it raised
    "atol must be ...") nor changes a number: every image's logits are the model's, NaN where the model's are."""
    model = _folded(_backbone("efficientnet_lite0"), fuse)
    shared = share_border(copy.deepcopy(model))
    pattern = torch.randn(1, 3, 96, 96)
    x = _padded(6, 32, 96, pattern)
    x[where, 1, 40, 50] = bad  # inside the image box: the border stays common
    x = x.contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        ours, theirs = shared(x), model(x)
    assert shared.plan(x) is not None and shared.batches_shared == 1  # the plan was checked on the finite images
    assert torch.equal(ours.isnan(), theirs.isnan())
    assert torch.equal(ours.nan_to_num(), theirs.nan_to_num())
    if not fuse:  # plain kernels carry NaN (inf meets a ReLU's zero weights as NaN) through to the logits
        assert theirs[where].isnan().all() and not theirs[1 - where].isnan().any()


def test_a_batch_with_nothing_to_check_runs_whole_and_a_later_one_decides() -> None:
    model = _folded(_backbone("efficientnet_lite0"), fuse=True)
    shared = share_border(copy.deepcopy(model))
    pattern = torch.randn(1, 3, 96, 96)
    x = _padded(6, 32, 96, pattern)
    x[:5, 0, 40, 40] = float("nan")  # one finite image left: no plan can be checked on it
    x = x.contiguous(memory_format=torch.channels_last)
    box = differing_box(x)
    with torch.inference_mode():
        assert torch.equal(shared(x).nan_to_num(), model(x).nan_to_num())
    assert shared.batches_shared == 0 and shared._plans == {}  # not decided on a batch that could not check it
    clean = _padded(6, 32, 96, pattern).contiguous(memory_format=torch.channels_last)
    assert differing_box(clean) == box and shared.plan(clean) is not None


def test_sharing_is_on_by_default_and_can_be_switched_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(SHARE_ENV, raising=False)
    assert share_enabled()
    monkeypatch.setenv(SHARE_ENV, "0")
    assert not share_enabled()
    assert share_border(nn.Linear(2, 2)).__class__ is nn.Linear  # an untraced model is left as it is
