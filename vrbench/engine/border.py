"""A batch's common border computed once: the first layers run on one image, the batch only around its images.

Padding VR puts every image of a batch on the same canvas: a 32-px image in the middle of a 96-px (or 224-px) canvas
whose border is the learned pattern, identical for all images of the batch. A convnet's first layers are local, so
at every position whose receptive field misses the box where the images differ they compute the same value for every
image. `SharedBorder` runs those layers (the "head" of the network, up to a cut) once on the first image, and on the
whole batch only over a crop of the canvas: the box, widened by the head's receptive field and aligned to its stride
so that every convolution pads the crop exactly as it pads the whole canvas. The positions the box can reach are
pasted from the crop into the shared map, and the rest of the network (the "tail") runs on the full batch as before.
The box is found on every batch (where any image differs from the first), so inputs whose images differ everywhere
(resized images, SMM's masks, a per-image pattern) run the whole network as they did.

The same function, computed in another order: the forward values are the same products and sums (bit for bit in the
tests here), but the gradient of the shared positions reaches the pattern summed over the batch before the head's
backward instead of after it, which moves the pattern's gradient in the last bits (tests/test_border.py holds it
within 1e-5 relative; logits within 1e-4 as the issue asks). So it changes rounding, like BatchNorm folding, and
``VRBENCH_SHARE_BORDER=0`` turns it off. On EfficientNet-Lite0 at 96 px with a 32-px image the head is the stem and
stage 2 (stride 4): about x1.25 on a training step and x1.2 on inference (benchmarks/training_step.py); at ILM-VP's
CIFAR setting (32 px on 224) the crop is a tenth of the canvas.

The cut is chosen per input size and box: among the points where one tensor carries everything (block boundaries),
the one that saves the most multiply-adds, counting the crop and the one shared image. What the head may contain:
convolutions (with their own padding rule, as Lite's TF 'same', through ``conv_arguments``), the fused convolutions
and chains of engine/fusion.py, max and average pooling, eval-mode BatchNorm, pointwise activations, sums and products
of feature maps. Anything else ends the head. Each new plan is checked once against the full computation on the
batch's first two images; a plan that disagrees (a layer whose geometry this module misreads) is dropped with a
warning and that batch shape runs whole.
"""

from __future__ import annotations

import logging
import operator
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.fx
import torch.nn.functional as F
from torch import nn

from vrbench.engine.fusion import FrozenChain, FusedConvActivation, _Call
from vrbench.switches import switch_on

SHARE_ENV = "VRBENCH_SHARE_BORDER"
log = logging.getLogger(__name__)


def share_enabled() -> bool:
    """On unless VRBENCH_SHARE_BORDER is 0 (or false, no, off)."""
    return switch_on(SHARE_ENV)


# ------------------------------------------------------------------------------------------------ geometry
@dataclass(frozen=True)
class Axis:
    """One spatial axis of a feature map: `size` positions; position i sees the input pixels
    [start + i * jump, start + i * jump + extent) (its receptive field, which may reach into the padding)."""

    size: int
    jump: int = 1
    start: int = 0
    extent: int = 1

    def window(self, kernel: int, stride: int, dilation: int, before: int, after: int) -> Axis:
        """The axis after a sliding window (convolution or pooling) with this padding."""
        size = (self.size + before + after - dilation * (kernel - 1) - 1) // stride + 1
        return Axis(size, self.jump * stride, self.start - before * self.jump,
                    self.extent + (kernel - 1) * dilation * self.jump)

    def union(self, other: Axis) -> Axis | None:
        """An elementwise op of two maps on the same grid sees both receptive fields."""
        if (self.size, self.jump) != (other.size, other.jump):
            return None
        start = min(self.start, other.start)
        end = max(self.start + self.extent, other.start + other.extent)
        return Axis(self.size, self.jump, start, end - start)


Axes = tuple[Axis, Axis]  # (height, width)


