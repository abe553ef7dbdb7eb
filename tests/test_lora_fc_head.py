"""LoRA (peft) and the fine-tuned FC head (SMM Tables 13 and 14) train for real on a tiny random ViT.

`vit_tiny` is pytorch_pretrained_vit's own ViT class with a 2-layer, width-32 configuration and seed-0 random
weights, so the adapters land in the same attention projections (`proj_q`, `proj_v`) as in ViT-L/16, and the head
that is replaced is the same `fc`. Two epochs on 64 digits: the point is which weights move, not accuracy.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from vrbench.backbones import strip_classifier
from vrbench.backbones.paper_models import TINY_VIT, build_architecture, build_tiny_vit
from vrbench.engine.loop import Job
from vrbench.errors import ConfigError
from vrbench.methods.label_mappings import FinetunedHead
from vrbench.methods.lora import LoRAInput
from vrbench.store.rundir import run_dir, write_config
from vrbench.suite import parse_suite

WIDTH, LAYERS, CLASSES = TINY_VIT["config"]["dim"], TINY_VIT["config"]["num_layers"], 10
HEAD = WIDTH * CLASSES + CLASSES


def run_job(tmp_path: Path, grid: str) -> Job:
    suite = parse_suite(f"""
name: t
grid: {grid}
defaults: {{epochs: 2, batch_size: 32, subset: {{train: 64, test: 40}}, milestones: []}}
""")
    (spec,) = suite.jobs
    directory = run_dir(tmp_path / "results", spec.run_id)
    write_config(directory, spec.run_id, spec.method, spec.config, {"device": "cpu", "threads": 1})
    job = Job(directory)
    job.run()
    return job


def group_sizes(job: Job) -> dict[str, tuple[float, float, int]]:
    return {g.name: (g.lr, g.gamma, sum(p.numel() for p in g.params)) for g in job.groups}


def frozen_weights_unchanged(model: torch.nn.Module) -> bool:
    """Every non-adapter weight equals vit_tiny's seed-0 weights (peft renames wrapped layers to base_layer)."""
    reference = build_tiny_vit().state_dict()
    for name, tensor in model.state_dict().items():
        if "lora_" in name:
            continue
        original = reference[name.replace(".base_layer", "")]
        if not torch.equal(tensor.cpu(), original):
            return False
    return True


def test_lora_trains_only_its_rank_6_adapters_and_the_new_head(tmp_path: Path) -> None:
    job = run_job(tmp_path, "{input: lora, mapping: fc_finetune, backbone: vit_tiny, dataset: digits, seed: 0}")
    adapters = LAYERS * 2 * (6 * WIDTH + WIDTH * 6)  # A (6 x d) and B (d x 6) on proj_q and proj_v of each block
    assert group_sizes(job) == {"backbone": (0.01, 0.1, adapters), "fc_head": (0.01, 0.1, HEAD)}
    result = job.summarize()
    assert result["trainable_params"] == adapters + HEAD
    assert frozen_weights_unchanged(job.model)
    lora_b = [p for name, p in job.model.named_parameters() if "lora_B" in name]
    assert len(lora_b) == 2 * LAYERS and all(p.abs().sum() > 0 for p in lora_b)  # B starts at zero: it trained
    # The checkpoint keeps the adapters, not the frozen backbone, and a fresh job resumes them exactly.
    saved = torch.load(job.directory / "checkpoint.pt", map_location="cpu", weights_only=True)
    assert saved["backbone"] and all("lora_" in name for name in saved["backbone"])
    resumed = Job(job.directory)
    resumed.build()
    assert resumed.load_checkpoint() == 2
    for (name, a), (_, b) in zip(job.model.named_parameters(), resumed.model.named_parameters(), strict=True):
        assert torch.equal(a.detach().cpu(), b.detach().cpu()), name


def test_smm_with_a_fine_tuned_fc_head_keeps_the_backbone_frozen(tmp_path: Path) -> None:
    job = run_job(tmp_path, "{input: smm, mapping: fc_finetune, backbone: vit_tiny, dataset: digits, seed: 0, "
                            "set: {head_lr: 0.1}}")
    groups = group_sizes(job)
    assert groups["pattern"] == (0.01, 0.1, 3 * 32 * 32)
    assert groups["mask_net"][:2] == (0.001, 1.0)  # SMM's ViT setting for the mask generator (cfg.py)
    assert groups["fc_head"] == (0.1, 0.1, HEAD)
    assert not any(p.requires_grad for p in job.model.parameters())
    assert frozen_weights_unchanged(job.model)
    assert isinstance(job.model.fc, torch.nn.Identity)  # the 1000-way head is gone; the new one reads features
    assert job.mapping.module.linear.weight.shape == (CLASSES, WIDTH)


def test_the_fc_head_replaces_resnet50s_classifier_at_its_own_lr() -> None:
    import torchvision

    model, features = strip_classifier(torchvision.models.resnet50(weights=None))
    head = FinetunedHead(features, 11, {"head_lr": 0.1})
    (group,) = head.optimizer_groups({"lr": 0.01, "gamma": 0.1})
    assert (features, group.name, group.lr, sum(p.numel() for p in group.params)) == (2048, "fc_head", 0.1,
                                                                                      2048 * 11 + 11)
    assert head(model(torch.randn(2, 3, 64, 64))).shape == (2, 11)
    default = FinetunedHead(features, 11, {"head_lr": None}).optimizer_groups({"lr": 0.01, "gamma": 0.1})
    assert default[0].lr == 0.01  # without head_lr, the job's lr


def test_lora_on_the_real_vit_l16_architecture_adapts_24_blocks() -> None:
    """ViT-L/16 itself (L_16_imagenet1k, 305 M weights) built on the meta device: shapes without memory."""
    with torch.device("meta"):
        model = build_architecture("vit_l16")
        lora = LoRAInput(384, 32, (0.5,) * 3, (0.5,) * 3, rank=6, alpha=8, targets=["proj_q", "proj_v"])
        model = lora.prepare_backbone(model)
    assert sum(p.numel() for p in lora.backbone_parameters(model)) == 24 * 2 * (6 * 1024 + 1024 * 6)
    assert model.fc.in_features == 1024
    with pytest.raises(ConfigError, match="name no linear layer"):
        LoRAInput(384, 32, (0.5,) * 3, (0.5,) * 3, rank=6, alpha=8, targets=["query"]).prepare_backbone(model)


def test_lora_refuses_a_backbone_without_attention_before_anything_runs() -> None:
    with pytest.raises(ConfigError, match="input 'lora' adapts a ViT's attention projections"):
        parse_suite("name: t\ngrid: {input: lora, mapping: fc_finetune, backbone: resnet50, dataset: digits, seed: 0}")
