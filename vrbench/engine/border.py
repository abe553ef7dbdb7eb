"""A batch's common border computed once: the first layers run on one image, the batch only around its images.

Padding VR puts every image of a batch on the same canvas: a 32-px image in the middle of a 96-px (or 224-px) canvas
whose border is the learned pattern, identical for all images of the batch. A convnet's first layers are local, so
at every position whose receptive field misses the box where the images differ they compute the same value for every
image. `SharedBorder` runs those layers (the "head" of the network) once on the first image, and on the batch only
over crops, stage by stage: each stage (a stretch of layers between two block boundaries) takes its input map's
varying positions widened by the stage's own receptive field, aligned to the stage's stride so that every
convolution pads the crop exactly as it pads the whole map, and pastes its output into the shared image's map. The
rest of the network (the "tail") runs on the full batch as before. The box is found on every batch (where any image
differs from the first), so inputs whose images differ everywhere (resized images, SMM's masks, a per-image pattern)
run the whole network as they did.

The gradient that reaches the input is right summed over the batch, not image by image: a shared position's
gradient from every image lands on the first image's pixels. That is all a pattern broadcast over the batch receives,
so the engine wraps the backbone only for input modules that say so (``InputTransform.shared_pattern``, set by
padding VR); a method that used each image's own input gradient (a pattern per image, adversarial inputs) must not
set it.

The same function, computed in another order: the forward values are the same products and sums (bit for bit in the
tests here), but the gradient of the shared positions reaches the pattern summed over the batch before the head's
backward instead of after it, which moves the pattern's gradient in the last bits (tests/test_border.py holds it
within 1e-5 of its largest value, logits within 1e-4). So it changes rounding, like BatchNorm folding, and
``VRBENCH_SHARE_BORDER=0`` turns it off. Measured with benchmarks/training_step.py: on EfficientNet-Lite0 at 96 px
with a 32-px image (two stages, to stride 4) x1.14 on a training step and x1.21 on inference; on ResNet18 at
ILM-VP's CIFAR setting (32 px on 224; four stages, into layer 2) x1.46 and x1.55 (x1.16 per ILM epoch in
benchmarks/engine_throughput.py).

The stages are chosen per input shape, box and batch size by a cost model (multiply-adds plus memory traffic, less
the stages' own copies): a dynamic programme over the block boundaries (see Layout), which are the same in a
fused and an unfused graph, so VRBENCH_FUSE_ACTIVATIONS still changes no number. A network without such boundaries
(a plain stack of layers) gets no plan. What a head may contain: convolutions (with their own padding rule, as
Lite's TF 'same', through ``conv_arguments``), the fused convolutions and chains of engine/fusion.py, max and
average pooling, eval-mode BatchNorm, pointwise activations, sums and products of feature maps. Anything else ends
the head. Each new plan is checked once against the whole computation on the batch's finite images (`check_sample`:
up to eight, not all equal, so a misread region shows; NaN and inf images are left out, since they make either
side non-finite wherever they reach); a plan that disagrees (a layer whose geometry this module misreads) is
dropped with a warning and inputs of that shape run whole. A batch with nothing to check on runs whole and the
plan is decided on a later batch. The check costs two no-grad passes of the head on eight images, once per batch
shape and box.
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


@dataclass(frozen=True)
class Map:
    """A feature map as the geometry pass sees it: its axes and channels."""

    axes: Axes
    channels: int

    @property
    def elements(self) -> int:
        return self.channels * self.axes[0].size * self.axes[1].size


# The cost model that picks the stages, in multiply-adds per image. Early layers are memory-bound (on a CPU, Lite0's
# layers to stride 4 take 28 % of a training step for 13 % of its multiply-adds), so each element a layer reads or
# writes counts as MEMORY_COST multiply-adds; a stage's own copies (its crop, the stitched map, their gradients)
# cost STITCH_COST per element. Set by timing plans side by side: on Lite0 at 96 px, 40 or 120 add a third stage
# that is no faster (inference 107 against 103 ms at batch 128 in the quietest run); on ResNet18 at 224 px, 120 and
# 300 (five and four stages) time the same. They decide where the cuts go (which moves the last bits), never
# whether a number is right.
MEMORY_COST = 40
STITCH_COST = 300
# A plan must save this share of the network's cost, or its fixed costs (Python, the one-image passes, which run at
# a small batch's speed) eat it: on Lite0 at 64 px with a 32-px image the model promises 3 % and a training step
# measured none (57 ms either way); at 96 px it promises 17 % and a step gains 11 %.
LEAST_SAVING = 0.05

Step = tuple[Map, float]  # the map after a layer, and the layer's cost


def _conv(conv: nn.Conv2d, source: Map) -> Step | None:
    if isinstance(conv.padding, str):  # 'same' / 'valid' strings: not worth the special cases
        return None
    axes = source.axes
    call = _Call.of(conv, torch.empty(1, conv.in_channels, axes[0].size, axes[1].size, device="meta"))
    left, right, top, bottom = call.input_padding or (0, 0, 0, 0)
    kernel = call.weight.shape[-2:]
    height = axes[0].window(kernel[0], conv.stride[0], conv.dilation[0], call.padding[0] + top,
                            call.padding[0] + bottom)
    width = axes[1].window(kernel[1], conv.stride[1], conv.dilation[1], call.padding[1] + left,
                           call.padding[1] + right)
    target = Map((height, width), conv.out_channels)
    macs = height.size * width.size * conv.weight.numel()
    return target, macs + MEMORY_COST * (source.elements + target.elements)


def _pool(pool: nn.MaxPool2d | nn.AvgPool2d, source: Map) -> Step | None:
    if pool.ceil_mode:
        return None
    pair = torch.nn.modules.utils._pair
    kernel, stride = pair(pool.kernel_size), pair(pool.stride or pool.kernel_size)
    padding, dilation = pair(pool.padding), pair(getattr(pool, "dilation", 1))
    height, width = (axis.window(kernel[i], stride[i], dilation[i], padding[i], padding[i])
                     for i, axis in enumerate(source.axes))
    target = Map((height, width), source.channels)
    return target, MEMORY_COST * (source.elements + target.elements)


def _pointwise(source: Map, operands: int = 1) -> Step:
    return source, MEMORY_COST * (operands + 1) * source.elements


def _fused(module: FusedConvActivation, source: Map) -> Step | None:
    """Costed as the conv and the activation apart, so that a fused graph and its unfused twin get the same plan."""
    step = _conv(module.conv, source)
    return None if step is None else (step[0], step[1] + _pointwise(step[0])[1])


def _layers(layers: list[nn.Module], source: Map) -> Step | None:
    cost = 0.0
    for layer in layers:
        step = module_geometry(layer, source)
        if step is None:
            return None
        source, layer_cost = step
        cost += layer_cost
    return source, cost


POINTWISE_MODULES = (nn.ReLU, nn.ReLU6, nn.Hardtanh, nn.SiLU, nn.GELU, nn.Hardswish, nn.Hardsigmoid, nn.Sigmoid,
                     nn.Tanh, nn.LeakyReLU, nn.ELU, nn.Identity)
POINTWISE_FUNCTIONS = {F.relu, F.relu6, F.hardtanh, F.silu, F.gelu, F.hardswish, torch.relu, torch.sigmoid,
                       torch.tanh}
ELEMENTWISE_FUNCTIONS = {operator.add, operator.mul, operator.iadd, torch.add, torch.mul}
POINTWISE_METHODS = {"relu", "relu_", "sigmoid", "contiguous", "add", "add_", "mul", "mul_"}

# How a module moves the map, and what it costs; the first matching type decides.
MODULE_GEOMETRY: dict[type | tuple[type, ...], Callable[[nn.Module, Map], Step | None]] = {
    nn.Conv2d: _conv,
    FusedConvActivation: lambda module, source: _fused(module, source),
    FrozenChain: lambda module, source: _layers(list(module.layers), source),
    (nn.MaxPool2d, nn.AvgPool2d): _pool,
    POINTWISE_MODULES: lambda module, source: _pointwise(source),
    # in training, BatchNorm's batch statistics mix the images and dropout draws a mask per image
    (nn.BatchNorm2d, nn.Dropout): lambda module, source: None if module.training else _pointwise(source),
}


def module_geometry(module: nn.Module, source: Map) -> Step | None:
    """(the map after `module`, its cost), or None where a head cannot hold it."""
    for kind, rule in MODULE_GEOMETRY.items():
        if isinstance(module, kind):
            return rule(module, source)
    return None


def _node_geometry(node: torch.fx.Node, model: torch.fx.GraphModule, known: dict[torch.fx.Node, Map]) -> Step | None:
    """The node's output map and cost, or None where the head must end."""
    inputs = [arg for arg in (*node.args, *node.kwargs.values()) if isinstance(arg, torch.fx.Node)]
    if not inputs or any(arg not in known for arg in inputs):
        return None
    source = known[inputs[0]]
    if node.op == "call_module":
        return module_geometry(model.get_submodule(node.target), source) if len(inputs) == 1 else None
    if not ((node.op == "call_function" and node.target in POINTWISE_FUNCTIONS | ELEMENTWISE_FUNCTIONS)
            or (node.op == "call_method" and node.target in POINTWISE_METHODS)):
        return None
    axes = source.axes
    for arg in inputs[1:]:  # an elementwise op of two maps sees both receptive fields
        height, width = axes[0].union(known[arg].axes[0]), axes[1].union(known[arg].axes[1])
        if height is None or width is None or known[arg].channels != source.channels:
            return None
        axes = (height, width)
    return _pointwise(Map(axes, source.channels), len(inputs))


