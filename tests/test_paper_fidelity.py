"""Issue 10, "settings to correct": each paper-suite cell resolves to the setting its paper used, and job ids
change exactly where a setting changed (so finished results are reused only for identical settings)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from vrbench.registry import Registry, load_object
from vrbench.suite import load_suite, parse_suite  # importing the suite module fills every registry

SUITES = Path(__file__).resolve().parent.parent / "suites"
IMPORT_PATH = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")


def test_every_registered_implementation_path_imports() -> None:
    kinds = {registry.kind for registry in Registry.instances}
    assert {"backbone", "dataset", "input", "mapping", "method"} <= kinds
    for registry in Registry.instances:
        for entry in registry:
            for field, value in getattr(entry, "__dict__", {}).items():
                if isinstance(value, str) and IMPORT_PATH.match(value):  # a path a registry forgot to declare
                    assert field in registry.paths, f"{registry.kind} field {field!r} holds an import path"
            for field in registry.paths:
                if getattr(entry, field) is None:  # optional paths (a dataset's lister) may be absent
                    continue
                target = load_object(getattr(entry, field))
                assert callable(target), f"{registry.kind} {entry.name}: {getattr(entry, field)} is not callable"


def test_every_clip_method_that_builds_a_model_has_one() -> None:
    from vrbench.clip.methods import METHODS
    from vrbench.methods.clip_catalog import CLIP_METHODS

    assert {m.name for m in CLIP_METHODS if m.kind != "linear_probe"} == set(METHODS)


# ------------------------------------------------------------------ ids change exactly where a setting changed
def cell(job) -> tuple:
    c = job.config
    return (job.method, c["protocol"], c.get("stage"), c["backbone"], c["dataset"], c.get("source_dataset"),
            c.get("subsample"), c.get("shots"), c["seed"])


def changed_cells(name: str, fixed: str, before: str, subset: bool = False) -> set[tuple]:
    """Cells whose job id differs between the suite and the same suite with `fixed` replaced by `before`; the two
    have the same cells, or (``subset``) the suite's cells are among the other's."""
    text = (SUITES / name).read_text(encoding="utf-8")
    assert text.count(fixed) == 1, f"{fixed!r} is not in {name}"
    now = {cell(job): job.run_id for job in parse_suite(text, name).jobs}
    old = {cell(job): job.run_id for job in parse_suite(text.replace(fixed, before), name).jobs}
    assert now.keys() <= old.keys() if subset else now.keys() == old.keys()
    return {key for key in now if now[key] != old[key]}


def test_smm_vit_setting_changes_exactly_the_vit_jobs() -> None:
    changed = changed_cells("icml24.yaml", "set: {lr: 0.001, gamma: 1.0, mask_lr: 0.001, mask_gamma: 1.0}",
                            "set: {lr: 0.001}")
    everything = {cell(job) for job in load_suite(SUITES / "icml24.yaml").jobs}
    table8 = "smm dataset-specific lr"  # SMM Table 8's job sets its own lr and decay in its grid entry
    assert changed == {key for key in everything if key[3] == "vit_b32" and key[0] != table8}
    assert len(changed) == 5 * 12 * 3


def test_ff_abide_setting_changes_exactly_the_three_ff_abide_cells() -> None:
    changed = changed_cells("cvpr23.yaml", "set: {crop_margin: 0, train_augment: false, test_augment: false}",
                            "set: {}")
    assert {(key[0], key[3], key[4]) for key in changed} == {
        ("finetune+imagenet_head", backbone, "abide") for backbone in ("resnet18", "resnet50", "resnext101_32x8d_wsl")}
    assert len(changed) == 3 * 3  # three backbones x three seeds


def test_coop_transfer_setting_changes_exactly_the_coop_transfer_jobs() -> None:
    changed = changed_cells("iccv23.yaml", 'set: {ctx_init: "a photo of a", epochs: 50}', "set: {}")
    assert {(key[0], key[1]) for key in changed} == {("coop", "cross_dataset"), ("coop", "domain_generalization")}
    # 3 shared ImageNet training jobs, 10 cross-dataset and 4 DG evaluations each (they name the training run)
    assert len(changed) == 3 * (1 + 10 + 4)


# ------------------------------------------------------------------ 1. SMM on ViT-B/32: Table 2's unified setting
def test_smm_vit_jobs_train_pattern_and_mask_generator_at_lr_0_001_without_decay() -> None:
    from vrbench.backbones import BACKBONES
    from vrbench.methods.smm import build_smm

    jobs = load_suite(SUITES / "icml24.yaml").jobs
    vit = [job for job in jobs if job.config["backbone"] == "vit_b32"]
    table8 = [job for job in vit if job.display_name == "smm dataset-specific lr"]  # Table 8: SMM cfg.py's own lr
    assert {(job.config["lr"], job.config["gamma"]) for job in table8} == {(0.01, 0.1)} and len(table8) == 3
    vit = [job for job in vit if job not in table8]
    assert {(job.config["lr"], job.config["gamma"]) for job in vit} == {(0.001, 1.0)}
    smm = next(job for job in vit if job.config["input"] == "smm")
    groups = {g.name: (g.lr, g.gamma) for g in build_smm(smm.config, BACKBONES.get("vit_b32")).optimizer_groups(
        smm.config)}
    assert groups == {"pattern": (0.001, 1.0), "mask_net": (0.001, 1.0)}
    resnet = next(job for job in jobs if job.config["input"] == "smm" and job.config["backbone"] == "resnet18")
    groups = {g.name: (g.lr, g.gamma) for g in build_smm(resnet.config, BACKBONES.get("resnet18")).optimizer_groups(
        resnet.config)}
    assert groups == {"pattern": (0.01, 0.1), "mask_net": (0.01, 0.1)}  # SMM cfg.py on ResNets (Table 1)


# ------------------------------------------------------------------ 2. full fine-tuning on ABIDE: ILM-VP's own path
def test_ff_on_abide_resizes_to_224_without_crop_or_flip_at_train_and_test() -> None:
    import torch

    from vrbench.backbones import BACKBONES
    from vrbench.methods.base import normalize
    from vrbench.methods.baselines import build_finetune

    jobs = [job for job in load_suite(SUITES / "cvpr23.yaml").jobs if job.config["input"] == "finetune"]
    abide = [job for job in jobs if job.config["dataset"] == "abide"]
    assert len(abide) == 9 and all(not j.config["train_augment"] and not j.config["test_augment"] for j in abide)
    backbone = BACKBONES.get("resnet18")
    module = build_finetune(abide[0].config, backbone)
    assert module.load_size("train") == module.load_size("test") == 224
    torch.manual_seed(0)
    x = torch.rand(4, 3, 224, 224)  # asymmetric: a flip or a shifted crop would show
    expected = normalize(x, module.mean, module.std)
    assert torch.equal(module.preprocess(x, train=True), expected)
    assert torch.equal(module.preprocess(x, train=False), expected)
    # every other dataset keeps full_finetune.py's Resize 256 -> RandomCrop 224 -> flip (at test too)
    dtd = next(j for j in jobs if j.config["dataset"] == "dtd").config
    other = build_finetune(dtd, backbone)
    assert other.load_size("train") == 256 and "train_augment" not in dtd  # a late parameter at its default
    y = torch.rand(4, 3, 256, 256)
    assert other.preprocess(y, train=True).shape[-1] == 224


# ------------------------------------------------------------------ 3. CoOp for cross-dataset and DG: CoCoOp's cfg
def test_coop_transfer_jobs_learn_four_context_tokens_from_a_photo_of_a_for_50_epochs() -> None:
    import torch

    from vrbench.clip.encoders import PromptedCLIP
    from vrbench.clip.methods import CoOp
    from vrbench.clip.models import get_clip_tokenizer, load_clip

    jobs = load_suite(SUITES / "iccv23.yaml").jobs
    train = [job for job in jobs if job.config["method"] == "coop" and job.config["protocol"] == "cross_dataset"
             and job.config["stage"] == "train"]
    assert len(train) == 3 and {(j.config["ctx_init"], j.config["epochs"]) for j in train} == {("a photo of a", 50)}
    dg = [job for job in jobs if job.config["method"] == "coop" and job.config["protocol"] == "domain_generalization"]
    assert len(dg) == 12 and {job.config["train_run"] for job in dg} == {job.run_id for job in train}  # shared
    clip = PromptedCLIP(load_clip("clip_tiny"))
    tokenizer = get_clip_tokenizer("clip_tiny")
    params = {name: train[0].config[name] for name in ("n_ctx", "csc", "ctx_init", "class_token_position")}
    coop = CoOp(clip, tokenizer, ["cat", "dog"], params, "imagenet")
    words = clip.token_embedding(tokenizer(["a photo of a"]))[0, 1:5]
    assert coop.ctx.shape[0] == 4 and torch.equal(coop.ctx.detach(), words)


# ------------------------------------------------------------------ 4. VR on CLIP: CLIP's own preprocess everywhere
CLIP_REVISED = ("cifar10", "cifar100", "svhn", "gtsrb")


def test_clip_jobs_on_cifar_svhn_gtsrb_carry_the_data_revision_and_no_other_job_does() -> None:
    for name in ("cvpr23-clip.yaml", "neurips24.yaml", "cvpr23.yaml", "icml24.yaml"):
        for job in load_suite(SUITES / name).jobs:
            c = job.config
            revised = c["backbone"].startswith("clip_") and c["dataset"] in CLIP_REVISED
            assert c["versions"].get("data") == (2 if revised else None), (name, job.label())
    clip = [job for job in load_suite(SUITES / "cvpr23-clip.yaml").jobs if job.config["dataset"] in CLIP_REVISED]
    assert len(clip) == 2 * 4


def _clip_transform(image, size: int):
    """CLIP's preprocess, through torchvision itself: Resize(size, BICUBIC) on the shorter side, CenterCrop."""
    import numpy as np
    from torchvision import transforms

    resize = transforms.Compose([transforms.Resize(size, interpolation=transforms.InterpolationMode.BICUBIC),
                                 transforms.CenterCrop(size)])
    return np.asarray(resize(image.convert("RGB"))).transpose(2, 0, 1)


