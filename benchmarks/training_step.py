"""The frozen backbone's share of an epoch, fused against unfused, side by side in one process.

    python benchmarks/training_step.py [--rounds 8] [--threads 2] [--backbone efficientnet_lite0] [--canvas 96]
                                       [--batches 32 64 96]

EfficientNet-Lite0 with its packaged weights, BatchNorm folded and channels_last as the engine runs it, on padding
VR's inputs (random 32-px images centred on a 96-px canvas, one random pattern around them). It alternates, round by
round, the model as folded, the model after vrbench.engine.fusion (convolutions fused with their activations,
straight runs of layers as one autograd node), and that one with vrbench.engine.border's shared border (the first
layers once for the border the batch has in common, the batch only around its images), and prints the median
images/s of

- a training step: forward and backward to the input at batch 32, and the same at 64 and 96 (what stacking the
  batches of two or three seeds of a cell into one forward would give; --batches sets them);
- an inference pass at the engine's inference batch (128), as the mapping and test passes run it;

With --backbone resnet18 (or resnet50) --canvas 224 it times ILM-VP's CIFAR setting, 32-px images on a 224-px
canvas; torchvision's ResNets get random weights (none ship offline; the timing depends on shapes, not values).

Then the bytes of activations each model keeps for the backward of one batch of the first training size
(saved-tensor hooks; weights excluded, the model holds them anyway). It checks that the fused model's outputs and
input gradients are the folded one's bit for bit, and the shared border's within 1e-4 of the logits and, for the
input gradient summed over the batch (what a pattern broadcast over it receives; engine/border.py), within 1e-5 of
its largest value.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

import torch
import torchvision
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vrbench.backbones.efficientnet_lite import load_efficientnet_lite  # noqa: E402
from vrbench.engine.border import share_border  # noqa: E402
from vrbench.engine.fusion import fuse_activations  # noqa: E402
from vrbench.engine.loop import INFERENCE_BATCH  # noqa: E402
from vrbench.engine.speed import fold_batchnorm, keep_freed_memory  # noqa: E402

IMAGE = 32  # the digits' and CIFAR's side length


def batch(size: int, pattern: torch.Tensor) -> torch.Tensor:
    """Padding VR's input: random images centred on the canvas, the same pattern around them."""
    before = (pattern.shape[-1] - IMAGE + 1) // 2
    after = pattern.shape[-1] - IMAGE - before
    images = torch.nn.functional.pad(torch.randn(size, 3, IMAGE, IMAGE), (before, after, before, after))
    return (images + pattern).contiguous(memory_format=torch.channels_last)


def backbone(name: str) -> nn.Module:
    if name.startswith("efficientnet_lite"):
        return load_efficientnet_lite(name)
    return getattr(torchvision.models, name)()


