"""Inference through a frozen convnet with each convolution and the activation after it as one oneDNN call (CPU).

After BatchNorm folding (speed.py) a convnet is mostly conv -> ReLU6 (EfficientNet-Lite) or conv -> ReLU (ResNet).
On a CPU the activation is a separate pass over a tensor that the convolution has just written, which at the
inference batch (128 images of 96 px) is far larger than the cache; oneDNN applies it as the convolution's post-op
instead (``mkldnn::_convolution_pointwise``, the kernel torch.compile's CPU backend emits for this pattern, here
without a compiler or compile time). The sums are the convolution's and clamping is exact, so the outputs are bit for
bit those of conv + activation (tests/test_fusion.py). The mapping and test passes gain about a fifth
(`python benchmarks/engine_throughput.py --levers`, "ILM unfused activations").

Training steps keep the two ops: a hand-written backward for the fused pair (the activation's backward, then the
convolution's input gradient) computes the same bits, but on EfficientNet-Lite0 it cost the Python overhead of 33
custom backward nodes per step, as much as the fused forward saved (measured side by side: 129 ms per step either
way at batch 32). So a fused layer runs fused only where nothing needs a gradient, as a float32 tensor on a CPU;
anywhere else it runs the plain conv and activation.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.fx
import torch.nn.functional as F
from torch import nn

from vrbench.engine.speed import switch_on

FUSE_ENV = "VRBENCH_FUSE_ACTIVATIONS"


@dataclass(frozen=True)
class Activation:
    """An activation oneDNN can apply as a post-op: its oneDNN name and scalars."""

    name: str  # oneDNN's ("relu", "hardtanh")
    scalars: tuple[float, ...]

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return F.relu(y) if self.name == "relu" else F.hardtanh(y, *self.scalars)


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


def _conv_arguments(conv: nn.Conv2d, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
    """(input, weight, symmetric padding) of the plain convolution `conv` computes (its own rule if it has one)."""
    arguments = getattr(conv, "conv_arguments", None)
    if arguments is not None:
        return arguments(x)
    return x, conv.weight, list(conv.padding)


def _fused(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, conv: nn.Conv2d, padding: list[int],
           activation: Activation) -> torch.Tensor:
    return torch.ops.mkldnn._convolution_pointwise(x, weight, bias, padding, list(conv.stride), list(conv.dilation),
                                                   conv.groups, activation.name, list(activation.scalars), None)


class FusedConvActivation(nn.Module):
    """`conv` followed by `activation`: one oneDNN call where nothing needs a gradient (float32 on a CPU), else the
    two ops as they were."""

    def __init__(self, conv: nn.Conv2d, activation: Activation) -> None:
        super().__init__()
        self.conv = conv
        self.activation = activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        conv = self.conv
        if (torch.is_grad_enabled() and (x.requires_grad or conv.weight.requires_grad)) \
                or x.dtype != torch.float32 or x.device.type != "cpu":
            return self.activation.forward(conv(x))  # autograd's own kernels (see the module's docstring)
        x, weight, padding = _conv_arguments(conv, x)
        return _fused(x, weight, conv.bias, conv, padding, self.activation)

    def extra_repr(self) -> str:
        return f"activation={self.activation.name}{list(self.activation.scalars) or ''}"


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


def fuse_activations(model: nn.Module) -> int:
    """Rewrite `model` (a torch.fx GraphModule, as fold_batchnorm returns) in place: every Conv2d whose only user is
    a ReLU, ReLU6 or hardtanh becomes one FusedConvActivation. Returns the number of fused pairs.

    A model that is not a GraphModule, or that `fusable` refuses, is left as it is (0).
    """
    if not isinstance(model, torch.fx.GraphModule) or not fusable(model):
        return 0
    modules = dict(model.named_modules())
    count = 0
    for node in list(model.graph.nodes):
        activation = _activation_of(node, modules)
        source = node.args[0] if activation is not None and node.args else None
        if not (isinstance(source, torch.fx.Node) and source.op == "call_module" and len(source.users) == 1):
            continue
        conv = modules.get(source.target)
        if not _plain_conv(conv):
            continue
        name = f"{source.target.replace('.', '_')}_with_{activation.name}"
        model.add_submodule(name, FusedConvActivation(conv, activation))
        with model.graph.inserting_after(node):
            replacement = model.graph.call_module(name, source.args)
        node.replace_all_uses_with(replacement)
        model.graph.erase_node(node)
        model.graph.erase_node(source)
        count += 1
    if count:
        model.graph.lint()
        model.delete_all_unused_submodules()
        model.recompile()
    return count