class Layout:
    """The graph's cut points and each stretch between two of them, for inputs of one shape.

    A cut point is a block boundary: a node after which nothing computed before it is used, and which either feeds
    two nodes (a block's input: its layers and its shortcut) or sums two maps (a block's end). Straight runs of
    layers hold none, so engine/fusion.py, which only merges straight runs, leaves the cut points where they were:
    a model gets the same plan fused or not, and fusion changes no number here either."""

    def __init__(self, model: torch.fx.GraphModule, channels: int, height: int, width: int) -> None:
        self.model = model
        self.nodes = list(model.graph.nodes)
        self.input = Map((Axis(height), Axis(width)), channels)
        position = {node: i for i, node in enumerate(self.nodes)}
        self.is_cut = [False] * len(self.nodes)
        reach = 0  # the last position anything before node i is used at
        for i, node in enumerate(self.nodes):
            joins = node.op == "call_function" and node.target in ELEMENTWISE_FUNCTIONS and sum(
                isinstance(arg, torch.fx.Node) for arg in node.args) >= 2
            self.is_cut[i] = 0 < i and reach <= i and node.op != "output" and (len(node.users) >= 2 or joins)
            reach = max(reach, i, *(position[user] for user in node.users))
        self._walks: dict[int, list[tuple[int, Map, float]]] = {}

    def walk(self, start: int, source: Map) -> list[tuple[int, Map, float]]:
        """(cut position, its map with receptive fields measured on `start`'s map, the cost from `start`) for every
        cut after `start` up to the first node a head cannot hold."""
        if start not in self._walks:
            known = {self.nodes[start]: Map(tuple(Axis(axis.size) for axis in source.axes), source.channels)}
            found, cost = [], 0.0
            for i in range(start + 1, len(self.nodes)):
                step = _node_geometry(self.nodes[i], self.model, known)
                if step is None:
                    break
                known[self.nodes[i]], node_cost = step
                cost += node_cost
                if self.is_cut[i]:
                    found.append((i, known[self.nodes[i]], cost))
            self._walks[start] = found
        return self._walks[start]


