"""Fused convolution + activation (vrbench.engine.fusion) gives bit for bit the numbers of the two ops it replaces,
on the backbones vrbench folds, and leaves alone what it cannot fuse exactly."""

from __future__ import annotations

import copy

import pytest
import torch
import torchvision
from torch import nn

from vrbench.backbones.efficientnet_lite import load_efficientnet_lite
from vrbench.engine.fusion import FUSE_ENV, FrozenChain, FusedConvActivation, fuse_activations, fuse_enabled
from vrbench.engine.speed import fold_batchnorm

pytestmark = pytest.mark.skipif(not torch.backends.mkldnn.is_available(), reason="this torch has no oneDNN")


def _folded(model: nn.Module) -> nn.Module:
    folded, _ = fold_batchnorm(model.eval().requires_grad_(False))
    return folded.to(memory_format=torch.channels_last).requires_grad_(False)


def _fused_pair(model: nn.Module) -> tuple[nn.Module, nn.Module, tuple[int, int]]:
    plain = _folded(model)
    fused = copy.deepcopy(plain)
    return plain, fused, fuse_activations(fused)


@pytest.mark.parametrize(("name", "pairs", "chains", "size"), [
    # stem, head, and every expand and depthwise conv; a chain per block, the blocks without a residual joined
    ("efficientnet_lite0", 33, 15, 96),
    ("efficientnet_lite0", 33, 15, 97),  # odd sizes: the stem pads a copy of its input (TF 'same')
    ("resnet18", 9, 8, 64),  # stem, and conv1 + relu -> conv2 of each basic block (conv2 is followed by the sum)
    ("resnet50", 33, 16, 64),
])
def test_fused_model_gives_bitwise_the_same_logits_and_input_gradients(name: str, pairs: int, chains: int,
                                                                        size: int) -> None:
    torch.manual_seed(0)
    model = (load_efficientnet_lite(name) if name.startswith("efficientnet") else
             getattr(torchvision.models, name)())  # random weights: the structure is what matters here
    plain, fused, counts = _fused_pair(model)
    assert counts == (pairs, chains)
    assert sum(isinstance(m, FusedConvActivation) for m in fused.modules()) == pairs
    assert sum(isinstance(m, FrozenChain) for m in fused.modules()) == chains
    x = torch.randn(6, 3, size, size).contiguous(memory_format=torch.channels_last) * 2
    with torch.inference_mode():
        assert torch.equal(plain(x), fused(x))
    with torch.no_grad():
        assert torch.equal(plain(x), fused(x))
    # a training step's view: the input needs a gradient, the chains are autograd nodes with their own backward
    results = []
    for network in (plain, fused):
        inputs = x.clone().requires_grad_(True)
        out = network(inputs)
        (out * torch.linspace(-1, 1, out.shape[1])).sum().backward()
        results.append((out.detach(), inputs.grad))
    assert torch.equal(results[0][0], results[1][0])
    assert torch.equal(results[0][1], results[1][1])


def test_a_chain_keeps_less_for_the_backward_than_autograd() -> None:
    """Autograd keeps both the activation's input and the next conv's input; a chain keeps one tensor per layer
    (counted: the activations kept for the backward, not the weights, which the model holds anyway)."""
    plain, fused, _ = _fused_pair(load_efficientnet_lite("efficientnet_lite0"))
    x = torch.randn(4, 3, 64, 64).contiguous(memory_format=torch.channels_last).requires_grad_(True)
    kept = []
    for network in (plain, fused):
        storages: dict[int, int] = {}

        def pack(tensor: torch.Tensor, storages: dict[int, int] = storages) -> torch.Tensor:
            if tensor.dim() == 4 and tensor.shape[0] == len(x):  # a batch of feature maps, not a weight
                storages[tensor.untyped_storage().data_ptr()] = tensor.untyped_storage().nbytes()
            return tensor

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
            network(x)
        kept.append(sum(storages.values()))
    assert kept[1] < 0.7 * kept[0]


class _WeightStandardized(nn.Conv2d):
    """A conv subclass with its own forward: fusing it with F.conv2d's arguments would change what it computes."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = (self.weight - self.weight.mean((1, 2, 3), keepdim=True)) / (self.weight.std((1, 2, 3),
                                                                                              keepdim=True) + 1e-5)
        return nn.functional.conv2d(x, weight, self.bias, self.stride, self.padding)


class _ConvLeaves(torch.fx.Tracer):
    """Keeps every conv one call_module node, subclasses too (as fold_batchnorm's tracer does)."""

    def is_leaf_module(self, module: nn.Module, qualified_name: str) -> bool:
        return isinstance(module, nn.Conv2d) or super().is_leaf_module(module, qualified_name)


def test_unknown_conv_subclasses_trainable_and_untraced_models_are_left_alone() -> None:
    root = nn.Sequential(_WeightStandardized(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 1)).requires_grad_(False)
    custom = torch.fx.GraphModule(root, _ConvLeaves().trace(root))
    assert [n.op for n in custom.graph.nodes].count("call_module") == 3  # the subclass is a node fusion could take
    assert fuse_activations(custom) == (0, 0)
    trainable = torch.fx.symbolic_trace(nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Conv2d(8, 8, 1)))
    assert fuse_activations(trainable) == (0, 0)  # a weight that trains gets autograd's kernels, never a fused call
    frozen = trainable.requires_grad_(False)
    assert fuse_activations(frozen) == (1, 1)
    untraced = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU()).requires_grad_(False)
    assert fuse_activations(untraced) == (0, 0)


def test_fusion_is_on_by_default_and_can_be_switched_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(FUSE_ENV, raising=False)
    assert fuse_enabled()
    monkeypatch.setenv(FUSE_ENV, "0")
    assert not fuse_enabled()


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_fused_kernels_turn_nan_into_numbers_so_the_engine_guards_the_input(bad: float) -> None:
    """oneDNN's ReLU/ReLU6 post-ops clamp NaN (max/min): the fused model returns numbers where the plain one returns
    NaN. That is why the loop checks the backbone's input (where NaN enters: tests/test_engine_speed.py) instead of
    relying on NaN logits tripping the loss guard."""
    torch.manual_seed(0)
    plain, fused, _ = _fused_pair(load_efficientnet_lite("efficientnet_lite0"))
    x = torch.rand(2, 3, 64, 64).contiguous(memory_format=torch.channels_last)
    x[0, :, :8, :8] = bad  # a non-finite pattern corner on image 0
    with torch.no_grad():
        theirs, ours = plain(x), fused(x)
    assert theirs[0].isnan().all() and torch.isfinite(ours[0]).all()
    assert torch.equal(theirs[1], ours[1])  # finite images: bit for bit as before
