"""The one training loop (spec §9): every VR method is an input module plus a label mapping plugged in here.

Per epoch: let the mapping re-estimate itself if it wants to, train the input module on the frozen backbone,
step the schedule, evaluate on the test (and validation) split, then checkpoint. The checkpoint holds
everything the next epoch depends on (weights, optimizer, schedule, mapping, RNG state, history), so a job
killed at any point resumes from its last finished epoch and ends with the same numbers as an uninterrupted
run on the same machine.
"""

from __future__ import annotations

import contextlib
import json
import random
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from vrbench.backbones import BACKBONES, strip_classifier
from vrbench.datasets.images import ImageSet
from vrbench.engine.data import prepare_splits
from vrbench.engine.device import DevicePlan, select_device
from vrbench.engine.environment import describe_environment
from vrbench.engine.progress import ProgressFile
from vrbench.errors import ResultsError
from vrbench.methods import INPUTS, MAPPINGS
from vrbench.methods.base import InputTransform, ParamGroup
from vrbench.methods.label_mappings import LabelMapping
from vrbench.registry import load_object
from vrbench.store.rundir import (
    CHECKPOINT,
    CONFIG,
    ENV,
    MAPPING,
    METRICS,
    RESULT,
    atomic_write_json,
    atomic_write_text,
    now_iso,
    read_json,
)


