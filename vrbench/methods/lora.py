"""LoRA fine-tuning of the backbone (SMM Table 13's "Finetuning-LoRA", rank 6), through the peft library.

No input pattern: images take the resize-to-model-resolution pipeline of SMM (Resize(R+32) -> RandomCrop(R) ->
flip at training, Resize(R) at test, ImageNet normalisation), so Table 13's two rows differ only in what trains.
peft injects rank-r adapters (B·A, B zero-initialised, scaled by alpha/r) into the named linear layers of the
frozen backbone; only the adapters train, in their own optimizer group with the job's lr and schedule. The paper
states rank 6, lr 0.01 and 10 epochs; the adapted layers and alpha are not stated: vrbench adapts the query and
value projections (LoRA's own choice for attention) with peft's default alpha 8, both settable.

The ViT stays in eval mode while its adapters train (version 2, issue 24): its own dropout (0.1 in
pytorch_pretrained_vit's ViT-L/16) is off, as in Table 13's SMM row, whose script freezes the network in eval mode
(SMM@eeac33a instancewise_vp.py:73-74). SMM's code has no LoRA script and the paper does not say the LoRA row
trained with dropout, so the two rows of the table differ only in what trains (docs/deviations.md).
"""

from __future__ import annotations

from typing import Any

from torch import nn

from vrbench.errors import ConfigError
from vrbench.methods.base import AugmentedNormalizedInput

ADAPTER_MARK = "lora_"  # peft names every adapter weight lora_A / lora_B


class LoRAInput(AugmentedNormalizedInput):
    """The identity on SMM's pipeline; its work is `prepare_backbone` (inject the adapters)."""

    trains_backbone = True
    backbone_train_mode = False  # the frozen ViT's dropout stays off, as in the SMM row (module docstring)

    def __init__(self, resolution: int, margin: int, mean: tuple[float, ...], std: tuple[float, ...], *,
                 rank: int, alpha: int, targets: list[str]) -> None:
        super().__init__(resolution, margin, mean, std)
        if rank < 1:
            raise ConfigError(f"lora_rank must be at least 1, got {rank}")
        self.rank, self.alpha, self.targets = rank, alpha, targets

    def forward(self, x):
        return x

    def prepare_backbone(self, model: nn.Module) -> nn.Module:
        from peft import LoraConfig, inject_adapter_in_model

        names = {name.rsplit(".", 1)[-1] for name, module in model.named_modules() if isinstance(module, nn.Linear)}
        missing = [t for t in self.targets if t not in names]
        if missing:
            raise ConfigError(f"lora_targets {missing} name no linear layer of {type(model).__name__} "
                              f"(its linear layers: {', '.join(sorted(names))})")
        config = LoraConfig(r=self.rank, lora_alpha=self.alpha, target_modules=list(self.targets),
                            lora_dropout=0.0, bias="none")
        return inject_adapter_in_model(config, model)

    def backbone_parameters(self, model: nn.Module) -> list[nn.Parameter]:
        return [p for name, p in model.named_parameters() if ADAPTER_MARK in name]

    def backbone_state(self, model: nn.Module) -> dict[str, Any]:
        """Only the adapters change: checkpoints hold them, not the frozen ViT-L's 300 M weights."""
        return {name: t for name, t in model.state_dict().items() if ADAPTER_MARK in name}

    def load_backbone_state(self, model: nn.Module, state: dict[str, Any]) -> None:
        result = model.load_state_dict(state, strict=False)
        if result.unexpected_keys or any(ADAPTER_MARK in key for key in result.missing_keys):
            raise ValueError(f"LoRA checkpoint does not fit the model: unexpected {result.unexpected_keys[:3]}, "
                             f"missing {[k for k in result.missing_keys if ADAPTER_MARK in k][:3]}")


def build_lora(config: dict[str, Any], backbone) -> LoRAInput:
    targets = [t.strip() for t in str(config["lora_targets"]).split(",") if t.strip()]
    return LoRAInput(config.get("resolution") or backbone.input_size, config["crop_margin"], backbone.mean,
                     backbone.std, rank=int(config["lora_rank"]), alpha=int(config["lora_alpha"]), targets=targets)
