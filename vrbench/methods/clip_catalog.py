"""CLIP prompt-learning methods: metadata only (no torch import), so suites validate without loading a model.

Each entry lists the hyperparameters the method reads with the papers' defaults (docs/methods.md CLIP §1, §7), the
general settings it uses by default (its base-to-novel recipe: epochs, lr, batch size), and a version that goes
into every job hash. Other protocols' recipes (few-shot epochs by shots, cross-dataset depth 3, ...) are set in
the suite files, where a reader sees them next to the grid they apply to.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from vrbench.registry import Registry, load_object

PROMPT_PROTOCOLS = ("base2novel", "fewshot", "cross_dataset", "domain_generalization")
STAGES = ("train", "eval")


@dataclass(frozen=True)
class ClipMethodInfo:
    name: str
    version: int
    params: dict[str, Any] = field(default_factory=dict)  # method hyperparameters it reads, with defaults
    defaults: dict[str, Any] = field(default_factory=dict)  # general settings it sets differently (its recipe)
    trains: bool = True  # False: zero-shot, nothing is learned, every job just tests
    kind: str = "prompt"  # "prompt" (SGD loop), "zeroshot" (test only), "linear_probe" (sklearn on features)
    description: str = ""
    paper_name: str = ""
    # "module:Class" of a vrbench.clip.methods.ClipMethod subclass; "" for the built-ins (vrbench.clip.methods.METHODS)
    implementation: str = ""
    # Hyperparameters added after results existed: a job's hash holds one only when it is set away from its default,
    # the behaviour from before it existed, so adding it changes no existing job's id (like an input's late_params).
    late_params: dict[str, Any] = field(default_factory=dict)

    def all_params(self) -> dict[str, Any]:
        """Every hyperparameter the method reads, with its default."""
        return {**self.params, **self.late_params}

    def load(self) -> type:  # -> type[ClipMethod]
        if self.implementation:
            return load_object(self.implementation)
        from vrbench.clip.methods import METHODS

        return METHODS[self.name]


CLIP_METHODS: Registry[ClipMethodInfo] = Registry("method", group="vrbench.clip_methods", entry_type=ClipMethodInfo)

# Versions: 2 (issue 10) tests under the training autocast (fp16 on a GPU, as the originals run CLIP), and
# computes the cached frozen text features under it too; linear probing's features already were.

_SGD = {"lr_schedule": "warmup_cosine"}
_IVLP = {"n_ctx_text": 4, "n_ctx_vision": 4, "depth_text": 9, "depth_vision": 9, "ctx_init": "a photo of a"}

CLIP_METHODS.register("zeroshot", ClipMethodInfo(
    "zeroshot", 2, trains=False, kind="zeroshot",
    description="zero-shot CLIP with the dataset's hand-crafted template (§1.1)", paper_name="CLIP (zero-shot)"))
CLIP_METHODS.register("zeroshot_ensemble", ClipMethodInfo(
    "zeroshot_ensemble", 2, trains=False, kind="zeroshot",
    description="zero-shot CLIP, 7 templates (+ the dataset's own) averaged (ZeroshotCLIP2 §1.1)",
    paper_name="CLIP (ensemble)"))
CLIP_METHODS.register("linear_probe_clip", ClipMethodInfo(
    "linear_probe_clip", 1, kind="linear_probe", params={"num_steps": 8},
    description="logistic regression on frozen image features, two-stage C search on few-shot val (§1.2)",
    paper_name="Linear probe CLIP"))
CLIP_METHODS.register("coop", ClipMethodInfo(
    "coop", 2, params={"n_ctx": 16, "csc": False, "ctx_init": "", "class_token_position": "end"},
    defaults={"epochs": 200, "lr": 0.002, "batch_size": 32, **_SGD},
    description="learned context vectors for the text encoder (CoOp §1.3; train.py defaults, 200-epoch config)",
    paper_name="CoOp"))
# ProDA has no public code or base-to-novel config (PromptSRC reprints a third party's run, iccv23.yaml): its
# paper's method at CoOp's training recipe, the setting of the CoOp row ProDA is compared with (docs/deviations.md).
CLIP_METHODS.register("proda", ClipMethodInfo(
    "proda", 1, params={"n_prompts": 32, "n_ctx": 16, "prompt_batch": 8},
    defaults={"epochs": 200, "lr": 0.002, "batch_size": 32, **_SGD},
    description="K learned prompts, each class's output embeddings a Gaussian; surrogate loss, tested with the "
                "mean embedding (ProDA, Lu et al. CVPR 2022; no official code)", paper_name="ProDA"))
CLIP_METHODS.register("cocoop", ClipMethodInfo(
    "cocoop", 2, params={"n_ctx": 4, "ctx_init": "a photo of a"},
    defaults={"epochs": 10, "lr": 0.002, "batch_size": 1, **_SGD},
    description="CoOp context plus an image-conditioned meta-net bias (CoCoOp §1.4)", paper_name="CoCoOp"))
CLIP_METHODS.register("ivlp", ClipMethodInfo(
    "ivlp", 2, params=dict(_IVLP), defaults={"epochs": 20, "lr": 0.0025, "batch_size": 4, **_SGD},
    description="independent deep vision and language prompts (IVLP §1.5)", paper_name="IVLP"))
CLIP_METHODS.register("maple", ClipMethodInfo(
    "maple", 2, params={"n_ctx": 2, "depth": 9, "ctx_init": "a photo of a"},
    defaults={"epochs": 5, "lr": 0.0035, "batch_size": 4, **_SGD},
    description="multi-modal prompts, vision prompts coupled to text prompts (MaPLe §1.6; upstream 5 epochs)",
    paper_name="MaPLe"))
CLIP_METHODS.register("promptsrc", ClipMethodInfo(
    "promptsrc", 2,
    params={**_IVLP, "text_loss_weight": 25.0, "image_loss_weight": 10.0, "kl_loss_weight": 1.0,
            "gpa_mean": 15.0, "gpa_std": 1.0},
    defaults={"epochs": 20, "lr": 0.0025, "batch_size": 4, **_SGD},
    # The supplement's per-dataset component ablation (issue 24): gpa false tests the last epoch's prompts instead of
    # the Gaussian aggregate; textual_diversity false regularises the text features towards the frozen CLIP's
    # "a photo of a {}." alone instead of the mean over 60 templates. Both true is the full method.
    late_params={"gpa": True, "textual_diversity": True},
    description="IVLP + self-regulating losses against frozen CLIP + Gaussian prompt aggregation (PromptSRC §1.7)",
    paper_name="PromptSRC"))

# Settings every prompt-learning job has: name -> (kind, default). The shared Dassl recipe (§0).
PROMPT_GENERAL: dict[str, tuple[str, Any]] = {
    "epochs": ("int", 20),
    "lr": ("float", 0.002),
    "batch_size": ("int", 32),
    "test_batch_size": ("int", 100),
    "momentum": ("float", 0.9),
    "weight_decay": ("float", 5e-4),
    "warmup_epochs": ("int", 1),
    "warmup_lr": ("float", 1e-5),
    "lr_schedule": ("choice:warmup_cosine", "warmup_cosine"),
    "subset": ("subset?", None),
}
PROMPT_PARAM_KINDS: dict[str, str] = {
    "ctx_init": "text", "class_token_position": "choice:end,middle,front", "csc": "bool",
}


def method_params() -> dict[str, Any]:
    params: dict[str, Any] = {}
    for entry in CLIP_METHODS:
        params.update(entry.all_params())
    return params
