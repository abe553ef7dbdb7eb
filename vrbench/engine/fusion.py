"""A frozen convnet's convolutions run with their activations fused, and its straight runs of layers train as one
autograd node: the same numbers, fewer passes over memory (CPU, oneDNN).

After BatchNorm folding (speed.py) a convnet is mostly conv -> ReLU6 (EfficientNet-Lite) or conv -> ReLU (ResNet).
Two rewrites of its torch.fx graph, both bit for bit the same outputs and input gradients (tests/test_fusion.py):

- Each conv whose only user is its activation becomes a `FusedConvActivation`: oneDNN applies the activation as the
  convolution's post-op (``mkldnn::_convolution_pointwise``, the kernel torch.compile's CPU backend emits for this
  pattern, here without a compiler or compile time) instead of a separate pass over a tensor far larger than the
  cache. The sums are the convolution's and clamping is exact.
- Each straight run of such layers (every output used only by the next layer: an MBConv block's expand, depthwise and
  project convolutions, the first two of a ResNet bottleneck) becomes one `FrozenChain`. Where the input needs a
  gradient, the chain is one autograd node whose backward calls the kernels autograd would call for the unfused
  layers (the activation's backward from the saved output, then ``convolution_backward`` for the input only), but
  applies each inner activation's mask in place on a gradient that it has just made itself, and keeps one tensor
  per layer where autograd keeps two (the activation's input and the next convolution's). One node per run instead
  of one per layer also keeps the Python cost of a hand-written backward small: per layer, it ate what the fused
  forward saved (measured: 129 ms per EfficientNet-Lite0 step at batch 32 either way).

Measured side by side: `python benchmarks/engine_throughput.py --levers` (the row "ILM unfused act.", per epoch)
and `python benchmarks/training_step.py` (the backbone alone).
Only float32 models on a CPU with oneDNN whose weights are all frozen are rewritten; VRBENCH_FUSE_ACTIVATIONS=0
turns both rewrites off (they change no number; the switch is for measuring).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.fx
import torch.nn.functional as F
from torch import nn
from torch.autograd.function import once_differentiable

from vrbench.switches import switch_on

FUSE_ENV = "VRBENCH_FUSE_ACTIVATIONS"


@dataclass(frozen=True)
class Activation:
    """An activation oneDNN can apply as a post-op: its oneDNN name and scalars."""

    name: str  # oneDNN's ("relu", "hardtanh")
    scalars: tuple[float, ...]

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return F.relu(y) if self.name == "relu" else F.hardtanh(y, *self.scalars)

    def backward(self, grad: torch.Tensor, output: torch.Tensor, in_place: bool) -> torch.Tensor:
        """The gradient through the activation from its output (the same mask as from its input: the activation
        keeps exactly the values inside its range); `in_place` writes it into `grad`."""
        if self.name == "relu":
            if in_place:
                return torch.ops.aten.threshold_backward.grad_input(grad, output, 0, grad_input=grad)
            return torch.ops.aten.threshold_backward(grad, output, 0)
        if in_place:
            return torch.ops.aten.hardtanh_backward.grad_input(grad, output, *self.scalars, grad_input=grad)
        return torch.ops.aten.hardtanh_backward(grad, output, *self.scalars)


RELU, RELU6 = Activation("relu", ()), Activation("hardtanh", (0.0, 6.0))


def _activation_of(node: torch.fx.Node, modules: dict[str, nn.Module]) -> Activation | None:
    """The fusable activation a graph node applies to its first argument, or None."""
    if node.op == "call_function":
        if node.target in (F.relu, torch.relu):
            return RELU
        if node.target is F.relu6:
            return RELU6
        if node.target is F.hardtanh:
            bounds = [*node.args[1:3]] + [node.kwargs[k] for k in ("min_val", "max_val") if k in node.kwargs]
            return Activation("hardtanh", tuple(float(b) for b in bounds)) if len(bounds) == 2 else None
    if node.op == "call_module":
        module = modules.get(node.target)
        if type(module) is nn.ReLU:
            return RELU
        if type(module) in (nn.ReLU6, nn.Hardtanh):
            return Activation("hardtanh", (float(module.min_val), float(module.max_val)))
    return None


@dataclass(frozen=True, eq=False)
class _Call:
    """What one conv layer computes on one input: F.conv2d(F.pad(x, input_padding), weight, ..., padding)."""

    conv: nn.Conv2d
    weight: torch.Tensor
    padding: list[int]
    input_padding: tuple[int, int, int, int] | None  # (left, right, top, bottom), as F.pad takes it

    @classmethod
    def of(cls, conv: nn.Conv2d, x: torch.Tensor) -> _Call:
        arguments = getattr(conv, "conv_arguments", None)  # a conv with its own padding rule (Lite's TF 'same')
        if arguments is not None:
            return cls(conv, *arguments(x))
        return cls(conv, conv.weight, list(conv.padding), None)

    def input(self, x: torch.Tensor) -> torch.Tensor:
        return x if self.input_padding is None else F.pad(x, self.input_padding)

    def run(self, x: torch.Tensor, activation: Activation | None) -> torch.Tensor:
        """The convolution (and activation) on the already padded input, in one oneDNN call where there is one."""
        conv = self.conv
        if activation is None:
            return F.conv2d(x, self.weight, conv.bias, conv.stride, self.padding, conv.dilation, conv.groups)
        return torch.ops.mkldnn._convolution_pointwise(x, self.weight, conv.bias, self.padding, list(conv.stride),
                                                       list(conv.dilation), conv.groups, activation.name,
                                                       list(activation.scalars), None)

    def input_gradient(self, grad: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """The gradient for the unpadded input, as autograd computes it for the convolution (and the pad)."""
        conv = self.conv
        bias_sizes = None if conv.bias is None else [conv.bias.shape[0]]
        grad = torch.ops.aten.convolution_backward(grad, x, self.weight, bias_sizes, list(conv.stride), self.padding,
                                                   list(conv.dilation), False, [0, 0], conv.groups,
                                                   [True, False, False])[0]
        if self.input_padding is None:
            return grad
        left, right, top, bottom = self.input_padding
        return grad[..., top:grad.shape[-2] - bottom, left:grad.shape[-1] - right]


def _native(x: torch.Tensor) -> bool:
    return x.dtype == torch.float32 and x.device.type == "cpu"


class FusedConvActivation(nn.Module):
    """`conv` followed by `activation`: one oneDNN call where nothing needs a gradient (float32 on a CPU), else the
    two ops as they were (inside a FrozenChain, the chain takes care of training)."""

    def __init__(self, conv: nn.Conv2d, activation: Activation) -> None:
        super().__init__()
        self.conv = conv
        self.activation = activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if (torch.is_grad_enabled() and (x.requires_grad or self.conv.weight.requires_grad)) or not _native(x):
            return self.activation.forward(self.conv(x))
        call = _Call.of(self.conv, x)
        return call.run(call.input(x), self.activation)

    def extra_repr(self) -> str:
        return f"activation={self.activation.name}{list(self.activation.scalars) or ''}"


def _parts(layer: nn.Module) -> tuple[nn.Conv2d, Activation | None]:
    return (layer.conv, layer.activation) if isinstance(layer, FusedConvActivation) else (layer, None)


class FrozenChain(nn.Module):
    """Layers (FusedConvActivation or plain conv) each fed only by the one before: one autograd node in training."""

    def __init__(self, layers: list[nn.Module]) -> None:
        super().__init__()
        self.layers = nn.ModuleList(layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.is_grad_enabled() and x.requires_grad and _native(x) and not any(
                p.requires_grad for p in self.parameters()):
            return _ChainFunction.apply(x, self)
        for layer in self.layers:
            x = layer(x)
        return x


class _ChainFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, chain: FrozenChain) -> torch.Tensor:
        inputs, calls, activations = [], [], []
        for layer in chain.layers:
            conv, activation = _parts(layer)
            call = _Call.of(conv, x)
            x = call.input(x)
            inputs.append(x)
            calls.append(call)
            activations.append(activation)
            x = call.run(x, activation)
        ctx.save_for_backward(*inputs, x if activations[-1] is not None else None)
        ctx.calls, ctx.activations = calls, activations
        return x

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        saved = ctx.saved_tensors
        inputs, output = saved[:-1], saved[-1]
        outputs = [*inputs[1:], output]  # each layer's output is the next one's input
        for i in reversed(range(len(ctx.calls))):
            activation = ctx.activations[i]
            if activation is not None:  # in place only on gradients this backward made itself
                grad = activation.backward(grad, outputs[i], in_place=i < len(ctx.calls) - 1)
            grad = ctx.calls[i].input_gradient(grad, inputs[i])
        return grad, None


def fusable(model: nn.Module) -> bool:
    """Whether `model` can be fused here: a torch with oneDNN, every parameter on the CPU, float32 and frozen."""
    if not torch.backends.mkldnn.is_available() or not hasattr(torch.ops.mkldnn, "_convolution_pointwise"):
        return False
    return all(p.device.type == "cpu" and p.dtype == torch.float32 and not p.requires_grad
               for p in model.parameters())


def _plain_conv(module: nn.Module | None) -> bool:
    """A Conv2d that computes F.conv2d with zero padding: nn.Conv2d itself, or a subclass that says how
    (``conv_arguments``, as EfficientNet-Lite's TF 'same' conv); other subclasses may do anything in forward."""
    if not isinstance(module, nn.Conv2d) or module.padding_mode != "zeros" or isinstance(module.padding, str):
        return False
    return type(module) is nn.Conv2d or hasattr(module, "conv_arguments")


def fuse_enabled() -> bool:
    """On unless VRBENCH_FUSE_ACTIVATIONS is 0 (or false, no, off): a switch for measuring, not for numbers."""
    return switch_on(FUSE_ENV)


def fuse_activations(model: nn.Module) -> tuple[int, int]:
    """Rewrite `model` (a torch.fx GraphModule, as fold_batchnorm returns) in place: conv + activation pairs become
    FusedConvActivation, then straight runs of layers become FrozenChain. Returns (fused pairs, chains).

    A model that is not a GraphModule, or that `fusable` refuses, is left as it is ((0, 0)).
    """
    if not isinstance(model, torch.fx.GraphModule) or not fusable(model):
        return 0, 0
    pairs, chains = _fuse_pairs(model), _chain_layers(model)
    if pairs or chains:
        model.graph.lint()
        model.delete_all_unused_submodules()
        model.recompile()
    return pairs, chains


def _fuse_pairs(model: torch.fx.GraphModule) -> int:
    modules = dict(model.named_modules())
    count = 0
    for node in list(model.graph.nodes):
        activation = _activation_of(node, modules)
        source = node.args[0] if activation is not None and node.args else None
        if not (isinstance(source, torch.fx.Node) and source.op == "call_module" and len(source.users) == 1
                and _plain_conv(modules.get(source.target))):
            continue
        name = f"{source.target.replace('.', '_')}_with_{activation.name}"
        model.add_submodule(name, FusedConvActivation(modules[source.target], activation))
        _replace(model, [source, node], name)
        count += 1
    return count


def _chain_layers(model: torch.fx.GraphModule) -> int:
    modules = dict(model.named_modules())

    def layer(node: torch.fx.Node) -> bool:
        module = modules.get(node.target) if node.op == "call_module" else None
        return isinstance(module, FusedConvActivation) or _plain_conv(module)

    count = 0
    chained: set[torch.fx.Node] = set()
    for node in list(model.graph.nodes):
        if node in chained or not layer(node):
            continue
        run = [node]
        while len(run[-1].users) == 1:
            (user,) = run[-1].users
            if not (layer(user) and user.args == (run[-1],) and not user.kwargs):
                break
            run.append(user)
        if len(run) < 2:
            continue
        chained.update(run)
        name = f"chain_{count}"
        model.add_submodule(name, FrozenChain([modules[n.target] for n in run]))
        _replace(model, run, name)
        count += 1
    return count


def _replace(model: torch.fx.GraphModule, nodes: list[torch.fx.Node], name: str) -> None:
    """Put one call of submodule `name` on the first node's input where `nodes` (a straight run) were."""
    with model.graph.inserting_after(nodes[-1]):
        replacement = model.graph.call_module(name, (nodes[0].args[0],))
    nodes[-1].replace_all_uses_with(replacement)
    for node in reversed(nodes):
        model.graph.erase_node(node)
