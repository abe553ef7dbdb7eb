"""The paper suites expand to the papers' grids and line every cell up with its published row."""

from __future__ import annotations

from pathlib import Path

from vrbench.report.references import match
from vrbench.suite import load_suite, parse_suite

SUITES = Path(__file__).resolve().parent.parent / "suites"


def cells(suite) -> set[tuple[str, str, str]]:
    return {(job.method, job.config["backbone"], job.config["dataset"]) for job in suite.jobs}


def test_cvpr23_is_ilm_vps_main_table_and_every_cell_has_its_published_value() -> None:
    suite = load_suite(SUITES / "cvpr23.yaml")
    assert len(suite.jobs) == 507  # (ILM, FLM, LP, FF) x 3 backbones + RLM x ResNet-18 = 13 rows x 13 datasets x 3
    assert {job.config["batch_size"] for job in suite.jobs if job.config["dataset"] in ("abide", "dtd",
                                                                                      "oxfordpets")} == {64}
    assert {job.config["batch_size"] for job in suite.jobs if job.config["dataset"] == "cifar10"} == {128}
    lr = {job.method: job.config["lr"] for job in suite.jobs}
    assert lr == {"padding+ilm": 0.01, "padding+flm": 0.01, "padding+rlm": 0.01, "resize+linear_probe": 0.1,
                  "finetune+imagenet_head": 1e-4}
    matched = [match(*cell, paper=suite.reference["paper"], rows=suite.reference["rows"]) for cell in cells(suite)]
    assert len(matched) == 169 and all(ref is not None for ref in matched)


def test_icml24_covers_smms_tables_with_labelled_ablations() -> None:
    suite = load_suite(SUITES / "icml24.yaml")
    methods = {job.method for job in suite.jobs}
    assert {"padding+ilm", "narrow+ilm", "medium+ilm", "full+ilm", "smm+ilm", "smm only f_mask",
            "smm single-channel mask", "smm+rlm", "smm+flm", "full+rlm", "full+flm",  # Tables 1-3, 10, 12
            "smm dataset-specific lr", "smm patch 1", "smm patch 2", "smm patch 4", "smm patch 16",  # Tab. 8, Fig. 4
            "smm+fc_finetune", "lora+fc_finetune", "resize+linear_probe"} == methods  # Tables 13 and 14
    single = [job for job in suite.jobs if job.method == "smm single-channel mask"]
    assert single and all(job.config["mask_channels"] == 1 for job in single)
    assert all(job.config["lr"] == 0.001 for job in suite.jobs
               if job.config["backbone"] == "vit_b32" and job.method != "smm dataset-specific lr")  # Table 8: 0.01
    matched = {cell: match(*cell, paper="smm_icml24", rows=suite.reference["rows"]) for cell in cells(suite)}
    found = {cell for cell, ref in matched.items() if ref is not None}
    assert ("smm single-channel mask", "resnet18", "cifar10") in found
    assert ("padding+ilm", "vit_b32", "cifar10") in found and ("smm+ilm", "resnet50", "stanfordcars") in found
    assert len(found) >= 15 * 12 + 2 * 11 + 4 * 11  # Tables 1/2/12, Table 3's two ablations, Table 10


def test_neurips24_is_blms_vision_grid_and_its_clip_grid() -> None:
    suite = load_suite(SUITES / "neurips24.yaml")
    vision = [job for job in suite.jobs if job.config["backbone"] == "resnet18"]
    clip = [job for job in suite.jobs if job.config["backbone"] == "clip_vit_b32"]
    assert len(vision) == (5 + 3 + 1) * 2 * 12 * 3 and len(clip) == 3 * 12  # + fast ILM/BLM/BLM++, + learned FC
    assert {job.config["crop_margin"] for job in vision if job.config["input"] == "full"} == {4}
    # BLM on CLIP (§1.10): frame 30, no augmentation, SGD lr 40 with a per-iteration cosine, 81 templates
    assert {(c["crop_margin"], c["frame"], c["lr"], c["optimizer"], c["lr_schedule"], c["text_templates"], c["epochs"])
            for c in (job.config for job in clip)} == {(0, 30, 40.0, "sgd", "cosine_iter", "ilm81", 200)}
    assert {job.config["batch_size"] for job in clip if job.config["dataset"] in ("dtd", "oxfordpets")} == {64}
    assert {job.config["batch_size"] for job in clip if job.config["dataset"] == "cifar10"} == {256}


def test_a_grid_of_its_own_can_set_hyperparameters_and_a_label() -> None:
    suite = parse_suite("""
name: x
grid:
  - {input: smm, mapping: ilm, backbone: resnet18, dataset: digits, seed: 0}
  - {input: smm, mapping: ilm, backbone: resnet18, dataset: digits, seed: 0, set: {mask_channels: 1, label: one}}
""")
    first, second = suite.jobs
    assert first.config["mask_channels"] == 3 and second.config["mask_channels"] == 1
    assert first.method == "smm+ilm" and second.method == "one" and first.run_id != second.run_id


def test_ls_references_lists_the_packaged_tables() -> None:
    from tests.conftest import run_cli

    listing = run_cli("ls", "references")
    assert listing.returncode == 0, listing.stderr
    for stem, rows in (("ilm_vp_cvpr23", "169"), ("smm_icml24", "352"), ("promptsrc_iccv23", "738")):
        line = next(line for line in listing.stdout.splitlines() if stem in line)
        assert rows in line