@pytest.mark.parametrize("name", CLIP_REVISED)
def test_clip_backbones_load_cifar_svhn_gtsrb_through_clips_own_transform(
        name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import numpy as np
    import torch
    from PIL import Image

    from vrbench import testing
    from vrbench.backbones import BACKBONES
    from vrbench.datasets import DATASETS

    monkeypatch.setenv("VRBENCH_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("VRBENCH_VERIFY_CHECKSUMS", "0")
    if name == "gtsrb":
        testing.write_gtsrb(tmp_path, train_per_class=1, n_test=6)  # 36 x 31 px: not square
    else:
        getattr(testing, f"write_{name}")(tmp_path, n_train=20, n_test=10)
    resize = BACKBONES.get("clip_vit_b32").resize
    clip = DATASETS.get(name).load("test", 224, tmp_path, resize=resize)
    square = DATASETS.get(name).load("test", 224, tmp_path)
    if name == "gtsrb":
        from vrbench.datasets.torchvision_sets import gtsrb_file_list

        files = gtsrb_file_list("test", tmp_path)
        originals = [Image.open(files.absolute(i)) for i in range(len(files))]
        assert len(list((tmp_path / "cache").glob("gtsrb-test*.npy"))) == 2  # one cache entry per resize mode
    else:
        native = DATASETS.get(name).load("test", 32, tmp_path)
        originals = [Image.fromarray(image.permute(1, 2, 0).numpy()) for image in native.images]
    expected = torch.from_numpy(np.stack([_clip_transform(image, 224) for image in originals]))
    assert torch.equal(clip.images, expected)
    assert not torch.equal(square.images, expected)  # the VR papers' bilinear square resize differs


# ------------------------------------------------------------------ 5. prompt learners test as they train
AMP_SUITE = """
name: amp
protocol: base2novel
grid: {method: [ivlp, zeroshot], backbone: clip_tiny, dataset: digits, shots: 1, seed: 1}
defaults: {epochs: 1, subset: {test: 10}, test_batch_size: 10, depth_text: 2, depth_vision: 2}
"""


def test_prompt_learners_test_under_the_training_autocast_and_cache_what_their_key_says(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import torch
    from torch import nn

    from vrbench.clip.encoders import encode_templates
    from vrbench.clip.feature_cache import FeatureCache
    from vrbench.clip.models import get_clip_tokenizer
    from vrbench.clip.templates import classname_for_prompt, custom_template
    from vrbench.engine import loop
    from vrbench.engine.clip_job import ClipPromptJob
    from vrbench.engine.device import DevicePlan
    from vrbench.methods.clip_catalog import CLIP_METHODS
    from vrbench.store.rundir import run_dir, write_config

    assert {m.name: m.version for m in CLIP_METHODS} == {  # the change re-runs every job it touches
        "zeroshot": 2, "zeroshot_ensemble": 2, "linear_probe_clip": 1, "coop": 2, "cocoop": 2, "ivlp": 2,
        "maple": 2, "promptsrc": 2, "proda": 1}  # proda: new in issue 24
    # CPU autocast (bfloat16) stands in for the GPU's fp16 autocast: the same code paths, observable on a CPU
    monkeypatch.setattr(loop, "select_device", lambda *args, **kwargs: DevicePlan(torch.device("cpu"), "bf16-amp", 1))
    results = tmp_path / "results"
    for spec in [job for job in parse_suite(AMP_SUITE).jobs if job.config["stage"] == "train"]:
        directory = run_dir(results, spec.run_id)
        write_config(directory, spec.run_id, spec.method, spec.config, {"device": "cpu"})
        job = ClipPromptJob(directory)
        job.build()
        seen: dict[str, list[bool]] = {"train": [], "test": []}
        phase = ["train"]

        def record(*_, seen=seen, phase=phase) -> None:
            seen[phase[0]].append(torch.is_autocast_enabled("cpu"))

        for module in job.clip.modules():
            if isinstance(module, nn.Linear):
                module.register_forward_hook(record)
        if job.method.trains:
            job.train_epoch(0)
            assert seen["train"] and all(seen["train"])
        phase[0] = "test"
        job.evaluate(job.splits.test)
        assert seen["test"] and all(seen["test"]), spec.method  # IVLP, MaPLe, PromptSRC tested in fp32 before
        if spec.config["method"] == "zeroshot":  # its frozen text features: computed under the autocast too
            tokenizer = get_clip_tokenizer("clip_tiny")
            names = [classname_for_prompt(name) for name in job.splits.test.classes]
            templates = [custom_template("digits")]
            cache = FeatureCache(results, "clip_tiny|bf16-amp")
            hits = cache.hits
            stored = cache.text("", templates, names, lambda: pytest.fail("the entry should be cached"))
            assert cache.hits == hits + 1
            with torch.no_grad():
                fp32 = encode_templates(job.clip.encode_text, tokenizer, job.clip.device, templates, names)
                with torch.autocast("cpu", dtype=torch.bfloat16):
                    amp = encode_templates(job.clip.encode_text, tokenizer, job.clip.device, templates, names)
            assert torch.equal(stored, amp.float()) and not torch.equal(stored, fp32)


# ------------------------------------------------------------------ docs/deviations.md: the variants it offers run
def test_the_documented_variants_expand_to_the_settings_they_name() -> None:
    text = (SUITES.parent / "docs" / "deviations.md").read_text(encoding="utf-8")
    block = re.search(r"```yaml\n(.*?)```", text, re.S).group(1).splitlines()
    resolved = {}
    for name, grid in (("icml24.yaml", block[1:3]), ("iccv23.yaml", block[4:6])):
        suite = (SUITES / name).read_text(encoding="utf-8")
        cut = suite.index("\ndefaults:" if name == "icml24.yaml" else "\noverrides:")
        jobs = parse_suite(suite[:cut] + "\n" + "\n".join(grid) + suite[cut:], name).jobs
        resolved.update({job.display_name: job.config for job in jobs
                         if job.display_name and job.config.get("stage", "train") == "train"})
    smm, coop = resolved["smm official cfg"], resolved["coop m16"]
    assert (smm["backbone"], smm["lr"], smm["gamma"], smm["mask_lr"], smm["mask_gamma"]) == (
        "vit_b32", 0.01, 0.1, 0.001, 1.0)  # SMM cfg.py on ViT, despite the suite's Table 2 override
    assert (coop["ctx_init"], coop["n_ctx"], coop["epochs"]) == ("", 16, 50)