def training_step(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    inputs = x.clone().requires_grad_(True)
    out = model(inputs)
    (out * torch.linspace(-1, 1, out.shape[1])).sum().backward()
    return out.detach(), inputs.grad


def kept_for_backward(model: nn.Module, x: torch.Tensor) -> int:
    """Bytes of the batch-sized tensors autograd keeps for the backward of one forward."""
    storages: dict[int, int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        if tensor.dim() == 4 and tensor.shape[0] == len(x):
            storages[tensor.untyped_storage().data_ptr()] = tensor.untyped_storage().nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        model(x.clone().requires_grad_(True))
    return sum(storages.values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--backbone", default="efficientnet_lite0",
                        choices=["efficientnet_lite0", "resnet18", "resnet50"])
    parser.add_argument("--canvas", type=int, default=96)
    parser.add_argument("--batches", type=int, nargs="+", default=[32, 64, 96], help="training batch sizes")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    keep_freed_memory()  # as the engine's workers run
    torch.manual_seed(0)
    folded, _ = fold_batchnorm(backbone(args.backbone).eval().requires_grad_(False))
    folded = folded.to(memory_format=torch.channels_last).requires_grad_(False)
    fused = copy.deepcopy(folded)
    pairs, chains = fuse_activations(fused)
    shared = share_border(fused)
    models = {"folded": folded, "fused": fused, "shared": shared}
    pattern = torch.randn(1, 3, args.canvas, args.canvas)
    inputs = {size: batch(size, pattern) for size in (*args.batches, INFERENCE_BATCH)}
    first = args.batches[0]

    (logits, gradient), (fused_logits, fused_gradient), (shared_logits, shared_gradient) = (
        training_step(model, inputs[first]) for model in models.values())
    with torch.inference_mode():
        inference = [model(inputs[INFERENCE_BATCH]) for model in models.values()]
    same = [torch.equal(logits, fused_logits), torch.equal(gradient, fused_gradient),
            torch.equal(inference[0], inference[1])]
    if not all(same):
        raise SystemExit(f"fused and folded models differ (training output, input gradient, inference: {same})")
    logit_gap = max((shared_logits - fused_logits).abs().max(), (inference[2] - inference[1]).abs().max()).item()
    # the shared border gives the batch's sum of input gradients (what a pattern broadcast over it receives)
    summed, fused_summed = shared_gradient.sum(0), fused_gradient.sum(0)
    gradient_gap = ((summed - fused_summed).abs().max() / fused_summed.abs().max()).item()
    if logit_gap > 1e-4 * logits.abs().max() or gradient_gap > 1e-5:
        raise SystemExit(f"the shared border is off: logits by {logit_gap:.1e}, input gradient by {gradient_gap:.1e}")

    rates: dict[tuple[str, str], list[float]] = defaultdict(list)
    for round_ in range(args.rounds):
        for name in models if round_ % 2 == 0 else reversed(list(models)):
            model = models[name]
            for size in args.batches:
                training_step(model, inputs[size])  # warm: first calls of a shape pay oneDNN's primitive creation
                start = time.perf_counter()
                training_step(model, inputs[size])
                rates[(name, f"training step, batch {size}")].append(size / (time.perf_counter() - start))
            with torch.inference_mode():
                model(inputs[INFERENCE_BATCH])
                start = time.perf_counter()
                model(inputs[INFERENCE_BATCH])
                rates[(name, f"inference, batch {INFERENCE_BATCH}")].append(
                    INFERENCE_BATCH / (time.perf_counter() - start))

    print(f"{args.backbone}, folded, channels_last, {IMAGE}-px images on {args.canvas} px, {args.threads} threads, "
          f"torch {torch.__version__}, "
          f"{torch.backends.cpu.get_cpu_capability()}; medians of {args.rounds} alternating rounds; fusion: {pairs} "
          f"conv+activation pairs, {chains} chains; fused = folded bit for bit; shared border: logits within "
          f"{logit_gap:.0e}, the batch's input gradient within {gradient_gap:.0e} of its largest value")
    print(f"{'images/s':<28}{'folded':>10}{'fused':>10}{'shared':>10}{'fused/folded':>14}{'shared/fused':>14}")
    for phase in dict.fromkeys(phase for _, phase in rates):
        plain, fast, fastest = (statistics.median(rates[(name, phase)]) for name in models)
        print(f"{phase:<28}{plain:>10.1f}{fast:>10.1f}{fastest:>10.1f}{fast / plain:>13.2f}x{fastest / fast:>13.2f}x")
    kept = {name: kept_for_backward(model, inputs[first]) / 1e6 for name, model in models.items()}
    label = f"kept for backward ({first}), MB"
    print(f"{label:<28}{kept['folded']:>10.1f}{kept['fused']:>10.1f}{kept['shared']:>10.1f}"
          f"{kept['fused'] / kept['folded']:>13.2f}x{kept['shared'] / kept['fused']:>13.2f}x")


if __name__ == "__main__":
    main()
