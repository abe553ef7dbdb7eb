"""Prompt-learning protocols: job expansion, class splits, feature caches, schedules and the clip-smoke suite."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from vrbench.errors import ConfigError
from vrbench.suite import load_suite, parse_suite

ROOT = Path(__file__).resolve().parents[1]

B2N = """
name: t
protocol: base2novel
grid:
  - method: [zeroshot, coop, promptsrc]
    backbone: clip_tiny
    dataset: digits
    shots: 4
    seed: [1, 2]
"""


def test_base_to_novel_pairs_each_training_job_with_a_novel_evaluation_by_hash() -> None:
    jobs = parse_suite(B2N, "x.yaml").jobs
    by_id = {job.run_id: job for job in jobs}
    trained = [j for j in jobs if j.config["method"] != "zeroshot"]
    trains = [j for j in trained if j.config["stage"] == "train"]
    evals = [j for j in trained if j.config["stage"] == "eval"]
    assert len(trains) == len(evals) == 4
    for job in evals:
        source = by_id[job.config["train_run"]]
        assert source.config["stage"] == "train" and source.config["subsample"] == "base"
        assert job.config["subsample"] == "new" and job.config["seed"] == source.config["seed"]
        assert job.depends_on == source.run_id
    zeroshot = [j for j in jobs if j.config["method"] == "zeroshot"]
    assert sorted(j.config["subsample"] for j in zeroshot) == ["base", "base", "new", "new"]
    assert all(j.depends_on is None and j.config["shots"] is None for j in zeroshot)


def test_changing_a_training_setting_changes_the_evaluation_jobs_too() -> None:
    one = parse_suite(B2N, "x.yaml").jobs
    two = parse_suite(B2N + "defaults: {epochs: 3}\n", "x.yaml").jobs
    evals_one = {j.run_id for j in one if j.config["stage"] == "eval"}
    evals_two = {j.run_id for j in two if j.config["stage"] == "eval"}
    assert evals_one.isdisjoint(evals_two)


def test_cross_dataset_and_domain_generalization_share_their_imagenet_training_jobs() -> None:
    suite = load_suite(ROOT / "suites" / "iccv23.yaml")
    trains = [j for j in suite.jobs if j.config["dataset"] == "imagenet" and j.config.get("stage") == "train"
              and j.config["protocol"] == "cross_dataset" and j.config["method"] == "promptsrc"]
    assert len(trains) == 3  # one per seed, although two grids (XD and DG) use them
    evals = [j for j in suite.jobs if j.depends_on in {t.run_id for t in trains}]
    targets = {j.config["dataset"]: j.config["protocol"] for j in evals}
    assert targets["imagenet_a"] == "domain_generalization" and targets["eurosat"] == "cross_dataset"
    assert len(evals) == 3 * 14
    psrc = trains[0].config
    assert (psrc["depth_text"], psrc["gpa_mean"], psrc["gpa_std"], psrc["epochs"]) == (3, 6.0, 10.0, 20)


def test_iccv23_recipes_follow_the_papers_configs() -> None:
    jobs = load_suite(ROOT / "suites" / "iccv23.yaml").jobs

    def one(**match):
        found = [j.config for j in jobs if all(j.config.get(k) == v for k, v in match.items())]
        assert found, match
        return found[0]

    assert one(method="coop", protocol="fewshot", shots=1, dataset="dtd")["epochs"] == 50
    assert one(method="coop", protocol="fewshot", shots=4, dataset="dtd")["epochs"] == 100
    assert one(method="coop", protocol="fewshot", shots=16, dataset="dtd")["epochs"] == 200
    assert one(method="coop", protocol="base2novel", stage="train", dataset="dtd")["ctx_init"] == "a photo of a"
    maple = one(method="maple", protocol="base2novel", stage="train", dataset="dtd")
    assert (maple["epochs"], maple["lr"], maple["depth"], maple["batch_size"]) == (5, 0.0035, 9, 4)
    cocoop = one(method="cocoop", protocol="base2novel", stage="train", dataset="dtd")
    assert (cocoop["epochs"], cocoop["batch_size"], cocoop["n_ctx"]) == (10, 1, 4)
    fs = one(method="promptsrc", protocol="fewshot", dataset="eurosat", shots=2)
    assert (fs["epochs"], fs["gpa_mean"], fs["gpa_std"]) == (50, 45.0, 5.0)
    assert one(method="promptsrc", protocol="fewshot", dataset="food101", shots=2)["gpa_mean"] == 30.0
    base = one(method="ivlp", protocol="base2novel", stage="train", dataset="dtd")
    assert (base["momentum"], base["weight_decay"], base["warmup_epochs"], base["warmup_lr"]) == (0.9, 5e-4, 1, 1e-5)


@pytest.mark.parametrize(("text", "message"), [
    ("name: t\nprotocol: fewshot\ngrid:\n  method: coop\n  backbone: resnet18\n  dataset: digits\n  seed: 1\n",
     "needs a CLIP backbone"),
    ("name: t\nprotocol: fewshot\ngrid:\n  method: cooop\n  backbone: clip_tiny\n  dataset: digits\n  seed: 1\n",
     "Did you mean 'coop'?"),
    ("name: t\nprotocol: fewshot\ngrid:\n  method: coop\n  backbone: clip_tiny\n  dataset: digits\n  seed: 1\n"
     "  targets: [animal_shapes]\n", "'targets' only apply to cross_dataset"),
    ("name: t\nprotocol: cross_dataset\ngrid:\n  method: coop\n  backbone: clip_tiny\n  dataset: digits\n"
     "  seed: 1\n", "needs 'targets'"),
    ("name: t\nprotocol: base2novel\ngrid:\n  method: coop\n  backbone: clip_tiny\n  dataset: imagenetv2\n"
     "  seed: 1\n", "has no training split"),
    ("name: t\nprotocol: base2novel\ngrid:\n  method: coop\n  backbone: clip_tiny\n  dataset: digits\n  seed: 1\n"
     "defaults: {csc: true}\n", "class-specific context"),
    ("name: t\nprotocol: vr\ngrid:\n  input: full\n  mapping: identity\n  backbone: clip_tiny\n  dataset: digits\n"
     "  seed: 1\n", "text_templates: single"),
])
def test_impossible_prompt_jobs_are_refused_with_the_reason(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as error:
        parse_suite(text, "x.yaml")
    assert message in str(error.value)


def test_base_and_novel_classes_are_disjoint_and_renumbered() -> None:
    from vrbench.datasets.images import ImageSet
    from vrbench.engine.clip_data import relabel

    labels = torch.tensor([0, 1, 2, 3, 4, 4, 3, 2, 1, 0])
    images = ImageSet(torch.arange(10, dtype=torch.uint8).view(10, 1, 1, 1).expand(10, 3, 2, 2).clone(), labels,
                      ("a", "b", "c", "d", "e"))
    base, new = relabel(images, "base", 5), relabel(images, "new", 5)
    assert base.classes == ("a", "b", "c") and new.classes == ("d", "e")  # m = ceil(5 / 2) = 3
    assert set(base.images[:, 0, 0, 0].tolist()).isdisjoint(new.images[:, 0, 0, 0].tolist())
    assert base.labels.tolist() == [0, 1, 2, 2, 1, 0] and new.labels.tolist() == [0, 1, 1, 0]


def test_feature_cache_reuses_and_never_serves_a_stale_entry(tmp_path: Path) -> None:
    from vrbench.clip.feature_cache import FeatureCache

    cache = FeatureCache(tmp_path, "clip_tiny|fp32")
    calls = []

    def compute(value: float):
        return lambda: calls.append(value) or torch.full((1, 2, 3), value)

    first = cache.text("", ["a {}."], ["cat", "dog"], compute(1.0))
    again = FeatureCache(tmp_path, "clip_tiny|fp32").text("", ["a {}."], ["cat", "dog"], compute(2.0))
    assert torch.equal(first, again) and calls == [1.0]
    cache.text("", ["a {}."], ["dog", "cat"], compute(3.0))  # another class order is another key
    cache.text("", ["an {}."], ["cat", "dog"], compute(4.0))
    FeatureCache(tmp_path, "clip_vit_b16|fp32").text("", ["a {}."], ["cat", "dog"], compute(5.0))
    assert calls == [1.0, 3.0, 4.0, 5.0]
    images = torch.zeros(2, 3, 4, 4, dtype=torch.uint8)
    labels = torch.tensor([0, 1])
    cache.image(images, labels, lambda: torch.ones(2, 3))
    edited = images.clone()
    edited[1, 0, 0, 0] = 1  # one pixel differs: a new entry
    assert torch.equal(cache.image(edited, labels, lambda: torch.zeros(2, 3)), torch.zeros(2, 3))
    assert cache.hits == 0 and cache.misses == 5  # the one hit was the second instance's
    for entry in (tmp_path / "cache" / "features" / "image").glob("*.pt"):
        entry.write_bytes(b"damaged")  # a damaged entry is recomputed, never trusted
    assert torch.equal(cache.image(images, labels, lambda: torch.full((2, 3), 7.0)), torch.full((2, 3), 7.0))


def test_dassl_warmup_cosine_matches_the_spec() -> None:
    from vrbench.engine.loop import warmup_cosine
    from vrbench.methods.base import ParamGroup

    group = ParamGroup("p", [], 0.0025, warmup_epochs=1, warmup_lr=1e-5)
    lrs = [group.lr * warmup_cosine(group, 20)(e) for e in range(20)]
    assert lrs[0] == pytest.approx(1e-5)
    assert lrs[1] == pytest.approx(0.0025)
    assert lrs[2] == pytest.approx(0.00248, abs=1e-5)
    assert lrs[-1] == pytest.approx(6.1e-5, abs=1e-6) and min(lrs[1:]) > 0
    assert lrs[-1] == pytest.approx(0.5 * 0.0025 * (1 + math.cos(math.pi * 18 / 20)))


def test_dassl_train_augmentation_crops_flips_and_normalises() -> None:
    from vrbench.backbones import CLIP_MEAN, CLIP_STD
    from vrbench.engine.clip_data import ClipImageInput

    augment = ClipImageInput(32, CLIP_MEAN, CLIP_STD)
    x = torch.rand(6, 3, 32, 32)
    torch.manual_seed(0)
    a = augment.preprocess(x, train=True)
    torch.manual_seed(0)
    b = augment.preprocess(x, train=True)
    assert a.shape == x.shape and torch.equal(a, b) and not torch.allclose(a, augment.preprocess(x, train=False))
    plain = augment.preprocess(x, train=False)
    expected = (x - torch.tensor(CLIP_MEAN).view(1, 3, 1, 1)) / torch.tensor(CLIP_STD).view(1, 3, 1, 1)
    assert torch.allclose(plain, expected)


def test_clip_vr_head_orders_sources_template_major() -> None:
    from vrbench.clip.encoders import encode_templates
    from vrbench.clip.models import get_clip_tokenizer, load_clip
    from vrbench.clip.vr_head import ClipTextHead

    model = load_clip("clip_tiny")
    per_template = encode_templates(model.encode_text, get_clip_tokenizer("clip_tiny"), torch.device("cpu"),
                                    ["a {}.", "the {}."], ["cat", "dog", "owl"])
    text = torch.nn.functional.normalize(per_template, dim=-1).reshape(6, -1)
    head = ClipTextHead(model, text)
    images = torch.rand(2, 3, 32, 32)
    logits = head(images)
    f = torch.nn.functional.normalize(model.encode_image(images), dim=-1)
    direct = model.logit_scale.exp() * f @ torch.nn.functional.normalize(per_template[1, 2], dim=-1)
    assert torch.allclose(logits[:, 1 * 3 + 2], direct, atol=1e-5)  # template 1, class 2 is row t*C + c


@pytest.mark.slow
def test_clip_smoke_suite_runs_every_method_and_protocol(tmp_path: Path) -> None:
    """The clip-smoke suite end to end through the CLI: training, evaluation jobs after their training runs,
    prompts reloaded for novel classes and another dataset, VR on CLIP, and a report."""
    env = {**os.environ, "VRBENCH_DATA": str(tmp_path / "data")}
    prepare = subprocess.run([sys.executable, "-m", "vrbench.cli", "data", "prepare", "animal_shapes"],
                             capture_output=True, text=True, env=env, cwd=ROOT)
    assert prepare.returncode == 0, prepare.stdout + prepare.stderr
    results = tmp_path / "results"
    run = subprocess.run([sys.executable, "-m", "vrbench.cli", "run", "suites/clip-smoke.yaml", "--results",
                          str(results), "--slots", "2"], capture_output=True, text=True, env=env, cwd=ROOT)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    suite = load_suite(ROOT / "suites" / "clip-smoke.yaml")
    for job in suite.jobs:
        directory = results / "runs" / job.run_id
        result = json.loads((directory / "result.json").read_text())
        assert 0 <= result["final_acc"] <= 100, job.label()
        config = job.config
        if config.get("stage") == "eval":
            data = json.loads((directory / "data.json").read_text())
            trained = results / "runs" / config["train_run"]
            assert (trained / "prompts.pt").exists()
            if config["subsample"] == "new":
                assert data["classes"] == ["5", "6", "7", "8", "9"] or len(data["classes"]) == 5
        if config.get("method") in ("coop", "promptsrc") and config["stage"] == "train":
            assert result["trainable_params"] > 0 and result["epochs"] == config["epochs"]
    report = subprocess.run([sys.executable, "-m", "vrbench.cli", "report", "--results", str(results), "--suite",
                             "suites/clip-smoke.yaml", "--format", "md", "--out", str(tmp_path / "reports")],
                            capture_output=True, text=True, env=env, cwd=ROOT)
    assert report.returncode == 0, report.stdout + report.stderr
