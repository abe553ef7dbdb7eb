"""Speed-ups of the VR loop: two that change no number, and one (on by default, with a switch) that changes rounding.
(The fourth, convolutions fused with their activations, lives in fusion.py; it changes no number either.)

- Freed memory stays in the process (glibc's mmap and trim thresholds raised to 1 GiB, as jemalloc or tcmalloc
  would do): a batch's activations are tens of MB, and by default glibc returns each such block to the kernel
  when it is freed and page-faults it back in on the next batch. Measured on EfficientNet-Lite0 at 96 px, batch
  32, 2 threads: about x1.3 on inference and x1.25 on a training step. Only where allocations go changes.
- Inference passes (the label-mapping pass and the test) run under ``torch.inference_mode``: the same kernels as
  ``no_grad`` without autograd's version counters, so the numbers are bitwise those of ``no_grad``.
- A frozen backbone's BatchNorm layers are folded into the convolutions in front of them (w' = w * g / sqrt(v + e),
  b' = (b - m) * g / sqrt(v + e) + beta): the BatchNorm pass disappears from the forward and the backward (in eval
  mode its backward cost as much as the depthwise convolutions' on CPU). That is the same function, but float
  rounding changes in the last bits (measured on EfficientNet-Lite0: logits differ by about 4e-5 at a logit scale of
  10; tests/test_engine_speed.py holds them within 1e-4), the size of the difference between two machines or two
  memory formats. Training amplifies such last-bit differences (ReLU6 clamps and Adam's sign-like first steps), so a
  five-epoch run on 500 images ends elsewhere, as it would on another machine; seed-to-seed spread is far larger.
  ON by default for frozen convnet backbones (x1.5 on a training step, x1.3 on inference); ``VRBENCH_FOLD_BN=0``
  turns it off to get bitwise the numbers of the unfolded model. Not part of the job id (like the device);
  env.json records how many pairs were folded.
"""

from __future__ import annotations

import ctypes
import sys

import torch
import torch.fx
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from vrbench.switches import switch_on

FOLD_ENV = "VRBENCH_FOLD_BN"


def fold_enabled() -> bool:
    """On unless VRBENCH_FOLD_BN is 0 (or false, no, off)."""
    return switch_on(FOLD_ENV)


_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameter numbers (malloc.h)
_GLIBC_DEFAULTS = {_M_TRIM_THRESHOLD: 128 * 1024, _M_MMAP_THRESHOLD: 128 * 1024}


def keep_freed_memory(keep: bool = True) -> bool:
    """Keep freed blocks in the process (True), or set glibc's default thresholds again (False; glibc's adaptive
    raising of the mmap threshold stays off once a threshold was set, so this is not a fresh process's allocator).
    Returns False where there is no glibc."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl and other C libraries: nothing to tune
        return False
    for parameter, default in _GLIBC_DEFAULTS.items():
        mallopt(parameter, 1 << 30 if keep else default)
    if not keep:
        libc.malloc_trim(0)
    return True


class _Tracer(torch.fx.Tracer):
    """Keeps every convolution (including subclasses with their own padding rule, as Lite's TF 'same') one node."""

    def is_leaf_module(self, module: nn.Module, qualified_name: str) -> bool:
        return isinstance(module, nn.Conv2d) or super().is_leaf_module(module, qualified_name)


def fold_batchnorm(model: nn.Module) -> tuple[nn.Module, int]:
    """A copy of the frozen eval-mode `model` with every Conv2d -> BatchNorm2d pair merged into one conv.

    Returns (model, number of folded pairs); a model that torch.fx cannot trace, or that has no such pair, comes
    back unchanged with 0. Only for frozen backbones: folded BN statistics no longer train or update.
    """
    try:
        graph = _Tracer().trace(model)
    except Exception:  # noqa: BLE001 - data-dependent control flow: keep the eager model
        return model, 0
    traced = torch.fx.GraphModule(model, graph)
    modules = dict(traced.named_modules())
    folded = 0
    for node in list(traced.graph.nodes):
        if node.op != "call_module" or not isinstance(modules.get(node.target), nn.BatchNorm2d):
            continue
        source = node.args[0]
        if not (isinstance(source, torch.fx.Node) and source.op == "call_module"
                and type(modules.get(source.target)) in _FOLDABLE and len(source.users) == 1):
            continue
        conv, norm = modules[source.target], modules[node.target]
        if not norm.track_running_stats or norm.running_mean is None:
            continue
        _replace(traced, source.target, fuse_conv_bn_eval(conv.eval(), norm.eval()))
        node.replace_all_uses_with(source)
        traced.graph.erase_node(node)
        folded += 1
    if not folded:
        return model, 0
    traced.graph.lint()
    traced.delete_all_unused_submodules()
    traced.recompile()
    return traced, folded


def _foldable_types() -> tuple[type, ...]:
    from vrbench.backbones.efficientnet_lite import _SameConv2d

    return (nn.Conv2d, _SameConv2d)


_FOLDABLE = _foldable_types()


def _replace(root: nn.Module, target: str, module: nn.Module) -> None:
    parent_name, _, name = target.rpartition(".")
    setattr(root.get_submodule(parent_name) if parent_name else root, name, module)
