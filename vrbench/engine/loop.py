"""The one training loop (docs/methods.md VR §9): every VR method is an input module plus a label mapping plugged in.

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
from vrbench.engine.border import SharedBorder, share_border, share_enabled
from vrbench.engine.data import prepare_splits
from vrbench.engine.device import DevicePlan, select_device
from vrbench.engine.environment import describe_environment
from vrbench.engine.fusion import fuse_activations, fuse_enabled
from vrbench.engine.levers import kept_sessions, session_record, summarize
from vrbench.engine.progress import ProgressFile
from vrbench.engine.speed import fold_batchnorm, fold_enabled, keep_freed_memory
from vrbench.errors import ResultsError
from vrbench.methods import INPUTS, MAPPINGS
from vrbench.methods.base import ParamGroup
from vrbench.methods.label_mappings import LabelMapping
from vrbench.plugins import check_job_sources
from vrbench.plugins import inventory as plugin_inventory
from vrbench.registry import load_object
from vrbench.store.rundir import (
    CHECKPOINT,
    CONFIG,
    ENV,
    MAPPING,
    METRICS,
    atomic_write,
    atomic_write_json,
    atomic_write_text,
    now_iso,
    read_json,
    write_result,
)
from vrbench.tracking import start_tracking, tracking_session

INFERENCE_BATCH = 128  # see Job.inference_batch


def set_seed(seed: int) -> None:
    """Seed every global RNG, as the original scripts do (docs/methods.md VR §0)."""
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
        keep_freed_memory()  # each batch reuses the last one's pages instead of faulting fresh ones in (speed.py)
        self.sessions = self._earlier_sessions()  # read before env.json is rewritten for this session
        self.environment = describe_environment(self.plan)
        # where this job's plugin entries come from (as hashed), and every plugin this process loaded or skipped
        self.environment["plugins"] = {"job": c.get("plugins", {}), **plugin_inventory()}
        self.session: dict[str, Any] | None = None
        self.write_environment()
        self.progress.update(force=True, phase="loading backbone", epoch=0, epochs=c.get("epochs", 0))
        set_seed(c["seed"])
        self.setup()
        # kernel choices that move the last bits (engine/levers.py), recorded per session
        self.session = session_record(
            len(self.sessions) + 1, now_iso(), 0,
            requested={"fold_batchnorm": fold_enabled(), "fuse_activations": fuse_enabled(),
                       "shared_border": share_enabled()},
            folded=getattr(self, "folded_batchnorm", 0), fused=getattr(self, "fused_activations", 0),
            chains=getattr(self, "frozen_chains", 0), border=getattr(self, "shared_border", False),
            border_batches=0)
        self.write_environment()
        self.optimizers = [_optimizer(g) for g in self.groups]
        self.schedulers = [self._scheduler(optimizer, group) for optimizer, group in zip(self.optimizers, self.groups,
                                                                                          strict=True)]
        self.scaler = torch.amp.GradScaler("cuda") if self.plan.scales_gradients else None
        self.history: list[dict[str, Any]] = []
        self.resumed_at: list[int] = []
        self.final_test_acc: float | None = None
        self.init_seconds = 0.0  # the method's work before epoch 1 (FLM/ILM/BLM's first label-mapping pass)

    # ------------------------------------------------------------------------------- method hooks (VR)
    # A method family plugs into the loop through these hooks; this class implements the VR one (an input
    # transformation plus a label mapping on a frozen classifier), vrbench.engine.clip_job the CLIP prompt learners.
    drop_last = False  # the VR papers' loaders keep the last partial batch
    test_each_epoch = True  # the VR papers test every epoch (best_test); prompt learners only at the end
    # The mapping and test passes under inference_mode: no_grad's kernels without autograd's bookkeeping. VR on
    # convnets only; CLIP heads and prompt learners keep no_grad (a tensor made there may later meet autograd).
    inference_mode_passes = False
    # Images per forward in those two passes (VR on convnets): the training batch's preprocessing is kept (the same
    # random draws, batch by batch) and consecutive batches are stacked up to this size, which is ~15 % more images/s
    # on a CPU for EfficientNet-Lite0. An eval-mode model computes each image alone, so the logits are the same
    # (bit for bit on this CPU: tests/test_engine_speed.py); never fewer images than the training batch.
    inference_batch = 1

    def setup(self) -> None:
        """Build the model, the data and self.groups (the optimizer groups)."""
        c = self.config
        device = self.plan.device
        self.backbone_info = BACKBONES.get(c["backbone"])
        mapping_info = MAPPINGS.get(c["mapping"])
        mapping_class = load_object(mapping_info.implementation)
        input_info = INPUTS.get(c["input"])
        if self.backbone_info.is_clip:  # CLIP's source classes are text embeddings of the target's class names
            self.input = load_object(input_info.implementation)(c, self.backbone_info).to(device)
            self._load_data()
            from vrbench.clip.vr_head import build_clip_head

            model, num_source = build_clip_head(c, self.splits.train.classes, self.results_root())
        else:
            model = self.backbone_info.load()
            num_source = self.backbone_info.num_classes
        if mapping_class.uses_features:
            model, num_source = strip_classifier(model)
        # channels_last is about 1.5x faster for these convnets on CPU and GPU (design.md anchors).
        self.model = model.to(device, memory_format=torch.channels_last)
        if not self.backbone_info.is_clip:
            self.input = load_object(input_info.implementation)(c, self.backbone_info).to(device)
        self.trains_backbone = self.input.trains_backbone
        if self.trains_backbone:  # LoRA injects its adapters here; full fine-tuning keeps the model as it is
            self.model = self.input.prepare_backbone(self.model).to(device)
        self.model.eval().requires_grad_(False)
        backbone_params = self.input.backbone_parameters(self.model) if self.trains_backbone else []
        for param in backbone_params:
            param.requires_grad_(True)
        self.folded_batchnorm = self.fused_activations = self.frozen_chains = 0
        if not self.trains_backbone and not self.backbone_info.is_clip and fold_enabled():
            model, self.folded_batchnorm = fold_batchnorm(self.model)  # VRBENCH_FOLD_BN=0 turns it off (speed.py)
            self.model = model.to(device, memory_format=torch.channels_last).requires_grad_(False)
            if fuse_enabled():  # CPU only; bitwise the same numbers and gradients (engine/fusion.py)
                self.fused_activations, self.frozen_chains = fuse_activations(self.model)
            if share_enabled() and self.input.shared_pattern:  # the batch's common border once (engine/border.py)
                self.model = share_border(self.model)
        self.shared_border = isinstance(self.model, SharedBorder)
        self.inference_mode_passes = not self.backbone_info.is_clip
        if self.inference_mode_passes:
            self.inference_batch = max(INFERENCE_BATCH, c["batch_size"])
        if not self.backbone_info.is_clip:
            self._load_data()
        params = {name: c[name] for name in mapping_info.params}
        self.mapping: LabelMapping = mapping_class(num_source, len(self.splits.train.classes), params)
        if self.mapping.module is not None:
            self.mapping.module.to(device)
        groups = self.input.optimizer_groups(c) + self.mapping.optimizer_groups(c)
        if self.trains_backbone:
            groups.append(ParamGroup("backbone", backbone_params, c["lr"], schedule=c["schedule"],
                                     gamma=c["gamma"], weight_decay=c["weight_decay"]))
        if "optimizer" in c:  # CLIP backbones: SGD with momentum and a per-iteration cosine (§1.8-1.10)
            for group in groups:
                group.optimizer, group.momentum, group.schedule = c["optimizer"], c["momentum"], c["lr_schedule"]
        self.groups = groups

    def _load_data(self) -> None:
        c = self.config
        self.progress.update(force=True, phase="loading data")
        sizes = {split: self.input.load_size(split) for split in ("train", "test")}
        self.splits = prepare_splits(c, self.data_root(), sizes,
                                     self.runtime.get("download", False), resize=self.backbone_info.resize)
        if self.splits.val_indices is not None:  # the validation split is part of the run's record
            atomic_write_json(self.directory / "val_split.json", {
                "val_fraction": c["val_fraction"], "seed": c["seed"], "train_size": len(self.splits.train),
                "val_indices": self.splits.val_indices})

    def data_root(self) -> Path | None:
        """The --data-root the launcher passed (None: the default resolution, $VRBENCH_DATA or ./data)."""
        root = self.runtime.get("data_root")
        return Path(root) if root else None

    def results_root(self) -> Path:
        """The results directory this run lives in (runs/<run_id> below it): shared caches go there."""
        return self.directory.parent.parent

    def step_loss(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(loss, target logits) of one training batch, inside autocast."""
        outputs = self.logits(x)
        mapped = self.mapping(outputs)
        loss = F.cross_entropy(mapped, y)
        if self.mapping.observes_training:
            self.mapping.observe(outputs, y)
        return loss, mapped

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        return self.mapping(self.logits(x).float())

    def set_mode(self, train: bool) -> None:
        self.input.train(train)
        if not train or (self.trains_backbone and self.input.backbone_train_mode):
            self.model.train(train)
        if self.mapping.module is not None:
            self.mapping.module.train(train)

    def first_start(self) -> None:
        """Before the first epoch of a fresh (not resumed) run."""
        self.mapping.initialize(self.collect_train_logits)

    def epoch_start(self, epoch: int) -> None:
        self.mapping.on_epoch_start(epoch, self.collect_train_logits)

    def epoch_end(self, epoch: int) -> None:
        """After the epoch's schedule step, before its evaluation (PromptSRC aggregates prompts here)."""

    def method_state(self) -> dict[str, Any]:
        return {"input": self.input.state_dict(),
                "backbone": self.input.backbone_state(self.model) if self.trains_backbone else None,
                "mapping": self.mapping.state_dict()}

    def load_method_state(self, state: dict[str, Any]) -> None:
        self.input.load_state_dict(state["input"])
        if self.trains_backbone:
            self.input.load_backbone_state(self.model, state["backbone"])
        self.mapping.load_state_dict(state["mapping"])

    def export(self) -> None:
        """Files written after training, before result.json (VR: the final label mapping)."""
        exported = {**self.mapping.export(), "classes": list(self.splits.train.classes),
                    "source_classes": None if self.mapping.uses_features else self.backbone_info.source_classes()}
        atomic_write_json(self.directory / MAPPING, exported)

    def batches_per_epoch(self) -> int:
        n, size = len(self.splits.train), self.config["batch_size"]
        return n // size if self.drop_last and n >= size else -(-n // size)

    def _scheduler(self, optimizer: torch.optim.Optimizer, group: ParamGroup):
        epochs = self.config["epochs"]
        if group.schedule == "cosine":
            return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)
        if group.schedule == "cosine_iter":
            steps = max(1, epochs * self.batches_per_epoch())
            return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps)
        if group.schedule == "warmup_cosine":
            return torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine(group, epochs))
        milestones = [int(fraction * epochs) for fraction in self.config["milestones"]]
        return torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones, gamma=group.gamma)

    def trainable_parameters(self) -> int:
        return sum(p.numel() for group in self.groups for p in group.params)

    # ------------------------------------------------------------------------------------- batches
    def _batches(self, images: ImageSet, train: bool, order: torch.Tensor | None = None):
        c = self.config
        size = c["batch_size"] if train or "test_batch_size" not in c else c["test_batch_size"]
        n = len(images)
        if train and self.drop_last and n >= size:  # Dassl: drop_last = (len(train) >= batch_size)
            n -= n % size
        for start in range(0, n, size):
            index = order[start:start + size] if order is not None else torch.arange(start, min(start + size, n))
            x = images.images[index].to(self.plan.device, non_blocking=True).float().div_(255)
            yield self.input.preprocess(x, train), images.labels[index].to(self.plan.device)

    def _inference_batches(self, images: ImageSet, train: bool):
        """_batches, stacked: consecutive batches go through the model together, up to ``inference_batch`` images."""
        pending: list[tuple[torch.Tensor, torch.Tensor]] = []
        for x, y in self._batches(images, train):
            if pending and sum(len(labels) for _, labels in pending) + len(y) > self.inference_batch:
                yield _stack(pending)
                pending = []
            pending.append((x, y))
        if pending:
            yield _stack(pending)

    def _autocast(self):
        if self.plan.amp:
            return torch.autocast(self.plan.device.type, dtype=self.plan.autocast_dtype)
        return contextlib.nullcontext()

    def inference(self):
        return torch.inference_mode() if self.inference_mode_passes else torch.no_grad()

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        x = self.input(x)
        # NaN and inf are caught where they enter the backbone: its fused kernels (engine/fusion.py, oneDNN post-ops)
        # clamp NaN to numbers where the plain ones carry it to the logits and the loss guard. The sum is NaN or inf
        # when any element is (finite inputs cannot sum past float32's range), and costs one reduction without the
        # mask isfinite(x).all() allocates: 0.10 against 1.7 ms for 128 x 3 x 64 x 64 on 2 cores
        if not bool(torch.isfinite(x.sum())):
            raise FloatingPointError("the backbone's input holds NaN or inf (the input module's parameters "
                                     "diverged)")
        return self.model(x.contiguous(memory_format=torch.channels_last))

    def collect_train_logits(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The mapping pass: the model over the whole training split through the training pipeline (with its
        augmentation, as the originals' train loader), fp32, input module in whatever mode it is in."""
        self.progress.update(force=True, phase="label mapping")
        self.model.eval()
        outputs, labels = [], []
        with self.inference():
            for x, y in self._inference_batches(self.splits.train, train=True):
                outputs.append(self.logits(x).float().cpu())
                labels.append(y.cpu())
            return torch.cat(outputs), torch.cat(labels)

    def evaluate(self, images: ImageSet) -> float:
        self.set_mode(False)
        correct = 0
        with self.inference():
            for x, y in self._inference_batches(images, train=False):
                correct += (self.predict(x).argmax(1) == y).sum().item()
        return 100.0 * correct / len(images)

    def train_epoch(self, epoch: int) -> tuple[float, float]:
        self.set_mode(True)
        train = self.splits.train
        order = torch.randperm(len(train))  # global RNG, like a shuffling DataLoader
        total_loss, correct, seen = 0.0, 0, 0
        batches = self.batches_per_epoch()
        per_batch = [s for s, g in zip(self.schedulers, self.groups, strict=True) if g.schedule == "cosine_iter"]
        for step, (x, y) in enumerate(self._batches(train, train=True, order=order)):
            with self._autocast():
                try:
                    loss, mapped = self.step_loss(x, y)
                except FloatingPointError as exc:
                    raise FloatingPointError(f"{exc} at epoch {epoch + 1}, batch {step + 1}") from None
            if not torch.isfinite(loss):  # as Dassl's model_backward_and_update: never train on through NaN
                raise FloatingPointError(f"the loss became {loss.item()} at epoch {epoch + 1}, batch {step + 1}: the "
                                         "run diverged and is failed (try a lower learning rate)")
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
            for scheduler in per_batch:
                scheduler.step()
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
            **self.method_state(),
            "optimizers": [optimizer.state_dict() for optimizer in self.optimizers],
            "schedulers": [_plain(scheduler.state_dict()) for scheduler in self.schedulers],
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
            "history": self.history,
            "resumed_at": self.resumed_at,
            "rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        }
        # torch.save into a Python file (not a path), so a full disk surfaces as ENOSPC, not a bare RuntimeError
        atomic_write(self.directory / CHECKPOINT, lambda handle: torch.save(state, handle),
                     f"the checkpoint after epoch {epoch}")

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
        self.load_method_state(state)
        for optimizer, saved in zip(self.optimizers, state["optimizers"], strict=True):
            optimizer.load_state_dict(saved)
        for scheduler, saved in zip(self.schedulers, state["schedulers"], strict=True):
            saved = dict(saved)
            if "milestones" in saved:
                saved["milestones"] = Counter(saved["milestones"])
            scheduler.load_state_dict(saved)
        if self.scaler is not None and state["scaler"] is not None:
            self.scaler.load_state_dict(state["scaler"])
        self.history = list(state["history"])
        self.resumed_at = [*state["resumed_at"], int(state["epoch"])]
        torch.set_rng_state(state["rng"])
        if state["cuda_rng"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda_rng"])
        return int(state["epoch"])

    def _earlier_sessions(self) -> list[dict[str, Any]]:
        """The sessions an earlier env.json of this run recorded (a resumed job keeps those it builds on)."""
        try:
            sessions = read_json(self.directory / ENV).get("sessions")
        except (OSError, ValueError, AttributeError):
            return []
        return sessions if isinstance(sessions, list) else []

    def write_environment(self, last_epoch: int | None = None) -> None:
        """env.json: the environment, and the levers of every session the job's numbers come from so far."""
        sessions = list(self.sessions)
        if self.session is not None:
            if last_epoch is not None:
                self.session["epochs"][1] = last_epoch
            self.session["shared_border_batches"] = getattr(self.model, "batches_shared", 0)
            self.session["shared_border"] = "on" if self.session["shared_border_batches"] else "off"
            sessions.append(self.session)
        atomic_write_json(self.directory / ENV, {**self.environment, "levers": summarize(sessions),
                                                 "sessions": sessions})

    def write_metrics(self) -> None:
        atomic_write_text(self.directory / METRICS, "".join(json.dumps(row) + "\n" for row in self.history))

    # ------------------------------------------------------------------------------------------- run
    def run(self) -> dict[str, Any]:
        self.build()
        c = self.config
        epochs = c.get("epochs", 0)
        start = self.load_checkpoint()
        self.sessions = kept_sessions(self.sessions, start)
        self.session["epochs"] = [start, start]
        self.session["session"] = len(self.sessions) + 1
        self.write_environment()
        self.tracking = start_tracking(self.directory, self.history)  # TensorBoard, W&B, MLflow (vrbench.tracking)
        if start == 0:
            tick = time.monotonic()
            self.first_start()
            self.init_seconds = round(time.monotonic() - tick, 3)
        per_epoch = [s for s, g in zip(self.schedulers, self.groups, strict=True) if g.schedule != "cosine_iter"]
        for epoch in range(start, epochs):
            tick = time.monotonic()
            self.epoch_start(epoch)
            lr = self.optimizers[0].param_groups[0]["lr"] if self.optimizers else 0.0
            train_loss, train_acc = self.train_epoch(epoch)
            for scheduler in per_epoch:
                scheduler.step()
            self.epoch_end(epoch)
            self.progress.update(force=True, phase="evaluate")
            val_acc = self.evaluate(self.splits.val) if self.splits.val is not None else None
            last = epoch == epochs - 1
            test_acc = self.evaluate(self.splits.test) if self.test_each_epoch or last else None
            self.history.append({"epoch": epoch + 1, "train_loss": train_loss, "train_acc": train_acc,
                                 "val_acc": val_acc, "test_acc": test_acc, "lr": lr,
                                 "seconds": round(time.monotonic() - tick, 3)})
            self.save_checkpoint(epoch + 1)
            self.write_environment(epoch + 1)
            self.write_metrics()
            self.tracking.log_epoch(self.history[-1])
            self.progress.update(force=True, phase="epoch done", epoch=epoch + 1, test_acc=test_acc)
        if epochs == 0:  # nothing to train (zero-shot, evaluation jobs): one test of the model as built
            self.progress.update(force=True, phase="evaluate")
            self.final_test_acc = self.evaluate(self.splits.test)
        result = self.summarize()
        self.export()
        self.write_environment()
        write_result(self.directory, result)  # the very last step: the job is now done
        self.tracking.finish(result)
        return result

    def summarize(self) -> dict[str, Any]:
        history = self.history
        tested = [row for row in history if row["test_acc"] is not None]
        best_test = max(tested, key=lambda row: row["test_acc"]) if self.test_each_epoch and tested else None
        final = history[-1]["test_acc"] if history else self.final_test_acc
        result = {
            "run_id": self.run_id, "status": "done", "epochs": len(history),
            "final_acc": final,
            # max() keeps the first maximum; None where the run tests only once (nothing to select over)
            "best_test_acc": best_test["test_acc"] if best_test else None,
            "best_test_epoch": best_test["epoch"] if best_test else None,
            "best_val_acc": None, "best_val_epoch": None,
            "val_size": len(self.splits.val) if self.splits.val is not None else 0,
            "train_size": len(self.splits.train) if self.splits.train is not None else 0,
            "test_size": len(self.splits.test),
            "trainable_params": self.trainable_parameters(),
            "train_seconds": round(sum(row["seconds"] for row in history), 3),
            "init_seconds": self.init_seconds,
            "resumed_at_epochs": self.resumed_at, "finished_at": now_iso(),
        }
        if self.splits.val is not None and history:
            best_val = max(history, key=lambda row: row["val_acc"])
            result["best_val_acc"] = best_val["test_acc"]
            result["best_val_epoch"] = best_val["epoch"]
        return result


def _optimizer(group: ParamGroup) -> torch.optim.Optimizer:
    if group.optimizer == "sgd":  # Dassl / ILM-VP on CLIP: plain SGD, no dampening or Nesterov
        return torch.optim.SGD(group.params, lr=group.lr, momentum=group.momentum, weight_decay=group.weight_decay)
    return torch.optim.Adam(group.params, lr=group.lr, weight_decay=group.weight_decay)


def warmup_cosine(group: ParamGroup, epochs: int):
    """Dassl's ConstantWarmupScheduler over CosineAnnealingLR(T_max=epochs), as an LR factor per epoch index.

    Epoch e < warmup: warmup_lr; after: 0.5 * lr * (1 + cos(pi * (e - warmup) / epochs)), so the LR never reaches
    0 (docs/methods.md CLIP §0: lr 0.0025, 20 epochs gives 1e-5, 0.0025, 0.00248, ..., 6.1e-5).
    """
    import math

    def factor(e: int) -> float:
        if e < group.warmup_epochs:
            return group.warmup_lr / group.lr
        return 0.5 * (1 + math.cos(math.pi * (e - group.warmup_epochs) / epochs))

    return factor


def _stack(batches: list[tuple[torch.Tensor, torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor]:
    if len(batches) == 1:
        return batches[0]
    return torch.cat([x for x, _ in batches]), torch.cat([y for _, y in batches])


def _plain(state: dict[str, Any]) -> dict[str, Any]:
    """Scheduler state without Counter objects, which torch.load(weights_only=True) refuses."""
    return {key: dict(value) if isinstance(value, Counter) else value for key, value in state.items()}


def run_job(directory: Path) -> dict[str, Any]:
    """Run the job in ``directory`` with the loop hooks of its method family (VR, or CLIP prompt learning)."""
    config = read_json(directory / CONFIG)["config"]
    check_job_sources(config)  # imports its local plugin modules; refuses a plugin version it was not planned with
    with tracking_session():  # a job that fails closes its trackers' runs as failed
        if "method" in config:
            from vrbench.engine.clip_job import clip_job_class

            return clip_job_class(config)(directory).run()
        return Job(directory).run()
