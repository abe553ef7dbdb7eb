"""Method catalogue: input transformations and output label mappings (metadata only, no torch import).

A VR method in the papers is a pair (ILM-VP = padding input + ILM mapping). Keeping the two as separate
axes lets a suite say "every mapping on every input" in two lines. Each entry lists the hyperparameters
it reads (so a job's hash only covers settings that can change its result), defaults that replace the
general ones for that method (linear probing's lr 0.1), and a version that goes into the hash so a
behaviour change never reuses old results.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from vrbench.registry import Registry


@dataclass(frozen=True)
class InputInfo:
    name: str
    implementation: str  # "module:function"(config, backbone_info) -> InputTransform
    version: int
    params: dict[str, Any] = field(default_factory=dict)  # hyperparameters it reads, with defaults
    defaults: dict[str, Any] = field(default_factory=dict)  # general hyperparameters it sets differently
    description: str = ""
    requires: tuple[str, ...] = ()  # mappings it must be paired with (baselines); empty: any VR mapping
    # Hyperparameters added after results existed: a job's hash holds one only when it is set away from its
    # default, which is the behaviour from before it existed, so adding it changes no other job's id.
    late_params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class MappingInfo:
    name: str
    implementation: str  # "module:class"(num_source, num_classes, params) -> LabelMapping
    version: int
    one_to_one: bool  # needs num_target <= num_source
    params: dict[str, Any] = field(default_factory=dict)
    defaults: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    paper_name: str = ""
    baseline: bool = False  # only meaningful with the input that `requires` it


INPUTS: Registry[InputInfo] = Registry("input", paths=("implementation",), group="vrbench.inputs",
                                       entry_type=InputInfo)
MAPPINGS: Registry[MappingInfo] = Registry("mapping", paths=("implementation",), group="vrbench.mappings",
                                           entry_type=MappingInfo)

_RESIZED = {"resolution": None}  # None: the backbone's input size
INPUTS.register("padding", InputInfo(
    "padding", "vrbench.methods.padding:build_padding", 1, params={"image_size": None, "canvas": None},
    description="learnable border pattern through a sigmoid, image centred, normalised after (ILM-VP/BLM §1.1)"))
INPUTS.register("full", InputInfo(
    "full", "vrbench.methods.watermark:build_full", 1, params={**_RESIZED, "frame": None, "crop_margin": 4},
    description="additive pattern in normalised space over the whole resized image or a frame (BLM watermarking §1.2)"))
INPUTS.register("narrow", InputInfo(
    "narrow", "vrbench.methods.watermark:build_narrow", 1, params={**_RESIZED, "crop_margin": 32},
    description="SMM baseline: additive frame of 1/8 of the resolution (28 px at 224)"))
INPUTS.register("medium", InputInfo(
    "medium", "vrbench.methods.watermark:build_medium", 1, params={**_RESIZED, "crop_margin": 32},
    description="SMM baseline: additive frame of 1/4 of the resolution (56 px at 224)"))
_SMM = {**_RESIZED, "crop_margin": 32, "patch_size": 8, "mask_channels": 3, "mask_layers": None, "mask_lr": None,
        "mask_gamma": None}
INPUTS.register("smm", InputInfo(
    "smm", "vrbench.methods.smm:build_smm", 1, params=_SMM,
    description="sample-specific multi-channel masks gating a shared pattern (SMM §1.3)"))
INPUTS.register("smm_only_mask", InputInfo(
    "smm_only_mask", "vrbench.methods.smm:build_smm_only_mask", 1, params=_SMM,
    description="SMM ablation: the upsampled mask alone is added, no shared pattern (Table 3)"))
INPUTS.register("resize", InputInfo(
    "resize", "vrbench.methods.baselines:build_resize", 1, params=_RESIZED, requires=("linear_probe",),
    description="no reprogramming, resize + normalise (linear probing baseline §2.11)"))
INPUTS.register("finetune", InputInfo(
    "finetune", "vrbench.methods.baselines:build_finetune", 1,
    params={**_RESIZED, "crop_margin": 32, "test_augment": True, "weight_decay": 5e-4, "schedule": "cosine"},
    defaults={"lr": 1e-4}, requires=("imagenet_head",), late_params={"train_augment": True},
    description="full fine-tuning baseline: all weights train, crop+flip also at test (ILM-VP quirk §2.11); "
                "train_augment/test_augment false: resize only (ILM-VP's ABIDE path)"))
INPUTS.register("lora", InputInfo(
    "lora", "vrbench.methods.lora:build_lora", 2,  # 2: the ViT in eval mode while the adapters train (issue 24)
    params={**_RESIZED, "crop_margin": 32, "lora_rank": 6, "lora_alpha": 8, "lora_targets": "proj_q,proj_v",
            "weight_decay": 0.0, "schedule": "multistep"},
    description="no pattern: rank-r LoRA adapters (peft) on the backbone's attention projections train "
                "(SMM Table 13), on SMM's resize + crop + flip pipeline"))

_MAP = "vrbench.methods.label_mappings"
_ITERATIVE = {"mapping_interval": 1, "mapping_mode": "faithful"}
MAPPINGS.register("rlm", MappingInfo(
    "rlm", f"{_MAP}:RandomMapping", 1, one_to_one=True,
    description="random one-to-one mapping drawn once (randperm)", paper_name="RLM"))
MAPPINGS.register("identity", MappingInfo(
    "identity", f"{_MAP}:IdentityMapping", 1, one_to_one=True,
    description="source class i is target class i (CLIP with text_templates: single: single-TP-VP §1.8)",
    paper_name="TP"))
MAPPINGS.register("flm", MappingInfo(
    "flm", f"{_MAP}:FrequencyMapping", 1, one_to_one=True,
    description="greedy one-to-one from the initial model's prediction counts, fixed", paper_name="FLM"))
MAPPINGS.register("ilm", MappingInfo(
    "ilm", f"{_MAP}:IterativeMapping", 1, one_to_one=True, params=dict(_ITERATIVE),
    description="greedy one-to-one re-estimated every mapping_interval epochs (fast: from the last training pass)",
    paper_name="ILM"))
MAPPINGS.register("blm", MappingInfo(
    "blm", f"{_MAP}:BayesianMapping", 1, one_to_one=False, params={**_ITERATIVE, "lap": 1.0},
    description="Bayesian-guided probabilistic mapping from argmax counts (Laplace lap)", paper_name="BLM"))
MAPPINGS.register("blmpp", MappingInfo(
    "blmpp", f"{_MAP}:BayesianTopKMapping", 1, one_to_one=False,
    params={**_ITERATIVE, "lap": 1.0, "topk_ratio": 0.15},
    description="BLM++: top-k softmax sums, k = max(1, int(topk_ratio*C))", paper_name="BLM++"))
MAPPINGS.register("fc", MappingInfo(
    "fc", f"{_MAP}:FinetunedLayerMapping", 1, one_to_one=False, params={"ft_lr": 0.1, "fc_restrict": "none"},
    description="learned Linear(1000, C) on the logits, own Adam ft_lr (BLM train_ft §2.9; bias unused)"))
MAPPINGS.register("fullymap", MappingInfo(
    "fullymap", f"{_MAP}:FullyConnectedMapping", 1, one_to_one=False,
    description="learned Linear(1000, C) with bias, the input's Adam (AutoVP FullyMap §2.10)"))
MAPPINGS.register("linear_probe", MappingInfo(
    "linear_probe", f"{_MAP}:LinearProbeHead", 1, one_to_one=False, defaults={"lr": 0.1}, baseline=True,
    description="new linear layer on the frozen backbone's features (ILM-VP LP baseline §2.11)", paper_name="LP"))
MAPPINGS.register("fc_finetune", MappingInfo(
    "fc_finetune", f"{_MAP}:FinetunedHead", 1, one_to_one=False, params={"head_lr": None},
    description="the backbone's classifier replaced by a new Linear(features, C) trained with the input, lr "
                "head_lr (None: the job's lr) (SMM Tables 13/14 '+FC finetuning')", paper_name="FC"))
MAPPINGS.register("imagenet_head", MappingInfo(
    "imagenet_head", f"{_MAP}:ImageNetHeadMapping", 1, one_to_one=True, baseline=True,
    description="the 1000-way ImageNet head kept, targets read as class ids (ILM-VP FF quirk §2.11)",
    paper_name="FF"))
