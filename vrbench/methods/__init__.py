"""Method catalogue: input transformations and output label mappings (metadata only, no torch import).

A VR method in the papers is a pair (ILM-VP = padding input + ILM mapping). Keeping the two as separate
axes lets a suite say "every mapping on every input" in two lines. Each entry lists the hyperparameters
it reads, so a job's hash only covers settings that can change its result, and a version that goes into
the hash so a behaviour change never reuses old results.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from vrbench.registry import Registry


@dataclass(frozen=True)
class InputInfo:
    name: str
    implementation: str  # "module:function"(config, backbone_info) -> nn.Module
    version: int
    params: dict[str, Any] = field(default_factory=dict)  # hyperparameters it reads, with defaults
    description: str = ""


@dataclass(frozen=True)
class MappingInfo:
    name: str
    implementation: str  # "module:class"(num_source, num_classes, params) -> LabelMapping
    version: int
    one_to_one: bool  # needs num_target <= num_source
    params: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    paper_name: str = ""


INPUTS: Registry[InputInfo] = Registry("input")
MAPPINGS: Registry[MappingInfo] = Registry("mapping")

INPUTS.register(
    "padding",
    InputInfo(
        "padding", "vrbench.methods.padding:build_padding", 1,
        params={"canvas": None},
        description="learnable border pattern through a sigmoid, image centred, normalised after (ILM-VP/BLM §1.1)",
    ),
)

_MAP = "vrbench.methods.label_mappings"
MAPPINGS.register("rlm", MappingInfo(
    "rlm", f"{_MAP}:RandomMapping", 1, one_to_one=True,
    description="random one-to-one mapping drawn once (randperm)", paper_name="RLM"))
MAPPINGS.register("flm", MappingInfo(
    "flm", f"{_MAP}:FrequencyMapping", 1, one_to_one=True,
    description="greedy one-to-one from the initial model's prediction counts, fixed", paper_name="FLM"))
MAPPINGS.register("ilm", MappingInfo(
    "ilm", f"{_MAP}:IterativeMapping", 1, one_to_one=True, params={"mapping_interval": 1},
    description="greedy one-to-one re-estimated every mapping_interval epochs", paper_name="ILM"))
MAPPINGS.register("blm", MappingInfo(
    "blm", f"{_MAP}:BayesianMapping", 1, one_to_one=False, params={"mapping_interval": 1, "lap": 1.0},
    description="Bayesian-guided probabilistic mapping from argmax counts (Laplace lap)", paper_name="BLM"))
MAPPINGS.register("blmpp", MappingInfo(
    "blmpp", f"{_MAP}:BayesianTopKMapping", 1, one_to_one=False,
    params={"mapping_interval": 1, "lap": 1.0, "topk_ratio": 0.15},
    description="BLM++: top-k softmax sums, k = max(1, int(topk_ratio*C))", paper_name="BLM++"))