def _conv(conv: nn.Conv2d, axes: Axes) -> tuple[Axes, int] | None:
    if isinstance(conv.padding, str):  # 'same' / 'valid' strings: not worth the special cases
        return None
    call = _Call.of(conv, torch.empty(1, conv.in_channels, axes[0].size, axes[1].size, device="meta"))
    left, right, top, bottom = call.input_padding or (0, 0, 0, 0)
    kernel = call.weight.shape[-2:]
    height = axes[0].window(kernel[0], conv.stride[0], conv.dilation[0], call.padding[0] + top,
                            call.padding[0] + bottom)
    width = axes[1].window(kernel[1], conv.stride[1], conv.dilation[1], call.padding[1] + left,
                           call.padding[1] + right)
    return (height, width), height.size * width.size * conv.weight.numel()


def _pool(pool: nn.MaxPool2d | nn.AvgPool2d, axes: Axes) -> tuple[Axes, int] | None:
    if pool.ceil_mode:
        return None
    pair = torch.nn.modules.utils._pair
    kernel, stride = pair(pool.kernel_size), pair(pool.stride or pool.kernel_size)
    padding, dilation = pair(pool.padding), pair(getattr(pool, "dilation", 1))
    height, width = (axis.window(kernel[i], stride[i], dilation[i], padding[i], padding[i])
                     for i, axis in enumerate(axes))
    return (height, width), 0


def _layers(layers: list[nn.Module], axes: Axes) -> tuple[Axes, int] | None:
    macs = 0
    for layer in layers:
        step = module_geometry(layer, axes)
        if step is None:
            return None
        axes, cost = step
        macs += cost
    return axes, macs


POINTWISE_MODULES = (nn.ReLU, nn.ReLU6, nn.Hardtanh, nn.SiLU, nn.GELU, nn.Hardswish, nn.Hardsigmoid, nn.Sigmoid,
                     nn.Tanh, nn.LeakyReLU, nn.ELU, nn.Identity)
POINTWISE_FUNCTIONS = {F.relu, F.relu6, F.hardtanh, F.silu, F.gelu, F.hardswish, torch.relu, torch.sigmoid,
                       torch.tanh}
ELEMENTWISE_FUNCTIONS = {operator.add, operator.mul, operator.iadd, torch.add, torch.mul}
POINTWISE_METHODS = {"relu", "relu_", "sigmoid", "contiguous", "add", "add_", "mul", "mul_"}

# How a module moves the axes, and the multiply-adds it spends; the first matching type decides.
MODULE_GEOMETRY: dict[type | tuple[type, ...], Callable[[nn.Module, Axes], tuple[Axes, int] | None]] = {
    nn.Conv2d: _conv,
    FusedConvActivation: lambda module, axes: _conv(module.conv, axes),
    FrozenChain: lambda module, axes: _layers(list(module.layers), axes),
    (nn.MaxPool2d, nn.AvgPool2d): _pool,
    POINTWISE_MODULES: lambda module, axes: (axes, 0),
    # in training, BatchNorm's batch statistics mix the images and dropout draws a mask per image
    (nn.BatchNorm2d, nn.Dropout): lambda module, axes: None if module.training else (axes, 0),
}


def module_geometry(module: nn.Module, axes: Axes) -> tuple[Axes, int] | None:
    """(axes after `module`, its multiply-adds), or None where the head cannot hold it."""
    for kind, rule in MODULE_GEOMETRY.items():
        if isinstance(module, kind):
            return rule(module, axes)
    return None


def _node_geometry(node: torch.fx.Node, model: torch.fx.GraphModule,
                   known: dict[torch.fx.Node, Axes]) -> tuple[Axes, int] | None:
    """The node's output axes and multiply-adds, or None where the head must end."""
    inputs = [arg for arg in (*node.args, *node.kwargs.values()) if isinstance(arg, torch.fx.Node)]
    if not inputs or any(arg not in known for arg in inputs):
        return None
    axes = known[inputs[0]]
    if node.op == "call_module":
        return module_geometry(model.get_submodule(node.target), axes) if len(inputs) == 1 else None
    if not ((node.op == "call_function" and node.target in POINTWISE_FUNCTIONS | ELEMENTWISE_FUNCTIONS)
            or (node.op == "call_method" and node.target in POINTWISE_METHODS)):
        return None
    for arg in inputs[1:]:  # an elementwise op of two maps sees both receptive fields
        height, width = axes[0].union(known[arg][0]), axes[1].union(known[arg][1])
        if height is None or width is None:
            return None
        axes = (height, width)
    return axes, 0


