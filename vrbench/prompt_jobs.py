"""Prompt-learning protocols -> jobs (docs/methods.md CLIP §2.5-2.7). Must stay importable without torch.

One grid cell (method, backbone, dataset, shots, seed) becomes the jobs its protocol needs:

- ``fewshot``: one job that trains on K shots of every class and tests on the full test split.
- ``base2novel``: a training job on the base classes (its own test is the *base* accuracy) and an evaluation job
  that rebuilds the model with the novel class names, loads the learned prompts and tests on the novel classes.
- ``cross_dataset`` / ``domain_generalization``: a training job on the source dataset (all classes) and one
  evaluation job per target dataset, each on the target's full test split with its own class names.

Evaluation jobs name their training run by its hash (``train_run``), never by a path, so they stay correct when
settings change: new settings make a new training run and therefore new evaluation jobs. Zero-shot methods learn
nothing, so every cell is a standalone test job (no ``train_run``).
"""

from __future__ import annotations

from typing import Any

from vrbench.backbones import BACKBONES
from vrbench.datasets import DATASETS
from vrbench.errors import ConfigError
from vrbench.jobs import ENGINE_VERSION, JobSpec, make_job
from vrbench.methods.clip_catalog import CLIP_METHODS, PROMPT_GENERAL
from vrbench.plugins import job_record

# ImageNet's domain-shift test sets: an evaluation on one of them belongs to the domain-generalization table.
DG_TARGETS = ("imagenetv2", "imagenet_sketch", "imagenet_a", "imagenet_r")
# Cross-dataset transfer and domain generalization evaluate the same ImageNet-trained prompts (§2.6), so their
# training jobs share one protocol name and therefore one hash: a suite with both trains each model once.
TRANSFER = ("cross_dataset", "domain_generalization")


def _protocol_of_target(target: str) -> str:
    return "domain_generalization" if target in DG_TARGETS else "cross_dataset"


def _check(combo: dict[str, Any], settings: dict[str, Any], targets: list[str]) -> list[str]:
    method = CLIP_METHODS.get(combo["method"])
    backbone = BACKBONES.get(combo["backbone"])
    dataset = DATASETS.get(combo["dataset"])
    problems = []
    if not backbone.is_clip:
        clips = ", ".join(b.name for b in BACKBONES if b.is_clip)
        problems.append(f"method '{method.name}' needs a CLIP backbone ({clips}), not '{backbone.name}'")
    if method.trains and "train" not in dataset.splits:
        problems.append(f"dataset '{dataset.name}' has no training split; use it as a cross-dataset target instead")
    if method.kind == "linear_probe" and combo["protocol"] != "fewshot":
        problems.append("linear_probe_clip belongs to the few-shot protocol (it cannot name novel classes)")
    if method.trains and combo["shots"] is None and combo["protocol"] != "fewshot":
        problems.append(f"the {combo['protocol']} protocol trains on K shots: set shots (the papers use 16)")
    if combo["protocol"] == "base2novel" and dataset.num_classes < 2:
        problems.append("base-to-novel needs at least two classes")
    if settings.get("csc") and combo["protocol"] != "fewshot":
        problems.append("class-specific context (csc) cannot be evaluated on other classes (§6.3.11)")
    for target in targets:
        if target == combo["dataset"]:
            problems.append(f"target '{target}' is the source dataset (its test is the training job's own)")
    for key in ("epochs", "batch_size", "test_batch_size", "warmup_epochs"):
        value = settings.get(key)
        if value is not None and value < (0 if key in ("epochs", "warmup_epochs") else 1):
            problems.append(f"{key} must be at least {0 if key in ('epochs', 'warmup_epochs') else 1}")
    return problems


