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
from torch import nn

from vrbench.backbones import BACKBONES
from vrbench.datasets.images import ImageSet
from vrbench.engine.data import prepare_splits
from vrbench.engine.device import DevicePlan, select_device
from vrbench.engine.environment import describe_environment
from vrbench.engine.progress import ProgressFile
from vrbench.errors import ResultsError
from vrbench.methods import INPUTS, MAPPINGS
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
        self.progress.update(force=True, phase="loading data", epoch=0, epochs=c["epochs"])
        set_seed(c["seed"])
        data_root = self.runtime.get("data_root")
        self.splits = prepare_splits(c, Path(data_root) if data_root else None, self.runtime.get("download", False))
        self.progress.update(force=True, phase="loading backbone")
        self.backbone_info = BACKBONES.get(c["backbone"])
        device = self.plan.device
        # channels_last is about 1.5x faster for these convnets on CPU and GPU (design.md anchors).
        self.model = self.backbone_info.load().to(device, memory_format=torch.channels_last)
        self.model.eval().requires_grad_(False)
        input_info = INPUTS.get(c["input"])
        self.input: nn.Module = load_object(input_info.implementation)(c, self.backbone_info).to(device)
        mapping_info = MAPPINGS.get(c["mapping"])
        params = {name: c[name] for name in mapping_info.params}
        num_classes = len(self.splits.train.classes)
        self.mapping: LabelMapping = load_object(mapping_info.implementation)(
            self.backbone_info.num_classes, num_classes, params)
        self.optimizer = torch.optim.Adam([p for p in self.input.parameters() if p.requires_grad], lr=c["lr"])
        milestones = [int(fraction * c["epochs"]) for fraction in c["milestones"]]
        self.scheduler = torch.optim.lr_scheduler.MultiStepLR(self.optimizer, milestones, gamma=c["gamma"])
        self.scaler = torch.amp.GradScaler("cuda") if self.plan.amp else None
        self.history: list[dict[str, Any]] = []
        self.resumed_at: list[int] = []

    # ------------------------------------------------------------------------------------- batches
    def _batches(self, images: ImageSet, order: torch.Tensor | None = None):
        size = self.config["batch_size"]
        n = len(images)
        for start in range(0, n, size):
            index = order[start:start + size] if order is not None else torch.arange(start, min(start + size, n))
            x = images.images[index].to(self.plan.device, non_blocking=True).float().div_(255)
            yield x.contiguous(memory_format=torch.channels_last), images.labels[index].to(self.plan.device)

    def _autocast(self):
        if self.plan.amp:
            return torch.autocast("cuda", dtype=torch.float16)
        return contextlib.nullcontext()

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(self.input(x).contiguous(memory_format=torch.channels_last))

    @torch.no_grad()
    def collect_train_logits(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The mapping pass: frozen model over the whole training split, fp32, input module in its current mode."""
        self.progress.update(force=True, phase="label mapping")
        outputs, labels = [], []
        for x, y in self._batches(self.splits.train):
            outputs.append(self.logits(x).float().cpu())
            labels.append(y.cpu())
        return torch.cat(outputs), torch.cat(labels)

    @torch.no_grad()
    def evaluate(self, images: ImageSet) -> float:
        self.input.eval()
        correct = 0
        for x, y in self._batches(images):
            correct += (self.mapping(self.logits(x).float()).argmax(1) == y).sum().item()
        return 100.0 * correct / len(images)

    def train_epoch(self, epoch: int) -> tuple[float, float]:
        self.input.train()
        train = self.splits.train
        order = torch.randperm(len(train))  # global RNG, like a shuffling DataLoader
        total_loss, correct, seen = 0.0, 0, 0
        batches = -(-len(train) // self.config["batch_size"])
        for step, (x, y) in enumerate(self._batches(train, order)):
            with self._autocast():
                mapped = self.mapping(self.logits(x))
                loss = F.cross_entropy(mapped, y)
            self.optimizer.zero_grad(set_to_none=True)
            if self.scaler is not None:
                self.scaler.scale(loss).backward()
                self.scaler.step(self.optimizer)
                self.scaler.update()
            else:
                loss.backward()
                self.optimizer.step()
            total_loss += loss.item() * len(y)
            correct += (mapped.argmax(1) == y).sum().item()
            seen += len(y)
            self.progress.update(phase="train", epoch=epoch + 1, batch=step + 1, batches=batches,
                                 loss=total_loss / seen, acc=100.0 * correct / seen)
        return total_loss / seen, 100.0 * correct / seen

    # ------------------------------------------------------------------------------------ checkpoint
    def save_checkpoint(self, epoch: int) -> None:
        scheduler = {k: (dict(v) if isinstance(v, Counter) else v) for k, v in self.scheduler.state_dict().items()}
        state = {
            "epoch": epoch,
            "input": self.input.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": scheduler,
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
        self.optimizer.load_state_dict(state["optimizer"])
        scheduler = dict(state["scheduler"])
        scheduler["milestones"] = Counter(scheduler["milestones"])
        self.scheduler.load_state_dict(scheduler)
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
            lr = self.optimizer.param_groups[0]["lr"]
            train_loss, train_acc = self.train_epoch(epoch)
            self.scheduler.step()
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
        exported = {**self.mapping.export(), "classes": list(self.splits.train.classes)}
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
            "trainable_params": sum(p.numel() for p in self.input.parameters() if p.requires_grad),
            "train_seconds": round(sum(row["seconds"] for row in history), 3),
            "resumed_at_epochs": self.resumed_at, "finished_at": now_iso(),
        }
        if self.splits.val is not None:
            best_val = max(history, key=lambda row: row["val_acc"])
            result["best_val_acc"] = best_val["test_acc"]
            result["best_val_epoch"] = best_val["epoch"]
        return result


def run_job(directory: Path) -> dict[str, Any]:
    return Job(directory).run()
