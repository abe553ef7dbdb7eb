"""Output label mappings as engine plug-ins (spec §2.2–2.7).

The math lives in `vrbench.mapping` (pure tensor functions, public API); this module only decides *when*
a mapping is (re-)estimated, which is what distinguishes the methods:

- RLM draws a random one-to-one mapping once, from the global RNG after the models are built;
- FLM estimates the greedy one-to-one mapping once, before training, with the initial VR;
- ILM, BLM and BLM++ re-estimate at the start of every `mapping_interval`-th epoch with the VR as it stood
  at the end of the previous epoch; that mapping serves the epoch's training and its test pass.

`collect` runs the frozen backbone over the whole training split (no grad, fp32) and returns
(logits, labels); the engine provides it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from vrbench import mapping as lm

Collect = Callable[[], tuple[torch.Tensor, torch.Tensor]]


class LabelMapping:
    """Base class: holds the current mapping (an index vector or an S×C matrix)."""

    def __init__(self, num_source: int, num_classes: int, params: dict[str, Any]) -> None:
        self.num_source = num_source
        self.num_classes = num_classes
        self.params = params
        self.mapping: torch.Tensor | None = None
        self.updates = 0

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
        return {"mapping": self.mapping, "updates": self.updates}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.mapping = state["mapping"]
        self.updates = int(state["updates"])

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


class FrequencyMapping(LabelMapping):
    def initialize(self, collect: Collect) -> None:
        self._refresh(collect)

    def estimate(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return lm.flm(logits, labels, self.num_classes)


class _Iterative(LabelMapping):
    def on_epoch_start(self, epoch: int, collect: Collect) -> None:
        if epoch % int(self.params["mapping_interval"]) == 0 or self.mapping is None:
            self._refresh(collect)


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