@dataclass(frozen=True)
class Cut:
    """A point where the head may end: one tensor carries everything the tail needs."""

    node: torch.fx.Node
    axes: Axes
    macs: int


def cuts(model: torch.fx.GraphModule, height: int, width: int) -> list[Cut]:
    """Every point the head may end at for inputs of height x width, with the multiply-adds of the head up to it.

    A node is such a point when nothing computed before it is used after it (block boundaries, not a residual
    branch's inside); the head ends at the first node whose geometry is unknown."""
    nodes = list(model.graph.nodes)
    placeholders = [node for node in nodes if node.op == "placeholder"]
    if len(placeholders) != 1 or nodes[0] is not placeholders[0]:
        return []
    position = {node: i for i, node in enumerate(nodes)}
    known: dict[torch.fx.Node, Axes] = {nodes[0]: (Axis(height), Axis(width))}
    found: list[Cut] = []
    macs = 0
    reach = max(position[user] for user in nodes[0].users)  # the last node anything before node i is used by
    for i, node in enumerate(nodes[1:], start=1):
        step = _node_geometry(node, model, known)
        if step is None:
            break
        known[node], cost = step
        macs += cost
        if reach <= i:
            found.append(Cut(node, known[node], macs))
        reach = max(reach, *(position[user] for user in node.users))
    return found


# ------------------------------------------------------------------------------------------------ plans
def _split(model: torch.fx.GraphModule, cut: torch.fx.Node) -> tuple[torch.fx.GraphModule, torch.fx.GraphModule]:
    """(head, tail): the graph up to and including `cut`, and the rest with `cut`'s output as its input. Both share
    the model's submodules (no weight is copied)."""
    head, tail = torch.fx.Graph(), torch.fx.Graph()
    copied: dict[torch.fx.Node, torch.fx.Node] = {}
    graph = head
    for node in model.graph.nodes:
        if graph is tail and node.op == "placeholder":
            raise ValueError("a graph with more than one input")
        copied[node] = graph.node_copy(node, copied.__getitem__)
        if node is cut:
            head.output(copied[node])
            copied[node] = tail.placeholder("features")
            graph = tail
    return torch.fx.GraphModule(model, head), torch.fx.GraphModule(model, tail)