# ------------------------------------------------------------------------------------------------ plans
def _segment(model: torch.fx.GraphModule, after: torch.fx.Node | None,
             until: torch.fx.Node | None) -> torch.fx.GraphModule:
    """The graph's stretch after node `after` (None: from the input) up to and including `until` (None: to the
    output), as a module that takes `after`'s output. It shares the model's submodules (no weight is copied)."""
    graph = torch.fx.Graph()
    copied: dict[torch.fx.Node, torch.fx.Node] = {}
    started = after is None
    for node in model.graph.nodes:
        if not started:
            if node is after:
                copied[node] = graph.placeholder("features")
                started = True
            continue
        copied[node] = graph.node_copy(node, copied.__getitem__)
        if node is until:
            graph.output(copied[node])
            break
    return torch.fx.GraphModule(model, graph)


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
class Stage:
    """A stretch of the head: once on the shared image, on the batch only over a crop of its input map."""

    layers: torch.fx.GraphModule
    rows: Span
    cols: Span

    def __call__(self, shared: torch.Tensor, batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(the shared image's map, the batch's map: the shared one with the crop's positions pasted in)."""
        shared = self.layers(shared)
        crop = batch[:, :, self.rows.crop, self.cols.crop].contiguous(memory_format=_memory_format(batch))
        part = self.layers(crop)
        stitched = shared.expand(len(batch), -1, -1, -1).clone(memory_format=_memory_format(shared))
        stitched[:, :, self.rows.region, self.cols.region] = part[:, :, self.rows.inside, self.cols.inside]
        return shared, stitched


@dataclass
class Plan:
    """How one batch shape runs: the head in stages, each over the crop the box reaches, then the tail whole."""

    stages: list[Stage]
    head: torch.fx.GraphModule  # the stages' layers in one piece, for the check
    tail: torch.fx.GraphModule
    cut: str  # the last stage's last node

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The head's output for the batch `x`."""
        shared, batch = x[:1], x
        for stage in self.stages:
            shared, batch = stage(shared, batch)
        return batch

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.tail(self.features(x))

    def agrees(self, x: torch.Tensor) -> bool:
        """The staged head equals the whole one on `x` (within rounding of its scale): the geometry was read right."""
        with torch.no_grad():
            try:
                staged = self.features(x)
            except RuntimeError:  # a crop of the wrong size: the geometry was read wrong
                return False
            whole = self.head(x)
        if staged.shape != whole.shape:
            return False
        # float32 agrees to 1e-4 (bit for bit in the tests); under a GPU's fp16/bf16 autocast each path rounds on its
        # own, while a misread layer is off by the size of the values themselves
        tolerance = 1e-4 if whole.dtype == torch.float32 else 1e-2
        finite = whole[whole.isfinite()]  # an overflow to inf must not make the tolerance inf or NaN
        scale = float(finite.abs().max().clamp(min=1e-12)) if finite.numel() else 1e-12
        return bool(torch.allclose(staged.float(), whole.float(), rtol=tolerance, atol=tolerance * scale,
                                   equal_nan=True))


CHECK_IMAGES = 8  # images a plan is checked on: the one-time check costs 2 x 8 images of the head


def check_sample(x: torch.Tensor) -> torch.Tensor | None:
    """The images a new plan is checked on: the batch's first CHECK_IMAGES finite ones, provided they are not all
    equal (images equal to the first would hide a misread region, whose positions keep the first image's values;
    if the first ones are, all the finite ones); None when no two finite images differ."""
    with torch.no_grad():
        finite = x.isfinite().flatten(1).all(dim=1)
        candidates = x if bool(finite.all()) else x[finite]
        sample = candidates[:CHECK_IMAGES]
        if differing_box(sample) is None:
            sample = candidates
    return sample if differing_box(sample) is not None else None


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


def choose_stages(layout: Layout, box: tuple[int, int, int, int], batch: int) -> list[tuple[int, int, Span, Span]]:
    """The stages (start, end, rows, cols; positions in the graph) that save the most by the cost model: a dynamic
    programme over the cut points, each stage's crop taken around the positions the box reaches at its start."""
    source = layout.input
    cumulative = {0: source}
    cumulative.update({i: target for i, target, _ in layout.walk(0, source)})
    regions = {0: (slice(box[0], box[1]), slice(box[2], box[3]))}
    for i, target in cumulative.items():
        if i:
            regions[i] = (Span.of(target.axes[0], source.axes[0].size, box[0], box[1]).region,
                          Span.of(target.axes[1], source.axes[1].size, box[2], box[3]).region)
    best: dict[int, tuple[float, tuple[int, Span, Span] | None]] = {}
    for start in sorted(cumulative, reverse=True):
        here = cumulative[start]  # only its sizes and channels count: walk() measures fields from its start
        best[start] = (0.0, None)
        rows_region, cols_region = regions[start]
        for end, target, cost in layout.walk(start, here):
            rows = Span.of(target.axes[0], here.axes[0].size, rows_region.start, rows_region.stop)
            cols = Span.of(target.axes[1], here.axes[1].size, cols_region.start, cols_region.stop)
            cropped = here.channels * (rows.crop.stop - rows.crop.start) * (cols.crop.stop - cols.crop.start)
            fraction = cropped / here.elements
            saving = cost * (1 - fraction - 1 / batch) - STITCH_COST * (cropped + target.elements)
            if saving + best[end][0] > best[start][0]:
                best[start] = (saving + best[end][0], (end, rows, cols))
    network = max((cost for _, _, cost in layout.walk(0, source)), default=0.0)
    if best[0][0] < LEAST_SAVING * network:
        return []
    stages, start = [], 0
    while best[start][1] is not None:
        end, rows, cols = best[start][1]
        stages.append((start, end, rows, cols))
        start = end
    return stages


_UNCHECKED = object()  # _make_plan: a plan was chosen but the batch had nothing to check it on


class SharedBorder(nn.Module):
    """`model` (a torch.fx GraphModule) with its head computed once for the border a batch has in common."""

    def __init__(self, model: torch.fx.GraphModule) -> None:
        super().__init__()
        self.model = model
        self._layouts: dict[tuple[int, ...], Layout] = {}
        self._modules_of: dict[tuple[int, int | None], torch.fx.GraphModule] = {}
        self._plans: dict[tuple, Plan | None] = {}
        self.batches_shared = 0  # batches that ran through a plan: env.json records whether sharing happened

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        plan = self.plan(x)
        if plan is None:
            return self.model(x)
        self.batches_shared += 1
        return plan(x)

    def plan(self, x: torch.Tensor) -> Plan | None:
        """The plan for this batch (cached by its shape and box), None to run the whole model."""
        box = differing_box(x)
        if box is None:
            return None
        key = (tuple(x.shape), box)
        if key not in self._plans:
            plan = self._make_plan(x, box)
            if plan is _UNCHECKED:  # no two finite, differing images here: run whole, decide on a later batch
                return None
            self._plans[key] = plan
        return self._plans[key]

    def _module(self, after: int, until: int | None) -> torch.fx.GraphModule:
        if (after, until) not in self._modules_of:
            nodes = list(self.model.graph.nodes)
            self._modules_of[(after, until)] = _segment(self.model, None if after == 0 else nodes[after],
                                                        None if until is None else nodes[until])
        return self._modules_of[(after, until)]

    def _make_plan(self, x: torch.Tensor, box: tuple[int, int, int, int]) -> Plan | None | object:
        shape = tuple(x.shape[1:])
        if shape not in self._layouts:
            self._layouts[shape] = Layout(self.model, *shape)
        layout = self._layouts[shape]
        chosen = choose_stages(layout, box, len(x))
        if not chosen:
            return None
        stages = [Stage(self._module(start, end), rows, cols) for start, end, rows, cols in chosen]
        last = chosen[-1][1]
        sample = check_sample(x)
        if sample is None:
            return _UNCHECKED
        plan = Plan(stages, self._module(0, last), self._module(last, None), layout.nodes[last].name)
        if plan.agrees(sample):
            return plan
        log.warning("shared border: the staged features up to %s differ from the whole computation; "
                    "inputs of this shape run the whole network", plan.cut)
        return None


def share_border(model: nn.Module) -> nn.Module:
    """`model` wrapped in SharedBorder where it is a traced graph with one input (as fold_batchnorm returns it),
    else `model` itself."""
    if not isinstance(model, torch.fx.GraphModule):
        return model
    nodes = list(model.graph.nodes)
    if sum(node.op == "placeholder" for node in nodes) != 1 or nodes[0].op != "placeholder":
        return model
    return SharedBorder(model)
