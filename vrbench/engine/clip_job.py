"""CLIP prompt learners in the one training loop (vrbench.engine.loop.Job), through its hooks.

A prompt-learning job differs from a VR job only in its parts: the model is a `vrbench.clip.methods` module
(frozen CLIP plus the method's prompts and losses), the data is a K-shot draw restricted to the job's classes,
the optimizer is Dassl's SGD with one warm-up epoch and a per-epoch cosine, training drops the last partial batch,
and the test runs once, after the last epoch (the papers report the last epoch's model, §4).

Three job kinds share this class: training jobs (the method learns, then tests on its own split and saves its
prompts to ``prompts.pt``), evaluation jobs (``stage: eval``: rebuild the method for other class names or another
dataset, load a finished training run's prompts by its hash, test), and zero-shot jobs (nothing to learn: test).
Linear probing is not gradient descent here but the original's L-BFGS logistic regression on frozen features.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from vrbench.backbones import BACKBONES
from vrbench.engine.clip_data import ClipImageInput, load_prompt_data
from vrbench.engine.data import load_split
from vrbench.engine.loop import Job
from vrbench.errors import ConfigError, ResultsError
from vrbench.methods.base import ParamGroup
from vrbench.methods.clip_catalog import CLIP_METHODS
from vrbench.store.rundir import CONFIG, RESULT, atomic_write, atomic_write_json, read_json, write_result
from vrbench.tracking import start_tracking

PROMPTS = "prompts.pt"  # a training run's learned tensors, read by its evaluation jobs


class ClipPromptJob(Job):
    drop_last = True  # Dassl: drop_last = (len(train) >= batch_size)
    test_each_epoch = False

    def setup(self) -> None:
        from vrbench.clip.encoders import PromptedCLIP
        from vrbench.clip.feature_cache import FeatureCache
        from vrbench.clip.models import get_clip_tokenizer, load_clip

        c = self.config
        device = self.plan.device
        self.backbone_info = BACKBONES.get(c["backbone"])
        self.method_info = CLIP_METHODS.get(c["method"])
        self.training_run = self._training_run() if c["stage"] == "eval" else None
        params = self._method_params()
        self.input = ClipImageInput(self.backbone_info.input_size, self.backbone_info.mean, self.backbone_info.std)
        self.trains_backbone = False
        self.progress.update(force=True, phase="loading data")
        needs_train = c["stage"] == "train" and self.method_info.kind != "zeroshot"
        # linear probing draws its own shots from the features of the whole training split (lpclip)
        data_config = {**c, "shots": None} if self.method_info.kind == "linear_probe" else c
        self.data = load_prompt_data(data_config, self.data_root(),
                                     self.backbone_info.input_size, self.runtime.get("download", False),
                                     self.backbone_info.resize, needs_train)
        self.splits = self.data  # the loop reads .train / .val / .test
        atomic_write_json(self.directory / "data.json", self.data.record)
        self.progress.update(force=True, phase="loading backbone")
        self.cache = FeatureCache(self.results_root(), f"{c['backbone']}|{self.plan.precision}", self._autocast)
        self.clip = PromptedCLIP(load_clip(c["backbone"])).to(device)
        self.groups = []
        if self.method_info.kind == "linear_probe":
            self.model = self.clip
            return
        method_class = self.method_info.load()
        self.method = method_class(self.clip, get_clip_tokenizer(c["backbone"]), list(self.data.test.classes),
                                   {**params, "backbone": self.cache.model_key}, c["dataset"],
                                   text_cache=self.cache).to(device)
        self.model = self.method
        if self.training_run is not None:
            self._load_prompts(self.training_run)
        if c["stage"] == "train" and self.method_info.kind == "prompt" and c["epochs"] > 0:
            self.groups = [ParamGroup(
                "prompts", self.method.trainable_parameters(), c["lr"], schedule=c["lr_schedule"],
                weight_decay=c["weight_decay"], optimizer="sgd", momentum=c["momentum"],
                warmup_epochs=c["warmup_epochs"], warmup_lr=c["warmup_lr"])]

    # ----------------------------------------------------------------------------- evaluation jobs
    def _training_run(self) -> Path:
        directory = self.directory.parent / self.config["train_run"]
        if not (directory / RESULT).exists():
            raise ResultsError(
                f"evaluation job {self.run_id} needs training run {self.config['train_run']}, which has not finished "
                f"(no {directory / RESULT}); run the suite again: evaluation jobs start after their training run")
        return directory

    def _method_params(self) -> dict[str, Any]:
        """The method's hyperparameters: this job's own, or (evaluation jobs) those its training run used."""
        source = read_json(self.training_run / CONFIG)["config"] if self.training_run else self.config
        late = {name: source.get(name, default) for name, default in self.method_info.late_params.items()}
        return {**{name: source[name] for name in self.method_info.params}, **late}

    def _load_prompts(self, directory: Path) -> None:
        path = directory / PROMPTS
        try:
            saved = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - any unreadable file gets the same advice
            raise ResultsError(f"{path} is unreadable ({type(exc).__name__}); re-run training run {directory.name} "
                               "after moving its directory away") from None
        self._assign(saved["prompts"])

    def _trainable_state(self) -> dict[str, torch.Tensor]:
        return {name: p.detach().cpu().clone() for name, p in self.method.named_parameters() if p.requires_grad}

    def _assign(self, tensors: dict[str, torch.Tensor]) -> None:
        own = {name: p for name, p in self.method.named_parameters() if p.requires_grad}
        if set(own) != set(tensors):
            raise ConfigError(f"the saved prompts ({sorted(tensors)}) do not fit this model ({sorted(own)})")
        with torch.no_grad():
            for name, tensor in tensors.items():
                if own[name].shape != tensor.shape:
                    raise ConfigError(f"saved prompt {name} has shape {tuple(tensor.shape)}, the model needs "
                                      f"{tuple(own[name].shape)} (class-specific context cannot change classes)")
                own[name].copy_(tensor)

    # ----------------------------------------------------------------------------------- loop hooks
    def step_loss(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.method.training_loss(x, y)

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        return self.method(x).float()

    def set_mode(self, train: bool) -> None:
        self.method.train(train)

    @torch.no_grad()
    def evaluate(self, images) -> float:
        """Test in the precision of training (the originals run CLIP in fp16 throughout, test included).

        Methods that leave the image path alone (zero-shot, CoOp, CoCoOp) test on cached frozen image features.
        """
        with self._autocast():
            if self.method.changes_image_path:
                return super().evaluate(images)
            self.set_mode(False)
            features = self.frozen_image_features(images)
            correct = 0
            size = self.config["test_batch_size"]
            for start in range(0, len(images), size):
                logits = self.method.logits_from_image_features(features[start:start + size].to(self.plan.device))
                correct += (logits.float().argmax(1).cpu() == images.labels[start:start + size]).sum().item()
            return 100.0 * correct / len(images)

    @torch.no_grad()
    def frozen_image_features(self, images) -> torch.Tensor:
        """(N, D) unnormalised features of the frozen image encoder at the test transform, through the cache."""
        def compute() -> torch.Tensor:
            outputs = []
            for start in range(0, len(images), self.config["test_batch_size"]):
                x = images.images[start:start + self.config["test_batch_size"]].to(self.plan.device).float() / 255
                outputs.append(self.clip.encode_image(self.input.preprocess(x, train=False)).float().cpu())
            return torch.cat(outputs)

        return self.cache.image(images.images, images.labels, compute)

    def first_start(self) -> None:
        pass

    def epoch_start(self, epoch: int) -> None:
        pass

    def epoch_end(self, epoch: int) -> None:
        self.method.epoch_end(epoch, self.config["epochs"])

    def method_state(self) -> dict[str, Any]:
        return {"prompts": self._trainable_state(), "extra": self.method.extra_state()}

    def load_method_state(self, state: dict[str, Any]) -> None:
        self._assign(state["prompts"])
        self.method.load_extra_state(state["extra"])

    def trainable_parameters(self) -> int:
        if self.method_info.kind != "prompt":
            return 0
        return sum(p.numel() for p in self.method.trainable_parameters())

    def export(self) -> None:
        if self.config["stage"] == "train" and self.method_info.kind == "prompt":
            state = {"run_id": self.run_id, "prompts": self._trainable_state()}
            atomic_write(self.directory / PROMPTS, lambda handle: torch.save(state, handle), "the learned prompts")


class LinearProbeJob(ClipPromptJob):
    """Linear-probe CLIP (§1.2): L-BFGS logistic regression on raw frozen image features, C searched on val.

    Features of every image go through the feature cache. The K-shot train and validation draws follow lpclip:
    ``np.random.seed(seed)``, then per class (sorted) ``np.random.choice(..., K, replace=False)``; validation shots
    are {1: 1, 2: 2, 4: 4, 8: 4, 16: 4} from the dataset's val split, or, where a dataset has none (the embedded
    ones), from the training images not drawn for training.
    """

    def run(self) -> dict[str, Any]:
        from vrbench.clip.linear_probe import fewshot_val_shots, fit_linear_probe
        from vrbench.datasets import DATASETS

        self.build()
        self.tracking = start_tracking(self.directory, [])  # no epochs: the hyperparameters and the result
        c = self.config
        self.progress.update(force=True, phase="features")
        info = DATASETS.get(c["dataset"])
        train_x, train_y = self._features(self.data.train)
        test_x, test_y = self._features(self.data.test)
        rng_state = np.random.get_state()
        np.random.seed(c["seed"])
        shots = c["shots"]
        train_idx = _per_class_choice(train_y, shots)
        val_shots = fewshot_val_shots(shots)
        if "val" in info.splits:
            val = load_split(c, "val", self.backbone_info.input_size, self.data_root(),
                             self.runtime.get("download", False), self.backbone_info.resize)
            val_x, val_y = self._features(val)
            val_idx = _per_class_choice(val_y, val_shots)
        else:
            rest = np.setdiff1d(np.arange(len(train_y)), train_idx)
            val_x, val_y = train_x, train_y
            val_idx = rest[_per_class_choice(train_y[rest], val_shots)]
        np.random.set_state(rng_state)
        self.progress.update(force=True, phase="fitting")
        fit = fit_linear_probe(train_x[train_idx], train_y[train_idx], val_x[val_idx], val_y[val_idx], test_x, test_y,
                               num_steps=c["num_steps"])
        self.final_test_acc = float(fit["acc"])
        atomic_write_json(self.directory / "linear_probe.json", {
            "C": fit["C"], "search": fit["search"], "train_indices": train_idx.tolist(),
            "val_indices": val_idx.tolist()})
        result = self.summarize()
        result["train_size"] = int(len(train_idx))
        result["val_size"] = int(len(val_idx))
        result["trainable_params"] = int(train_x.shape[1] * len(self.data.test.classes) + len(self.data.test.classes))
        write_result(self.directory, result)
        self.tracking.finish(result)
        return result

    def _features(self, images) -> tuple[np.ndarray, np.ndarray]:
        return self.frozen_image_features(images).numpy(), images.labels.numpy()


def _per_class_choice(labels: np.ndarray, shots: int) -> np.ndarray:
    chosen = [np.random.choice(np.flatnonzero(labels == label), min(shots, int((labels == label).sum())),
                               replace=False) for label in np.unique(labels)]
    return np.concatenate(chosen)


def clip_job_class(config: dict[str, Any]) -> type[Job]:
    """The job class for a CLIP method config (linear probing has its own, non-SGD procedure)."""
    kind = CLIP_METHODS.get(config["method"]).kind
    return LinearProbeJob if kind == "linear_probe" else ClipPromptJob
