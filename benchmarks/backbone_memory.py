"""Measure the metadata behind `vrbench run --dry-run`'s memory estimates: parameters and activation size per image.

Each backbone is built with random weights (no download: shapes do not depend on the weights) and run on one
image at its input size with a forward hook on every leaf module; the activation size is the sum of the bytes of
all leaf outputs (fp32), which is about what autograd keeps for a backward pass through the network. For CLIP the
image tower is measured, and the text tower on one 77-token prompt (what prompt learners backpropagate through,
once per class). The figures go into ``vrbench/backbones/__init__.py`` (``params_m``, ``activation_mb``,
``layer_mb``: the largest single output, what an inference pass holds at once, ``text_activation_mb``); rerun
this after adding a backbone:

    python benchmarks/backbone_memory.py
"""

from __future__ import annotations

import torch
from torch import nn

from vrbench.backbones import BACKBONES


def build(name: str) -> nn.Module:
    """The architecture with random (or, for the offline packages, shipped) weights."""
    info = BACKBONES.get(name)
    if info.is_clip:
        import open_clip

        from vrbench.clip.models import _register_configs, clip_spec

        _register_configs()
        return open_clip.create_model(clip_spec(name).model_name, pretrained=None, precision="fp32")
    if name in ("resnet18", "resnet50"):
        import torchvision

        return getattr(torchvision.models, name)(weights=None)
    if name in ("resnext101_32x8d_wsl", "vit_b32"):
        from vrbench.backbones.paper_models import build_architecture

        return build_architecture(name)
    return info.load()


def leaf_output_bytes(module: nn.Module, run) -> tuple[int, int]:
    """(sum, largest) of the bytes of the tensors leaf modules output while ``run()`` executes."""
    total = largest = 0

    def hook(_module, _inputs, output) -> None:
        nonlocal total, largest
        for tensor in output if isinstance(output, (tuple, list)) else (output,):
            if isinstance(tensor, torch.Tensor):
                total += tensor.numel() * 4  # fp32
                largest = max(largest, tensor.numel() * 4)
    handles = [m.register_forward_hook(hook) for m in module.modules() if not list(m.children())]
    try:
        with torch.no_grad():
            run()
    finally:
        for handle in handles:
            handle.remove()
    return total, largest


def measure(name: str) -> tuple[float, float, float, float | None]:
    """(parameters in millions, activation MB per image, largest layer output MB per image, text activation MB per
    prompt or None)."""
    info = BACKBONES.get(name)
    model = build(name).eval()
    params = sum(p.numel() for p in model.parameters()) / 1e6
    image = torch.rand(1, 3, info.input_size, info.input_size)
    if info.is_clip:
        total, largest = leaf_output_bytes(model.visual, lambda: model.visual(image))
        tokens = torch.zeros(1, 77, dtype=torch.int64)
        text, _ = leaf_output_bytes(model, lambda: model.encode_text(tokens))
        return params, total / 1e6, largest / 1e6, text / 1e6
    total, largest = leaf_output_bytes(model, lambda: model(image))
    return params, total / 1e6, largest / 1e6, None


def main() -> None:
    torch.set_num_threads(1)
    print(f"{'backbone':24} {'params (M)':>11} {'act. MB/image':>14} {'layer MB/image':>15} {'text MB/prompt':>15}")
    for info in BACKBONES:
        params, image_mb, layer_mb, text_mb = measure(info.name)
        text = "-" if text_mb is None else f"{text_mb:.2f}"
        print(f"{info.name:24} {params:11.2f} {image_mb:14.2f} {layer_mb:15.2f} {text:>15}", flush=True)


if __name__ == "__main__":
    main()
