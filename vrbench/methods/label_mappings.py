"""Output label mappings as engine plug-ins (docs/methods.md VR §2.2–2.7).

The math lives in `vrbench.mapping` (pure tensor functions, public API); this module only decides *when*
a mapping is (re-)estimated, which is what distinguishes the methods:

- RLM draws a random one-to-one mapping once, from the global RNG after the models are built;
- FLM estimates the greedy one-to-one mapping once, before training, with the initial VR;
- ILM, BLM and BLM++ re-estimate at the start of every `mapping_interval`-th epoch with the VR as it stood
  at the end of the previous epoch; that mapping serves the epoch's training and its test pass.

`collect` runs the frozen backbone over the whole training split (no grad, fp32) and returns
(logits, labels); the engine provides it.

The "fast" editions (BLM train_vm_fast.py, docs/methods.md VR §2.8; `mapping_mode: fast`) skip that extra pass:
from epoch 1 on they re-estimate from the outputs the previous epoch's training pass produced (under autocast on a GPU,
each batch before its own optimizer step, on augmented data where the pipeline augments).

Learned heads (`fc`, `fullymap`, `linear_probe`) are trained jointly with the input; `imagenet_head` is the
full fine-tuning baseline's quirk of keeping the 1000-way head (targets are read as ImageNet class ids).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from vrbench import mapping as lm
from vrbench.methods.base import ParamGroup

Collect = Callable[[], tuple[torch.Tensor, torch.Tensor]]


class LabelMapping:
    """Base class: holds the current mapping (an index vector or an S×C matrix)."""

    uses_features = False  # True: the backbone's classifier is removed and the head reads its features
    observes_training = False  # True: the engine passes each training batch's outputs to observe()

    def __init__(self, num_source: int, num_classes: int, params: dict[str, Any]) -> None:
        self.num_source = num_source
        self.num_classes = num_classes
        self.params = params
        self.mapping: torch.Tensor | None = None
        self.updates = 0
        self.module: nn.Module | None = None  # trainable heads only

    def optimizer_groups(self, config: dict[str, Any]) -> list[ParamGroup]:
        return []

    def observe(self, outputs: torch.Tensor, labels: torch.Tensor) -> None:
        """A training batch's raw outputs (no grad), for the fast editions."""

    def initialize(self, collect: Collect) -> None:
        """Called once before the first epoch (not on resume)."""

    def on_epoch_start(self, epoch: int, collect: Collect) -> None:
        """Called at the start of every epoch (0-based), also after a resume."""

    def estimate(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _refresh(self, collect: Collect) -> None:
        logits, labels = collect()
        self.mapping = self.estimate(logits, labels)
        self.updates += 1

    def __call__(self, logits: torch.Tensor) -> torch.Tensor:
        assert self.mapping is not None, "label mapping used before it was estimated"
        mapping = self.mapping.to(logits.device)
        if mapping.is_floating_point():
            mapping = mapping.to(logits.dtype)
        return lm.apply_mapping(logits, mapping)

    def state_dict(self) -> dict[str, Any]:
        module = self.module.state_dict() if self.module is not None else None
        return {"mapping": self.mapping, "updates": self.updates, "module": module}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.mapping = state["mapping"]
        self.updates = int(state["updates"])
        if self.module is not None:
            self.module.load_state_dict(state["module"])

    def export(self) -> dict[str, Any]:
        """JSON-ready final mapping for mapping.json (index vector or matrix)."""
        assert self.mapping is not None
        kind = "matrix" if self.mapping.dim() == 2 else "index"
        return {"kind": kind, "num_source": self.num_source, "num_classes": self.num_classes,
                "updates": self.updates, "mapping": self.mapping.tolist()}


class RandomMapping(LabelMapping):
    def initialize(self, collect: Collect) -> None:
        self.mapping = lm.rlm(self.num_source, self.num_classes)  # global RNG, as the originals
        self.updates = 1


class IdentityMapping(LabelMapping):
    """Source class i is target class i: CLIP with one template per class name (single-TP-VP, §1.8)."""

    def initialize(self, collect: Collect) -> None:
        if self.num_source != self.num_classes:
            raise ValueError(f"the identity mapping needs as many source as target classes, got {self.num_source} "
                             f"and {self.num_classes} (on CLIP use text_templates: single)")
        self.mapping = torch.arange(self.num_classes)
        self.updates = 1


class FrequencyMapping(LabelMapping):
    def initialize(self, collect: Collect) -> None:
        self._refresh(collect)

    def estimate(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return lm.flm(logits, labels, self.num_classes)


class _Iterative(LabelMapping):
    def __init__(self, num_source: int, num_classes: int, params: dict[str, Any]) -> None:
        super().__init__(num_source, num_classes, params)
        self.fast = params.get("mapping_mode", "faithful") == "fast"
        self.observes_training = self.fast
        self._seen: list[tuple[torch.Tensor, torch.Tensor]] = []

    def on_epoch_start(self, epoch: int, collect: Collect) -> None:
        if self.fast and epoch > 0 and self._seen:
            outputs = torch.cat([o for o, _ in self._seen])
            labels = torch.cat([y for _, y in self._seen])
            self.mapping = self.estimate(outputs, labels)
            self.updates += 1
        elif epoch % int(self.params["mapping_interval"]) == 0 or self.mapping is None:
            self._refresh(collect)
        self._seen = []

    def observe(self, outputs: torch.Tensor, labels: torch.Tensor) -> None:
        self._seen.append((outputs.detach().float().cpu(), labels.detach().cpu()))

    def state_dict(self) -> dict[str, Any]:
        # The fast editions' stored outputs are part of the state between epochs: keep them for resume.
        state = super().state_dict()
        if self.fast:
            state["seen"] = [[o, y] for o, y in self._seen]
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self._seen = [(o, y) for o, y in state.get("seen", [])]


class IterativeMapping(_Iterative):
    def estimate(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return lm.ilm(logits, labels, self.num_classes)


class BayesianMapping(_Iterative):
    def estimate(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return lm.blm(logits, labels, self.num_classes, lap=float(self.params["lap"]))


class BayesianTopKMapping(_Iterative):
    def estimate(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        k = lm.blmpp_k(self.num_classes, float(self.params["topk_ratio"]))
        return lm.blmpp(logits, labels, self.num_classes, k=k, lap=float(self.params["lap"]))


class _LinearHead(nn.Module):
    """BLM's FTlayer (bias created but never added in 'none', docs/methods.md VR §6 item 8) and AutoVP's FullyMap."""

    def __init__(self, in_features: int, out_features: int, restrict: str) -> None:
        super().__init__()
        self.linear = nn.Linear(in_features, out_features, bias=restrict != "nobias")
        self.restrict = restrict

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = torch.sigmoid(self.linear.weight) if self.restrict == "sigmoid" else self.linear.weight
        bias = self.linear.bias if self.restrict == "bias" else None
        return nn.functional.linear(x, weight, bias)


class _TrainedHead(LabelMapping):
    restrict = "bias"

    def __init__(self, num_source: int, num_classes: int, params: dict[str, Any]) -> None:
        super().__init__(num_source, num_classes, params)
        self.module = _LinearHead(num_source, num_classes, params.get("fc_restrict", self.restrict))

    def __call__(self, logits: torch.Tensor) -> torch.Tensor:
        return self.module(logits)

    def export(self) -> dict[str, Any]:
        weight = self.module.linear.weight.detach().cpu()
        if self.module.restrict == "sigmoid":
            weight = torch.sigmoid(weight)
        return {"kind": "matrix", "num_source": self.num_source, "num_classes": self.num_classes,
                "updates": 0, "mapping": weight.T.tolist()}


class FinetunedLayerMapping(_TrainedHead):
    """BLM train_ft.py: Linear(1000, C) on the logits, its own Adam (ft_lr 0.1, MultiStepLR γ 0.1)."""

    restrict = "none"

    def optimizer_groups(self, config: dict[str, Any]) -> list[ParamGroup]:
        return [ParamGroup("fc", list(self.module.parameters()), self.params["ft_lr"], gamma=config["gamma"])]


class FullyConnectedMapping(_TrainedHead):
    """AutoVP's FullyMap: Linear(1000, C) with bias, trained with the input's learning rate (one Adam)."""

    def optimizer_groups(self, config: dict[str, Any]) -> list[ParamGroup]:
        return [ParamGroup("fc", list(self.module.parameters()), config["lr"], gamma=config["gamma"])]


class LinearProbeHead(_TrainedHead):
    """ILM-VP's linear probe: a new Linear(features, C) in place of the backbone's classifier."""

    uses_features = True

    def optimizer_groups(self, config: dict[str, Any]) -> list[ParamGroup]:
        return [ParamGroup("linear_probe", list(self.module.parameters()), config["lr"], gamma=config["gamma"])]


class FinetunedHead(LinearProbeHead):
    """"+FC fine-tuning" (SMM Tables 13 and 14): the backbone's classifier is replaced by a new Linear(features, C)
    trained jointly with whatever the input trains (SMM's pattern and mask network, or LoRA's adapters), in its
    own optimizer group: lr `head_lr` (None: the job's lr) with the job's schedule."""

    def optimizer_groups(self, config: dict[str, Any]) -> list[ParamGroup]:
        lr = self.params["head_lr"] if self.params.get("head_lr") is not None else config["lr"]
        return [ParamGroup("fc_head", list(self.module.parameters()), lr, gamma=config["gamma"])]


class ImageNetHeadMapping(LabelMapping):
    """Full fine-tuning's quirk: keep all 1000 logits, read target c as ImageNet class c."""

    def initialize(self, collect: Collect) -> None:
        self.mapping = torch.arange(self.num_source)

    def __call__(self, logits: torch.Tensor) -> torch.Tensor:
        return logits
