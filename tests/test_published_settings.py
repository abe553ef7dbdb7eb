"""Issue 24, "every published cell, set as published": rows reprinted from another paper run as that paper ran
them, both rows of SMM's Table 13 keep the ViT in eval mode, PromptSRC's component ablation has a job per row,
and a job's id changes exactly where its setting changed."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.test_paper_fidelity import changed_cells
from vrbench.methods import INPUTS
from vrbench.suite import load_suite, parse_suite

SUITES = Path(__file__).resolve().parent.parent / "suites"




# ------------------------------------------------------------------------ SMM's Pad rows are ILM-VP's jobs
ILMVP_BATCH = {"dtd": 64, "oxfordpets": 64}  # ILM-VP data/prepare_data.py lines 105-131; 128 everywhere else
PAD_OVERRIDES = """  - match: {input: padding, backbone: [resnet18, resnet50]}
    set: {batch_size: 128}
  - match: {input: padding, backbone: [resnet18, resnet50], dataset: [dtd, oxfordpets]}
    set: {batch_size: 64}
"""


def test_smms_resnet_pad_jobs_run_at_ilm_vps_batch_sizes_and_are_cvpr23s_jobs() -> None:
    icml24 = load_suite(SUITES / "icml24.yaml")
    cvpr23 = {(j.method, j.config["backbone"], j.config["dataset"], j.config["seed"]): j
              for j in load_suite(SUITES / "cvpr23.yaml").jobs}
    pad = [j for j in icml24.jobs if j.method == "padding+ilm" and j.config["backbone"] != "vit_b32"]
    assert len(pad) == 2 * 12 * 3
    for job in pad:
        c = job.config
        assert c["batch_size"] == ILMVP_BATCH.get(c["dataset"], 128), job.label()
        twin = cvpr23[(job.method, c["backbone"], c["dataset"], c["seed"])]
        assert job.run_id == twin.run_id and job.config == twin.config  # trained once for both suites
    vit_pad = [j for j in icml24.jobs if j.method == "padding+ilm" and j.config["backbone"] == "vit_b32"]
    assert {j.config["batch_size"] for j in vit_pad if j.config["dataset"] not in ILMVP_BATCH} == {256}  # SMM's own


def test_the_pad_batch_sizes_change_exactly_the_60_resnet_pad_jobs_off_dtd_and_oxfordpets() -> None:
    changed = changed_cells("icml24.yaml", PAD_OVERRIDES, "", subset=True)
    assert {(key[0], key[3]) for key in changed} == {("padding+ilm", "resnet18"), ("padding+ilm", "resnet50")}
    assert {key[4] for key in changed}.isdisjoint(ILMVP_BATCH)  # DTD and OxfordPets were already at 64
    assert len(changed) == 2 * 10 * 3


# ------------------------------------------------------------------------ SMM Table 13: LoRA and SMM rows
def test_table13_rows_both_keep_the_vit_in_eval_mode_and_lora_is_version_2() -> None:
    from vrbench.methods.lora import LoRAInput
    from vrbench.methods.smm import SMMVR

    assert LoRAInput.trains_backbone and not LoRAInput.backbone_train_mode
    assert not SMMVR.trains_backbone  # the engine never switches a frozen backbone to train mode
    jobs = [j for j in load_suite(SUITES / "icml24.yaml").jobs if j.config["backbone"] == "vit_l16"]
    assert {j.method for j in jobs} == {"smm+fc_finetune", "lora+fc_finetune"}
    assert {j.config["versions"]["input"] for j in jobs if j.method == "lora+fc_finetune"} == {2}
    assert INPUTS.get("lora").version == 2 and INPUTS.get("smm").version == 1


@pytest.mark.parametrize("method", ["lora", "smm"])
def test_a_table13_job_trains_with_the_vits_dropout_off(tmp_path: Path, method: str) -> None:
    """A real job on the tiny ViT (dropout 0.1, like ViT-L/16): in a training step no dropout module is active,
    while the adapters (LoRA) or the pattern (SMM) and the head are what train."""
    import torch

    from vrbench.engine.loop import Job
    from vrbench.store.rundir import run_dir, write_config

    suite = parse_suite(f"""