def _train_config(combo: dict[str, Any], settings: dict[str, Any], subsample: str,
                  protocol: str | None = None) -> dict[str, Any]:
    method = CLIP_METHODS.get(combo["method"])
    protocol = protocol or ("cross_dataset" if combo["protocol"] in TRANSFER else combo["protocol"])
    config: dict[str, Any] = {
        "protocol": protocol, "method": method.name, "backbone": combo["backbone"],
        "dataset": combo["dataset"], "seed": combo["seed"], "stage": "train", "subsample": subsample,
        "shots": combo["shots"] if method.kind != "zeroshot" else None, "train_run": None, "source_dataset": None,
    }
    for name, (_, default) in PROMPT_GENERAL.items():
        config[name] = settings.get(name, method.defaults.get(name, default))
    if method.kind != "prompt":  # no SGD loop: the optimizer settings would only split identical jobs
        for name in ("epochs", "lr", "batch_size", "momentum", "weight_decay", "warmup_epochs", "warmup_lr",
                     "lr_schedule"):
            config.pop(name)
    for name, default in method.params.items():
        config[name] = settings.get(name, default)
    for name, default in method.late_params.items():  # hashed only away from the old behaviour
        if settings.get(name, default) != default:
            config[name] = settings[name]
    config["versions"] = versions(method.version, combo["backbone"], combo["dataset"])
    _add_plugins(config)
    return config


def versions(method_version: int, backbone: str, dataset: str) -> dict[str, int]:
    """What goes into the hash as versions: the engine's, the method's, and the data's where it was revised."""
    found = {"engine": ENGINE_VERSION, "method": method_version}
    revision = DATASETS.get(dataset).revision(BACKBONES.get(backbone).resize)
    if revision is not None:
        found["data"] = revision
    return found


def _add_plugins(config: dict[str, Any]) -> None:
    """Plugin entries' packages and versions into the hash; built-in jobs get no key (their hashes stay)."""
    plugins = job_record({"method": CLIP_METHODS.source(config["method"]),
                          "backbone": BACKBONES.source(config["backbone"]),
                          "dataset": DATASETS.source(config["dataset"])})
    if plugins:
        config["plugins"] = plugins


def _eval_config(train: JobSpec, dataset: str, subsample: str, settings: dict[str, Any]) -> dict[str, Any]:
    """An evaluation job: the training run's hash plus what is tested; the architecture comes from that run."""
    c = train.config
    protocol = _protocol_of_target(dataset) if c["protocol"] in TRANSFER else c["protocol"]
    config = {
        "protocol": protocol, "method": c["method"], "backbone": c["backbone"], "dataset": dataset,
        "seed": c["seed"], "stage": "eval", "subsample": subsample, "shots": c["shots"],
        "train_run": train.run_id, "source_dataset": c["dataset"],
        "test_batch_size": settings.get("test_batch_size", PROMPT_GENERAL["test_batch_size"][1]),
        "subset": c.get("subset"),
        "versions": versions(CLIP_METHODS.get(c["method"]).version, c["backbone"], dataset),
    }
    _add_plugins(config)
    return config


def resolve_prompt_jobs(combo: dict[str, Any], settings: dict[str, Any], targets: list[str]) -> list[JobSpec]:
    """The jobs of one grid cell under its protocol (training job first; evaluation jobs after it)."""
    problems = _check(combo, settings, targets)
    if problems:
        label = "/".join(str(combo[k]) for k in ("method", "backbone", "dataset", "shots", "seed"))
        raise ConfigError(f"job {label} is impossible: " + "; ".join(problems))
    method = CLIP_METHODS.get(combo["method"])
    label = settings.get("label")
    selection = ["final"]  # the prompt-learning papers test the last epoch's model (§4)
    protocol = combo["protocol"]
    if method.kind == "zeroshot":  # nothing learned: each test is its own job
        if protocol == "base2novel":
            return [make_job(_train_config(combo, settings, part), selection, label) for part in ("base", "new")]
        jobs = [make_job(_train_config(combo, settings, "all"), selection, label)]
        for target in targets:
            config = _train_config({**combo, "dataset": target}, settings, "all", _protocol_of_target(target))
            jobs.append(make_job(config, selection, label))
        return jobs
    if protocol == "base2novel":
        train = make_job(_train_config(combo, settings, "base"), selection, label)
        return [train, make_job(_eval_config(train, combo["dataset"], "new", settings), selection, label)]
    train = make_job(_train_config(combo, settings, "all"), selection, label)
    return [train, *(make_job(_eval_config(train, target, "all", settings), selection, label) for target in targets)]
