"""Padding VR and the label-mapping schedules, on real tensors."""

from __future__ import annotations

import torch

from vrbench import mapping as lm
from vrbench.backbones import BACKBONES
from vrbench.methods.label_mappings import (
    BayesianMapping,
    BayesianTopKMapping,
    FrequencyMapping,
    IterativeMapping,
    RandomMapping,
)
from vrbench.methods.padding import PaddingVR, build_padding, padding_amounts

IMAGENET = BACKBONES.get("resnet18")


def test_padding_has_the_papers_parameter_count_and_effective_pixels() -> None:
    vr = PaddingVR(32, 224, IMAGENET.mean, IMAGENET.std)
    assert sum(p.numel() for p in vr.parameters() if p.requires_grad) == 150_528
    assert int(vr.mask.sum()) == 3 * (224**2 - 32**2) == 147_456
    assert int(PaddingVR(128, 224, IMAGENET.mean, IMAGENET.std).mask.sum()) == 101_376


def test_padding_amounts_match_the_originals_for_odd_differences() -> None:
    assert padding_amounts(32, 224) == (96, 96)
    assert padding_amounts(128, 224) == (48, 48)
    assert padding_amounts(31, 224) == (97, 96)  # int((224-31+1)/2), int((224-31)/2)


def test_padding_centres_the_image_and_starts_with_a_grey_border() -> None:
    vr = PaddingVR(4, 10, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0))  # identity normalisation to read raw pixels
    x = torch.rand(2, 3, 4, 4)
    out = vr(x)
    assert out.shape == (2, 3, 10, 10)
    assert torch.equal(out[:, :, 3:7, 3:7], x)  # the image region receives no pattern
    border = out.clone()
    border[:, :, 3:7, 3:7] = 0.5
    assert torch.allclose(border, torch.full_like(border, 0.5))  # sigmoid(0) = 0.5


def test_padding_normalises_after_adding_the_pattern_with_the_backbones_statistics() -> None:
    vr = build_padding({"dataset": "cifar10", "image_size": 32, "canvas": 224}, IMAGENET)
    out = vr(torch.zeros(1, 3, 32, 32))
    mean, std = torch.tensor(IMAGENET.mean), torch.tensor(IMAGENET.std)
    assert torch.allclose(out[0, :, 0, 0], (0.5 - mean) / std)
    assert torch.allclose(out[0, :, 112, 112], (0.0 - mean) / std)


def test_padding_gradient_reaches_only_the_border() -> None:
    vr = PaddingVR(8, 16, (0.5,) * 3, (0.5,) * 3)
    vr(torch.rand(2, 3, 8, 8)).sum().backward()
    grad = vr.program.grad
    assert grad[:, 4:12, 4:12].abs().sum() == 0
    assert (grad[:, 0, :] != 0).all()


def _collector(logits: torch.Tensor, labels: torch.Tensor, calls: list[int]):
    def collect() -> tuple[torch.Tensor, torch.Tensor]:
        calls.append(1)
        return logits, labels

    return collect


def test_flm_estimates_once_before_training_and_ilm_every_interval() -> None:
    logits, labels = torch.randn(50, 20), torch.arange(50) % 5
    calls: list[int] = []
    flm = FrequencyMapping(20, 5, {})
    flm.initialize(_collector(logits, labels, calls))
    for epoch in range(4):
        flm.on_epoch_start(epoch, _collector(logits, labels, calls))
    assert len(calls) == 1
    assert torch.equal(flm.mapping, lm.flm(logits, labels, 5))

    calls.clear()
    ilm = IterativeMapping(20, 5, {"mapping_interval": 2})
    ilm.initialize(_collector(logits, labels, calls))
    for epoch in range(5):
        ilm.on_epoch_start(epoch, _collector(logits, labels, calls))
    assert len(calls) == 3  # epochs 0, 2, 4


def test_rlm_draws_from_the_global_rng_once() -> None:
    torch.manual_seed(7)
    expected = torch.randperm(1000)[:10]
    torch.manual_seed(7)
    rlm = RandomMapping(1000, 10, {})
    rlm.initialize(lambda: (_ for _ in ()).throw(AssertionError("RLM must not run a mapping pass")))
    assert torch.equal(rlm.mapping, expected)


def test_bayesian_mappings_produce_column_normalised_matrices_and_map_logits() -> None:
    logits, labels = torch.randn(60, 30), torch.arange(60) % 6
    for mapping in (BayesianMapping(30, 6, {"mapping_interval": 1, "lap": 1.0}),
                    BayesianTopKMapping(30, 6, {"mapping_interval": 1, "lap": 1.0, "topk_ratio": 0.15})):
        mapping.on_epoch_start(0, lambda: (logits, labels))
        assert mapping.mapping.shape == (30, 6)
        assert torch.allclose(mapping.mapping.sum(0), torch.ones(6))
        assert mapping(logits).shape == (60, 6)


def test_mapping_state_round_trips_for_resume() -> None:
    logits, labels = torch.randn(40, 12), torch.arange(40) % 4
    ilm = IterativeMapping(12, 4, {"mapping_interval": 1})
    ilm.on_epoch_start(0, lambda: (logits, labels))
    restored = IterativeMapping(12, 4, {"mapping_interval": 1})
    restored.load_state_dict(ilm.state_dict())
    assert torch.equal(restored.mapping, ilm.mapping) and restored.updates == 1
    exported = ilm.export()
    assert exported["kind"] == "index" and exported["mapping"] == ilm.mapping.tolist()


def test_the_validation_split_is_seeded_recorded_and_disjoint_from_training() -> None:
    from vrbench.engine.data import prepare_splits

    config = {"dataset": "digits", "subset": {"train": 200, "test": 50}, "val_fraction": 0.1, "seed": 3}
    first = prepare_splits(config, None, {"train": 16, "test": 16})
    again = prepare_splits(config, None, {"train": 16, "test": 16})
    other = prepare_splits({**config, "seed": 4}, None, {"train": 16, "test": 16})
    assert first.val_indices == again.val_indices != other.val_indices
    assert len(first.val) == len(first.val_indices) == 20 and len(first.train) == 180
    assert len(set(first.val_indices)) == 20 and all(0 <= i < 200 for i in first.val_indices)
    assert prepare_splits({**config, "val_fraction": 0.0}, None, {"train": 16, "test": 16}).val_indices is None