def set_seed(seed: int) -> None:
    """Seed every global RNG, as the original scripts do (spec §0)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.cuda.manual_seed_all(seed)
    torch.backends.cudnn.deterministic = True


class Job:
    """Everything one run needs, built from its config.json."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        meta = read_json(directory / CONFIG)
        self.run_id: str = meta["run_id"]
        self.config: dict[str, Any] = meta["config"]
        self.runtime: dict[str, Any] = meta.get("runtime", {})
        self.progress = ProgressFile(directory)

    # ------------------------------------------------------------------------------------------ setup
    def build(self) -> None:
        c = self.config
        self.plan: DevicePlan = select_device(self.runtime.get("device", "auto"), self.runtime.get("threads"))
        atomic_write_json(self.directory / ENV, describe_environment(self.plan))
        self.progress.update(force=True, phase="loading backbone", epoch=0, epochs=c["epochs"])
        set_seed(c["seed"])
        device = self.plan.device
        self.backbone_info = BACKBONES.get(c["backbone"])
        mapping_info = MAPPINGS.get(c["mapping"])
        mapping_class = load_object(mapping_info.implementation)
        model = self.backbone_info.load()
        num_source = self.backbone_info.num_classes
        if mapping_class.uses_features:
            model, num_source = strip_classifier(model)
        # channels_last is about 1.5x faster for these convnets on CPU and GPU (design.md anchors).
        self.model = model.to(device, memory_format=torch.channels_last)
        input_info = INPUTS.get(c["input"])
        self.input: InputTransform = load_object(input_info.implementation)(c, self.backbone_info).to(device)
        self.trains_backbone = self.input.trains_backbone
        self.model.eval().requires_grad_(self.trains_backbone)
        self.progress.update(force=True, phase="loading data")
        data_root = self.runtime.get("data_root")
        sizes = {split: self.input.load_size(split) for split in ("train", "test")}
        self.splits = prepare_splits(c, Path(data_root) if data_root else None, sizes,
                                     self.runtime.get("download", False))
        if self.splits.val_indices is not None:  # the validation split is part of the run's record
            atomic_write_json(self.directory / "val_split.json", {
                "val_fraction": c["val_fraction"], "seed": c["seed"], "train_size": len(self.splits.train),
                "val_indices": self.splits.val_indices})
        params = {name: c[name] for name in mapping_info.params}
        self.mapping: LabelMapping = mapping_class(num_source, len(self.splits.train.classes), params)
        if self.mapping.module is not None:
            self.mapping.module.to(device)
        groups = self.input.optimizer_groups(c) + self.mapping.optimizer_groups(c)
        if self.trains_backbone:
            groups.append(ParamGroup("backbone", list(self.model.parameters()), c["lr"], schedule=c["schedule"],
                                     gamma=c["gamma"], weight_decay=c["weight_decay"]))
        self.groups = groups
        self.optimizers = [torch.optim.Adam(g.params, lr=g.lr, weight_decay=g.weight_decay) for g in groups]
        self.schedulers = [self._scheduler(optimizer, group) for optimizer, group in zip(self.optimizers, groups,
                                                                                          strict=True)]
        self.scaler = torch.amp.GradScaler("cuda") if self.plan.amp else None
        self.history: list[dict[str, Any]] = []
        self.resumed_at: list[int] = []

    def _scheduler(self, optimizer: torch.optim.Optimizer, group: ParamGroup):
        epochs = self.config["epochs"]
        if group.schedule == "cosine":
            return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)
        milestones = [int(fraction * epochs) for fraction in self.config["milestones"]]
        return torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones, gamma=group.gamma)

    def trainable_parameters(self) -> int:
        return sum(p.numel() for group in self.groups for p in group.params)

    # ------------------------------------------------------------------------------------- batches
    def _batches(self, images: ImageSet, train: bool, order: torch.Tensor | None = None):
        size = self.config["batch_size"]
        n = len(images)
        for start in range(0, n, size):
            index = order[start:start + size] if order is not None else torch.arange(start, min(start + size, n))
            x = images.images[index].to(self.plan.device, non_blocking=True).float().div_(255)
            yield self.input.preprocess(x, train), images.labels[index].to(self.plan.device)

    def _autocast(self):
        if self.plan.amp:
            return torch.autocast("cuda", dtype=torch.float16)
        return contextlib.nullcontext()

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(self.input(x).contiguous(memory_format=torch.channels_last))

    @torch.no_grad()
    def collect_train_logits(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The mapping pass: the model over the whole training split through the training pipeline (with its
        augmentation, as the originals' train loader), fp32, input module in whatever mode it is in."""
        self.progress.update(force=True, phase="label mapping")
        self.model.eval()
        outputs, labels = [], []
        for x, y in self._batches(self.splits.train, train=True):
            outputs.append(self.logits(x).float().cpu())
            labels.append(y.cpu())
        return torch.cat(outputs), torch.cat(labels)

    @torch.no_grad()
    def evaluate(self, images: ImageSet) -> float:
        self.input.eval()
        self.model.eval()
        if self.mapping.module is not None:
            self.mapping.module.eval()
        correct = 0
        for x, y in self._batches(images, train=False):
            correct += (self.mapping(self.logits(x).float()).argmax(1) == y).sum().item()
        return 100.0 * correct / len(images)

    def train_epoch(self, epoch: int) -> tuple[float, float]:
        self.input.train()
        if self.trains_backbone:
            self.model.train()
        if self.mapping.module is not None:
            self.mapping.module.train()
        train = self.splits.train
        order = torch.randperm(len(train))  # global RNG, like a shuffling DataLoader
        total_loss, correct, seen = 0.0, 0, 0
        batches = -(-len(train) // self.config["batch_size"])
        for step, (x, y) in enumerate(self._batches(train, train=True, order=order)):
            with self._autocast():
                outputs = self.logits(x)
                mapped = self.mapping(outputs)
                loss = F.cross_entropy(mapped, y)
            if self.mapping.observes_training:
                self.mapping.observe(outputs, y)
            for optimizer in self.optimizers:
                optimizer.zero_grad(set_to_none=True)
            if self.scaler is not None:
                self.scaler.scale(loss).backward()
                for optimizer in self.optimizers:
                    self.scaler.step(optimizer)
                self.scaler.update()
            else:
                loss.backward()
                for optimizer in self.optimizers:
                    optimizer.step()
            total_loss += loss.item() * len(y)
            correct += (mapped.argmax(1) == y).sum().item()
            seen += len(y)
            self.progress.update(phase="train", epoch=epoch + 1, batch=step + 1, batches=batches,
                                 loss=total_loss / seen, acc=100.0 * correct / seen)
        return total_loss / seen, 100.0 * correct / seen

    # ------------------------------------------------------------------------------------ checkpoint
    def save_checkpoint(self, epoch: int) -> None:
        state = {
            "epoch": epoch,
            "input": self.input.state_dict(),
            "backbone": self.model.state_dict() if self.trains_backbone else None,
            "optimizers": [optimizer.state_dict() for optimizer in self.optimizers],
            "schedulers": [_plain(scheduler.state_dict()) for scheduler in self.schedulers],
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
            "mapping": self.mapping.state_dict(),
            "history": self.history,
            "resumed_at": self.resumed_at,
            "rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        }
        tmp = self.directory / f".{CHECKPOINT}.tmp"
        torch.save(state, tmp)
        tmp.replace(self.directory / CHECKPOINT)

    def load_checkpoint(self) -> int:
        """Restore the last finished epoch; returns the epoch to start from (0 without a checkpoint)."""
        path = self.directory / CHECKPOINT
        if not path.exists():
            return 0
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - any unreadable checkpoint gets the same advice
            raise ResultsError(f"{path} is unreadable ({type(exc).__name__}: {str(exc).splitlines()[0]}); move it "
                               "away to restart this job from epoch 0 (vrbench never deletes it for you)") from None
        self.input.load_state_dict(state["input"])
        if self.trains_backbone:
            self.model.load_state_dict(state["backbone"])
        for optimizer, saved in zip(self.optimizers, state["optimizers"], strict=True):
            optimizer.load_state_dict(saved)
        for scheduler, saved in zip(self.schedulers, state["schedulers"], strict=True):
            saved = dict(saved)
            if "milestones" in saved:
                saved["milestones"] = Counter(saved["milestones"])
            scheduler.load_state_dict(saved)
        if self.scaler is not None and state["scaler"] is not None:
            self.scaler.load_state_dict(state["scaler"])
        self.mapping.load_state_dict(state["mapping"])
        self.history = list(state["history"])
        self.resumed_at = [*state["resumed_at"], int(state["epoch"])]
        torch.set_rng_state(state["rng"])
        if state["cuda_rng"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda_rng"])
        return int(state["epoch"])

    def write_metrics(self) -> None:
        atomic_write_text(self.directory / METRICS, "".join(json.dumps(row) + "\n" for row in self.history))

    # ------------------------------------------------------------------------------------------- run
    def run(self) -> dict[str, Any]:
        self.build()
        c = self.config
        start = self.load_checkpoint()
        if start == 0:
            self.mapping.initialize(self.collect_train_logits)
        for epoch in range(start, c["epochs"]):
            tick = time.monotonic()
            self.mapping.on_epoch_start(epoch, self.collect_train_logits)
            lr = self.optimizers[0].param_groups[0]["lr"] if self.optimizers else 0.0
            train_loss, train_acc = self.train_epoch(epoch)
            for scheduler in self.schedulers:
                scheduler.step()
            self.progress.update(force=True, phase="evaluate")
            val_acc = self.evaluate(self.splits.val) if self.splits.val is not None else None
            test_acc = self.evaluate(self.splits.test)
            self.history.append({"epoch": epoch + 1, "train_loss": train_loss, "train_acc": train_acc,
                                 "val_acc": val_acc, "test_acc": test_acc, "lr": lr,
                                 "seconds": round(time.monotonic() - tick, 3)})
            self.save_checkpoint(epoch + 1)
            self.write_metrics()
            self.progress.update(force=True, phase="epoch done", epoch=epoch + 1, test_acc=test_acc)
        result = self.summarize()
        exported = {**self.mapping.export(), "classes": list(self.splits.train.classes),
                    "source_classes": None if self.mapping.uses_features else self.backbone_info.source_classes()}
        atomic_write_json(self.directory / MAPPING, exported)
        atomic_write_json(self.directory / RESULT, result)  # the very last step: the job is now done
        return result

    def summarize(self) -> dict[str, Any]:
        history = self.history
        best_test = max(history, key=lambda row: row["test_acc"])  # max() keeps the first maximum
        result = {
            "run_id": self.run_id, "status": "done", "epochs": len(history),
            "final_acc": history[-1]["test_acc"],
            "best_test_acc": best_test["test_acc"], "best_test_epoch": best_test["epoch"],
            "best_val_acc": None, "best_val_epoch": None,
            "val_size": len(self.splits.val) if self.splits.val is not None else 0,
            "train_size": len(self.splits.train), "test_size": len(self.splits.test),
            "trainable_params": self.trainable_parameters(),
            "train_seconds": round(sum(row["seconds"] for row in history), 3),
            "resumed_at_epochs": self.resumed_at, "finished_at": now_iso(),
        }
        if self.splits.val is not None:
            best_val = max(history, key=lambda row: row["val_acc"])
            result["best_val_acc"] = best_val["test_acc"]
            result["best_val_epoch"] = best_val["epoch"]
        return result


def _plain(state: dict[str, Any]) -> dict[str, Any]:
    """Scheduler state without Counter objects, which torch.load(weights_only=True) refuses."""
    return {key: dict(value) if isinstance(value, Counter) else value for key, value in state.items()}


def run_job(directory: Path) -> dict[str, Any]:
    return Job(directory).run()
