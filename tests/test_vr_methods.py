"""Input transformations and learned heads of the vision VR methods (issue 3), on small real tensors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vrbench.backbones import BACKBONES, BackboneInfo
from vrbench.errors import ConfigError
from vrbench.methods.base import random_crop_flip
from vrbench.methods.baselines import FinetuneInput, ResizeInput
from vrbench.methods.label_mappings import (
    FinetunedLayerMapping,
    FullyConnectedMapping,
    ImageNetHeadMapping,
    IterativeMapping,
    LinearProbeHead,
)
from vrbench.methods.padding import PaddingVR
from vrbench.methods.smm import SMMVR, MaskGenerator, build_smm, upsample_patches
from vrbench.methods.watermark import WatermarkVR, build_full, build_medium, build_narrow, frame_mask

RESNET = BACKBONES.get("resnet18")
VIT = BackboneInfo("vit_b32", "unused:unused", 1000, 384, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225), "test",
                   offline=False, family="vit")
SMM_CONFIG = {"crop_margin": 32, "patch_size": 8, "mask_channels": 3, "mask_layers": None, "mask_lr": None,
              "mask_gamma": None, "resolution": None, "lr": 0.01, "gamma": 0.1}


def trainable(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def test_trainable_parameter_counts_equal_the_spec() -> None:
    assert trainable(PaddingVR(32, 224, RESNET.mean, RESNET.std)) == 150_528
    assert trainable(build_smm(SMM_CONFIG, RESNET)) == 177_027
    assert trainable(build_smm(SMM_CONFIG, VIT)) == 544_707
    assert trainable(MaskGenerator(5, 8, 3)) == 26_499 and trainable(MaskGenerator(6, 8, 3)) == 102_339
    full = build_full({"frame": None, "crop_margin": 4, "resolution": None}, RESNET)
    assert trainable(full) == 150_528 and int(full.mask.sum()) == 150_528  # BLM's "watermark" is the whole image


def test_smm_uses_the_papers_learning_rates_per_backbone_family() -> None:
    cnn = {g.name: (g.lr, g.gamma) for g in build_smm(SMM_CONFIG, RESNET).optimizer_groups(SMM_CONFIG)}
    vit = {g.name: (g.lr, g.gamma) for g in build_smm(SMM_CONFIG, VIT).optimizer_groups(SMM_CONFIG)}
    assert cnn == {"pattern": (0.01, 0.1), "mask_net": (0.01, 0.1)}
    assert vit == {"pattern": (0.01, 0.1), "mask_net": (0.001, 1.0)}


def test_patch_upsampling_is_nearest_neighbour_block_repetition() -> None:
    mask = torch.randn(2, 3, 4, 5)
    expected = np.repeat(np.repeat(mask.numpy(), 8, axis=2), 8, axis=3)
    assert np.array_equal(upsample_patches(mask, 8).numpy(), expected)
    # the original's view/expand/transpose chain, written out
    b, c, h, w = mask.shape
    chain = mask.view(b, c, h, 1, w, 1).expand(b, c, h, 8, w, 8).reshape(b, c, h * 8, w * 8)
    assert torch.equal(upsample_patches(mask, 8), chain)


def test_mask_grid_and_output_shapes() -> None:
    smm = build_smm(SMM_CONFIG, RESNET)
    x = torch.randn(2, 3, 224, 224)
    assert smm.mask_net(x).shape == (2, 3, 28, 28)
    assert smm(x).shape == x.shape
    assert torch.equal(smm(x), x)  # δ starts at zero: the input passes unchanged
    single = MaskGenerator(5, 8, 1)
    out = single(torch.randn(1, 3, 64, 64))
    assert out.shape == (1, 3, 8, 8) and torch.equal(out[:, 0], out[:, 2])


def test_mask_network_batchnorm_follows_the_module_mode() -> None:
    smm = build_smm(SMM_CONFIG, RESNET)
    bn = smm.mask_net.blocks[0][1]
    before = bn.running_mean.clone()
    with torch.no_grad():
        smm.eval()
        smm(torch.randn(4, 3, 224, 224))
        assert torch.equal(bn.running_mean, before)
        smm.train()
        smm(torch.randn(4, 3, 224, 224))
    assert not torch.equal(bn.running_mean, before)


@pytest.mark.parametrize(("layers", "patch", "channels"), [(4, 8, 3), (5, 32, 3), (5, 3, 3), (5, 8, 2)])
def test_invalid_mask_generators_are_config_errors(layers: int, patch: int, channels: int) -> None:
    with pytest.raises(ConfigError):
        MaskGenerator(layers, patch, channels)


def test_narrow_and_medium_are_frames_of_one_eighth_and_one_quarter() -> None:
    narrow = build_narrow({"crop_margin": 32, "resolution": None}, RESNET)
    medium = build_medium({"crop_margin": 32, "resolution": None}, RESNET)
    assert int(narrow.mask[0].sum()) == 224**2 - 168**2
    assert int(medium.mask[0].sum()) == 224**2 - 112**2
    assert narrow.mask[0, 28:196, 28:196].sum() == 0 and narrow.mask[0, 27, 100] == 1
    wide = build_narrow({"crop_margin": 32, "resolution": 384}, RESNET)
    assert int(wide.mask[0].sum()) == 384**2 - 288**2  # a 48-px frame at 384
    assert torch.equal(frame_mask(10, 5), torch.ones(3, 10, 10))


def test_watermark_adds_the_pattern_after_normalisation_only_inside_the_mask() -> None:
    vr = WatermarkVR(16, 4, 4, (0.5,) * 3, (0.25,) * 3)
    x = torch.full((1, 3, 20, 20), 0.75)
    normalised = vr.preprocess(x, train=False)
    assert normalised.shape == (1, 3, 16, 16) and torch.allclose(normalised, torch.ones_like(normalised))
    with torch.no_grad():
        vr.program.fill_(2.0)
    out = vr(normalised)
    assert torch.isclose(out[0, 0, 0, 0], torch.tensor(3.0)) and torch.isclose(out[0, 0, 8, 8], torch.tensor(1.0))
    assert vr.preprocess(x, train=True).shape == (1, 3, 16, 16) and vr.load_size("train") == 20


def test_random_crop_flip_draws_per_sample_from_the_global_rng() -> None:
    x = torch.arange(2 * 3 * 6 * 6, dtype=torch.float32).view(2, 3, 6, 6)
    torch.manual_seed(0)
    first = random_crop_flip(x, 4)
    torch.manual_seed(0)
    assert torch.equal(first, random_crop_flip(x, 4))
    assert first.shape == (2, 3, 4, 4)


def test_baseline_inputs_load_sizes_and_quirks() -> None:
    lp = ResizeInput(224, RESNET.mean, RESNET.std)
    assert lp.load_size("train") == lp.load_size("test") == 224 and trainable(lp) == 0
    ff = FinetuneInput(224, 32, True, RESNET.mean, RESNET.std)
    assert ff.trains_backbone and ff.load_size("test") == 256
    torch.manual_seed(1)
    a = ff.preprocess(torch.rand(1, 3, 256, 256), train=False)
    assert a.shape == (1, 3, 224, 224)  # test images are randomly cropped too (the original's quirk)


def test_learned_heads_have_the_papers_shapes_and_learning_rates() -> None:
    config = {"lr": 0.01, "gamma": 0.1}
    fc = FinetunedLayerMapping(1000, 10, {"ft_lr": 0.1, "fc_restrict": "none"})
    assert sum(p.numel() for p in fc.module.parameters()) == 10_010  # the bias exists but is never added
    logits = torch.randn(3, 1000)
    assert torch.allclose(fc(logits), logits @ fc.module.linear.weight.T)
    assert [g.lr for g in fc.optimizer_groups(config)] == [0.1]
    full = FullyConnectedMapping(1000, 10, {})
    assert torch.allclose(full(logits), full.module.linear(logits))
    assert [g.lr for g in full.optimizer_groups(config)] == [0.01]
    sigmoid = FinetunedLayerMapping(1000, 10, {"ft_lr": 0.1, "fc_restrict": "sigmoid"})
    assert torch.allclose(sigmoid(logits), logits @ torch.sigmoid(sigmoid.module.linear.weight).T)
    lp = LinearProbeHead(512, 10, {})
    assert LinearProbeHead.uses_features and sum(p.numel() for p in lp.module.parameters()) == 5_130
    head = ImageNetHeadMapping(1000, 10, {})
    head.initialize(lambda: (logits, torch.zeros(3)))
    assert torch.equal(head(logits), logits)


def test_fast_and_faithful_editions_agree_at_epoch_zero_and_fast_reuses_training_outputs() -> None:
    logits, labels = torch.randn(40, 30), torch.arange(40) % 5
    faithful = IterativeMapping(30, 5, {"mapping_interval": 1, "mapping_mode": "faithful"})
    fast = IterativeMapping(30, 5, {"mapping_interval": 1, "mapping_mode": "fast"})
    for mapping in (faithful, fast):
        mapping.on_epoch_start(0, lambda: (logits, labels))
    assert torch.equal(faithful.mapping, fast.mapping)
    seen = torch.randn(40, 30)
    fast.observe(seen[:20], labels[:20])
    fast.observe(seen[20:], labels[20:])
    fast.on_epoch_start(1, lambda: pytest.fail("the fast edition must not run an extra pass"))
    from vrbench.mapping import ilm

    assert torch.equal(fast.mapping, ilm(seen, labels, 5))
    restored = IterativeMapping(30, 5, {"mapping_interval": 1, "mapping_mode": "fast"})
    fast.observe(seen, labels)
    restored.load_state_dict(fast.state_dict())
    assert len(restored._seen) == 1 and torch.equal(restored._seen[0][0], seen)


def test_smm_rejects_a_resolution_that_the_patches_do_not_divide() -> None:
    with pytest.raises(ConfigError, match="multiple of patch_size"):
        SMMVR(100, 32, RESNET.mean, RESNET.std, layers=5, patch_size=8, channels=3, use_pattern=True, mask_lr=0.01,
              mask_gamma=0.1)


def test_abide_padding_also_programs_the_empty_lower_triangle() -> None:
    from vrbench.methods.padding import build_padding

    vr = build_padding({"dataset": "abide", "image_size": 200, "canvas": 224}, RESNET)
    assert int(vr.mask.sum()) == 90_828  # 3 * (10,176 border + 20,100 lower triangle, diagonal), methods.md VR §1.1
    assert vr.mask[0, 12 + 5, 12 + 3] == 1 and vr.mask[0, 12 + 3, 12 + 5] == 0
    natural = build_padding({"dataset": "cifar10", "image_size": 32, "canvas": 224}, RESNET)
    assert int(natural.mask.sum()) == 147_456