name: t
grid: {{input: {method}, mapping: fc_finetune, backbone: vit_tiny, dataset: digits, seed: 0}}
defaults: {{epochs: 1, batch_size: 32, subset: {{train: 32, test: 32}}, milestones: []}}
""")
    (spec,) = suite.jobs
    directory = run_dir(tmp_path / "results", spec.run_id)
    write_config(directory, spec.run_id, spec.method, spec.config, {"device": "cpu", "threads": 1})
    job = Job(directory)
    job.build()
    dropouts = [m for m in job.model.modules() if isinstance(m, torch.nn.Dropout) and m.p > 0]
    assert dropouts, "the tiny ViT has dropout 0.1, as ViT-L/16"
    job.set_mode(True)
    assert not any(m.training for m in dropouts)
    assert job.mapping.module.training  # the new head is in train mode (it has no dropout of its own)
    x = torch.rand(4, 3, 32, 32)
    torch.manual_seed(0)
    first = job.model(job.input(job.input.preprocess(x, train=False)))
    torch.manual_seed(1)
    second = job.model(job.input(job.input.preprocess(x, train=False)))
    assert torch.equal(first, second)  # no random mask: the same input gives the same features


# ------------------------------------------------------------------------ PromptSRC's component ablation
ABLATION = "Suppl. per-dataset component ablation (base-to-novel)"
# Ids of the full PromptSRC (ImageNet, seed 1: base training run and its novel evaluation) before the switches
# existed (commit 978fb08): the switches' defaults keep them.
PROMPTSRC_IMAGENET_SEED1 = {"train": "2c1e77fd0ede4ac6", "eval": "243601921ff514f0"}


def iccv23_text_without(*labels: str) -> str:
    """suites/iccv23.yaml with the grid entries that set one of `labels` (or run ProDA) cut out."""
    text = (SUITES / "iccv23.yaml").read_text(encoding="utf-8")
    for marker in labels:
        end = text.index("\n", text.index(f"label: {marker}}}")) + 1
        start = text.rindex("  - method: [promptsrc]\n", 0, end)
        text = text[:start] + text[end:]
    start = text.index("  - method: [proda]\n")
    end = text.index("seed: [1, 2, 3]\n", start) + len("seed: [1, 2, 3]\n")
    return text[:start] + text[end:]


def test_ablation_rows_switch_off_gpa_and_textual_diversity_and_the_full_method_keeps_its_ids() -> None:
    suite = load_suite(SUITES / "iccv23.yaml")
    by_label: dict[str, list] = {}
    for job in suite.jobs:
        if job.config["method"] == "promptsrc" and job.config["protocol"] == "base2novel":
            by_label.setdefault(job.method, []).append(job)
    assert set(by_label) == {"promptsrc", "promptsrc IVLP+L_SCL", "promptsrc IVLP+L_SCL+GPA"}
    switches = {label: {(j.config.get("gpa"), j.config.get("textual_diversity"))
                        for j in jobs if j.config["stage"] == "train"} for label, jobs in by_label.items()}
    # the full method's configs hold neither switch, so they hash as before the switches existed
    assert switches == {"promptsrc": {(None, None)}, "promptsrc IVLP+L_SCL": {(False, False)},
                        "promptsrc IVLP+L_SCL+GPA": {(None, False)}}
    for label, jobs in by_label.items():
        assert len(jobs) == 11 * 3 * 2, label  # 11 datasets x 3 seeds, a base training run and a novel evaluation
        assert {j.config["shots"] for j in jobs} == {16}
    full = {j.config["stage"]: j.run_id for j in by_label["promptsrc"]
            if j.config["dataset"] == "imagenet" and j.config["seed"] == 1}
    assert full == PROMPTSRC_IMAGENET_SEED1
    # The rows differ from the full method only in their switches: same recipe otherwise.
    recipe = {k: v for k, v in by_label["promptsrc"][0].config.items() if k not in ("versions",)}
    row2 = next(j for j in by_label["promptsrc IVLP+L_SCL"] if j.config["stage"] == "train"
                and j.config["dataset"] == recipe["dataset"] and j.config["seed"] == recipe["seed"])
    assert {k: v for k, v in row2.config.items() if k not in ("gpa", "textual_diversity", "versions")} == recipe


def test_adding_the_ablation_and_proda_jobs_changes_no_existing_iccv23_id() -> None:
    before = parse_suite(iccv23_text_without("promptsrc IVLP+L_SCL", "promptsrc IVLP+L_SCL+GPA"), "iccv23.yaml")
    now = load_suite(SUITES / "iccv23.yaml")
    old_ids, new_ids = {j.run_id for j in before.jobs}, {j.run_id for j in now.jobs}
    assert len(old_ids) == 1362 and old_ids <= new_ids
    added = [j for j in now.jobs if j.run_id not in old_ids]
    assert len(added) == 3 * 11 * 3 * 2  # two ablation rows and ProDA: train + novel evaluation per cell
    assert {j.method for j in added} == {"promptsrc IVLP+L_SCL", "promptsrc IVLP+L_SCL+GPA", "proda"}


def test_the_ablation_rows_and_proda_fill_their_published_cells() -> None:
    from vrbench.report.coverage import coverage

    tables = {t.table: t for t in coverage([load_suite(SUITES / "iccv23.yaml")], ["promptsrc_iccv23"])}
    ablation = tables[ABLATION]
    assert len(ablation.covered) == len(ablation.cells) == 144
    covered = {ref.method for ref in ablation.covered}
    assert {"IVLP+L_SCL", "IVLP+L_SCL+GPA"} <= covered
    table1 = tables["Table 1 base-to-novel (16-shot base classes)"]
    assert len([ref for ref in table1.covered if ref.method == "ProDA"]) == 36 and not table1.uncovered


def test_proda_jobs_run_the_base_to_novel_protocol_at_their_recipe() -> None:
    jobs = [j for j in load_suite(SUITES / "iccv23.yaml").jobs if j.config["method"] == "proda"]
    train = [j for j in jobs if j.config["stage"] == "train"]
    evals = [j for j in jobs if j.config["stage"] == "eval"]
    assert len(train) == len(evals) == 11 * 3
    for job in train:
        c = job.config
        assert (c["backbone"], c["shots"], c["subsample"]) == ("clip_vit_b16", 16, "base")
        assert (c["n_prompts"], c["n_ctx"], c["prompt_batch"], c["epochs"], c["lr"], c["batch_size"]) == (
            32, 16, 8, 200, 0.002, 32)
    assert {j.config["train_run"] for j in evals} == {j.run_id for j in train}
    assert {j.config["subsample"] for j in evals} == {"new"}
