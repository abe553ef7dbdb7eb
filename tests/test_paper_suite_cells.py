"""The jobs added for published cells that had none (issue 10): SMM Table 8, Figure 4, Tables 13 and 14, and
BLM's fast editions and learned-FC baseline. Each test expands the real suite file and checks the resolved
settings a job trains with, and which published value the report puts next to it."""

from __future__ import annotations

from pathlib import Path

from vrbench.backbones import BACKBONES
from vrbench.methods.smm import build_smm
from vrbench.report.references import match
from vrbench.suite import load_suite

SUITES = Path(__file__).resolve().parent.parent / "suites"
TABLE1 = {"cifar10", "cifar100", "svhn", "gtsrb", "flowers102", "dtd", "ucf101", "food101", "sun397", "eurosat",
          "oxfordpets"}
ICML24 = load_suite(SUITES / "icml24.yaml")
ROWS = ICML24.reference["rows"]


def jobs(suite, method: str | None = None, **config) -> list:
    """The suite's jobs with this report row name (method or label) and these resolved config values."""
    return [job for job in suite.jobs if (method is None or job.method == method)
            and all(job.config.get(key) == value for key, value in config.items())]


def published(job):
    c = job.config
    return match(job.method, c["backbone"], c["dataset"], paper="smm_icml24", rows=ROWS)


def test_table8_trains_the_pattern_at_0_01_with_decay_and_the_mask_network_as_smm_does_for_vit() -> None:
    table8 = jobs(ICML24, method="smm dataset-specific lr")
    assert {(j.config["backbone"], j.config["dataset"], j.config["seed"]) for j in table8} == {
        ("vit_b32", "ucf101", seed) for seed in (0, 1, 2)}
    config = table8[0].config
    groups = {g.name: (g.lr, g.gamma) for g in build_smm(config, BACKBONES.get("vit_b32")).optimizer_groups(config)}
    assert groups == {"pattern": (0.01, 0.1), "mask_net": (0.001, 1.0)}
    assert (config["epochs"], config["milestones"]) == (200, [0.5, 0.72])
    assert published(table8[0]).value == 49.9 and published(table8[0]).table.startswith("Table 8")
    unified = jobs(ICML24, method="smm+ilm", backbone="vit_b32", dataset="ucf101")[0]
    assert published(unified).value == 42.6 and unified.run_id != table8[0].run_id


def test_figure4_sweeps_the_patch_size_on_resnet18_and_has_no_published_values() -> None:
    sweep = {}
    for size in (1, 2, 4, 16):
        found = jobs(ICML24, method=f"smm patch {size}")
        sweep[size] = {(j.config["dataset"], j.config["seed"]) for j in found}
        assert {(j.config["backbone"], j.config["patch_size"]) for j in found} == {("resnet18", size)}
        assert all(published(j) is None for j in found)  # the figure prints no values: ours stand alone
    figure4 = {(d, s) for d in ("cifar100", "svhn", "flowers102", "eurosat") for s in (0, 1, 2)}
    assert all(cells == figure4 for cells in sweep.values())
    main = jobs(ICML24, method="smm+ilm", backbone="resnet18")  # patch 8: the main grid's jobs
    assert {j.config["patch_size"] for j in main} == {8} and figure4 <= {(j.config["dataset"], j.config["seed"])
                                                                          for j in main}