@dataclass(frozen=True)
class Span:
    """One axis of a plan: the input the batch needs (`crop`), the head's output positions the box can reach
    (`region`), and where those sit in the crop's output (`inside`)."""

    crop: slice
    region: slice
    inside: slice

    @classmethod
    def of(cls, axis: Axis, size: int, low: int, high: int) -> Span:
        """For input pixels [low, high) that differ between images, on an axis of `size` input pixels."""
        jump = axis.jump
        first = max(0, (low - axis.extent - axis.start) // jump + 1)
        last = min(axis.size - 1, (high - 1 - axis.start) // jump)
        need_low = max(0, axis.start + first * jump)
        need_high = min(size, axis.start + last * jump + axis.extent)
        # the crop starts on the head's stride and keeps the input's size modulo it: every layer pads it as the whole
        crop_low = need_low // jump * jump
        crop_high = need_high + (size - need_high) % jump
        skip = crop_low // jump
        return cls(slice(crop_low, crop_high), slice(first, last + 1), slice(first - skip, last + 1 - skip))

    def fraction(self, size: int) -> float:
        return (self.crop.stop - self.crop.start) / size


def _memory_format(x: torch.Tensor) -> torch.memory_format:
    channels_last = x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()
    return torch.channels_last if channels_last else torch.contiguous_format


@dataclass
class Plan:
    """How one batch shape runs: the head once on the first image and on the crop, the tail on the stitched map."""

    cut: Cut
    head: torch.fx.GraphModule
    tail: torch.fx.GraphModule
    rows: Span
    cols: Span

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The head's output for the batch `x`, stitched from the shared image and the crop."""
        shared = self.head(x[:1])
        crop = x[:, :, self.rows.crop, self.cols.crop].contiguous(memory_format=_memory_format(x))
        part = self.head(crop)
        stitched = shared.expand(len(x), -1, -1, -1).clone(memory_format=_memory_format(shared))
        stitched[:, :, self.rows.region, self.cols.region] = part[:, :, self.rows.inside, self.cols.inside]
        return stitched

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.tail(self.features(x))

    def agrees(self, x: torch.Tensor) -> bool:
        """The stitched head equals the full one on `x` (within 1e-4 of its scale): the geometry was read right."""
        with torch.no_grad():
            try:
                stitched = self.features(x)
            except RuntimeError:  # a crop of the wrong size: the geometry was read wrong
                return False
            full = self.head(x)
        if stitched.shape != full.shape:
            return False
        return bool(torch.allclose(stitched, full, rtol=1e-4, atol=1e-4 * float(full.abs().max().clamp(min=1e-12))))


def differing_box(x: torch.Tensor) -> tuple[int, int, int, int] | None:
    """(top, bottom, left, right), bottom and right exclusive: the smallest box outside which every image of the
    batch equals the first; None for a batch of one or identical images."""
    if x.dim() != 4 or len(x) < 2:
        return None
    with torch.no_grad():
        differs = (x[1:] != x[:1]).any(dim=1).any(dim=0)  # channels first: x3 faster on channels_last
        rows, cols = differs.any(dim=1).nonzero(), differs.any(dim=0).nonzero()
    if len(rows) == 0:
        return None
    return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1


class SharedBorder(nn.Module):
    """`model` (a torch.fx GraphModule) with its head computed once for the border a batch has in common."""

    def __init__(self, model: torch.fx.GraphModule) -> None:
        super().__init__()
        self.model = model
        self._cuts: dict[tuple[int, int], list[Cut]] = {}
        self._splits: dict[torch.fx.Node, tuple[torch.fx.GraphModule, torch.fx.GraphModule]] = {}
        self._plans: dict[tuple, Plan | None] = {}
        self._checked: dict[tuple, bool] = {}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        plan = self.plan(x)
        return self.model(x) if plan is None else plan(x)

    def plan(self, x: torch.Tensor) -> Plan | None:
        """The plan for this batch (cached by its shape and box), None to run the whole model."""
        box = differing_box(x)
        if box is None:
            return None
        key = (tuple(x.shape), box)
        if key not in self._plans:
            self._plans[key] = self._best_plan(x, box)
        plan = self._plans[key]
        if plan is not None:
            check = (tuple(x.shape[1:]), box, plan.cut.node)
            if check not in self._checked:
                self._checked[check] = plan.agrees(x[:2])
                if not self._checked[check]:
                    log.warning("shared border: the stitched features at %s differ from the whole computation; "
                                "this batch shape runs the whole network", plan.cut.node.name)
            if not self._checked[check]:
                return None
        return plan

    def _best_plan(self, x: torch.Tensor, box: tuple[int, int, int, int]) -> Plan | None:
        height, width = x.shape[-2:]
        if (height, width) not in self._cuts:
            self._cuts[(height, width)] = cuts(self.model, height, width)
        best, best_saving = None, 0.0
        for cut in self._cuts[(height, width)]:
            rows = Span.of(cut.axes[0], height, box[0], box[1])
            cols = Span.of(cut.axes[1], width, box[2], box[3])
            # multiply-adds saved per image: the head on the border, less the shared image's share
            saving = cut.macs * (1 - rows.fraction(height) * cols.fraction(width) - 1 / len(x))
            if saving > best_saving:
                best, best_saving = (cut, rows, cols), saving
        if best is None:
            return None
        cut, rows, cols = best
        if cut.node not in self._splits:
            self._splits[cut.node] = _split(self.model, cut.node)
        return Plan(cut, *self._splits[cut.node], rows, cols)


def share_border(model: nn.Module) -> nn.Module:
    """`model` wrapped in SharedBorder where it is a traced graph with one input (as fold_batchnorm returns it),
    else `model` itself."""
    if not isinstance(model, torch.fx.GraphModule):
        return model
    if sum(node.op == "placeholder" for node in model.graph.nodes) != 1:
        return model
    return SharedBorder(model)