def test_table13_runs_smm_and_lora_rank_6_on_vit_l16_for_10_epochs_with_the_fc_head() -> None:
    table13 = jobs(ICML24, backbone="vit_l16")
    assert {j.method for j in table13} == {"smm+fc_finetune", "lora+fc_finetune"}
    assert {j.config["dataset"] for j in table13} == TABLE1 and len(table13) == 2 * 11 * 3
    assert {(j.config["epochs"], j.config["lr"], j.config["head_lr"]) for j in table13} == {(10, 0.01, None)}
    lora = jobs(ICML24, method="lora+fc_finetune")
    assert {(j.config["lora_rank"], j.config["lora_targets"], j.config["crop_margin"]) for j in lora} == {
        (6, "proj_q,proj_v", 32)}
    assert BACKBONES.get("vit_l16").input_size == 384
    values = {(j.method, j.config["dataset"]): published(j).value for j in table13 if j.config["seed"] == 0
              and published(j) is not None}
    assert values == {("smm+fc_finetune", "cifar10"): 97.4, ("smm+fc_finetune", "cifar100"): 87.3,
                      ("smm+fc_finetune", "svhn"): 91.0, ("smm+fc_finetune", "gtsrb"): 84.2,
                      ("lora+fc_finetune", "cifar10"): 95.9, ("lora+fc_finetune", "cifar100"): 83.6,
                      ("lora+fc_finetune", "svhn"): 65.3, ("lora+fc_finetune", "gtsrb"): 66.6}


def test_table14_fine_tunes_resnet50s_fc_layer_without_and_with_smm() -> None:
    fc = jobs(ICML24, method="resize+linear_probe")
    with_smm = jobs(ICML24, method="smm+fc_finetune", backbone="resnet50")
    assert {j.config["backbone"] for j in fc} == {"resnet50"}
    assert {j.config["dataset"] for j in fc} == {j.config["dataset"] for j in with_smm} == TABLE1
    # Finetuning-FC is ILM-VP's linear probe, reprinted: ILM-VP's job (lr 0.1, batch 128 / 64), shared with cvpr23.
    assert {(j.config["lr"], j.config["batch_size"]) for j in fc
            if j.config["dataset"] not in ("dtd", "oxfordpets")} == {(0.1, 128)}
    assert {j.config["batch_size"] for j in fc if j.config["dataset"] in ("dtd", "oxfordpets")} == {64}
    cvpr23 = {j.run_id for j in load_suite(SUITES / "cvpr23.yaml").jobs}
    assert all(j.run_id in cvpr23 for j in fc)
    # +SMM: SMM's ResNet setting (pattern and mask network 0.01, x0.1 decay) and a new head at the LP's lr 0.1.
    assert {(j.config["lr"], j.config["head_lr"], j.config["epochs"], j.config["patch_size"]) for j in with_smm} == {
        (0.01, 0.1, 200, 8)}
    config = with_smm[0].config
    groups = {g.name: (g.lr, g.gamma) for g in build_smm(config, BACKBONES.get("resnet50")).optimizer_groups(config)}
    assert groups == {"pattern": (0.01, 0.1), "mask_net": (0.01, 0.1)}
    cifar10 = {j.method: published(j).value for j in fc + with_smm if j.config["dataset"] == "cifar10"}
    assert cifar10 == {"resize+linear_probe": 90.1, "smm+fc_finetune": 91.2}


def test_neurips24_runs_blms_fast_editions_and_learned_fc_as_its_code_does() -> None:
    suite = load_suite(SUITES / "neurips24.yaml")
    fast = [j for j in suite.jobs if j.config.get("mapping_mode") == "fast"]
    assert {j.method for j in fast} == {f"{i}+{m} fast" for i in ("padding", "full") for m in ("ilm", "blm", "blmpp")}
    assert len(fast) == 6 * 12 * 3
    assert {(j.config["lr"], j.config["epochs"], tuple(j.config["milestones"]), j.config["gamma"]) for j in fast} == {
        (0.01, 200, (0.5, 0.72), 0.1)}
    assert {j.config["crop_margin"] for j in fast if j.config["input"] == "full"} == {4}
    fc = [j for j in suite.jobs if j.config["mapping"] == "fc"]
    assert {j.method for j in fc} == {"padding+fc", "full+fc"} and len(fc) == 2 * 12 * 3
    assert {(j.config["lr"], j.config["ft_lr"], j.config["fc_restrict"]) for j in fc} == {(0.01, 0.1, "none")}
    assert len(suite.jobs) == 684
