"""Tests for the prompt-learning report tables: run directories written by hand, ingested, rendered, read back."""

from __future__ import annotations

import csv
import hashlib
import json
import math
import re
import shutil
from importlib import resources
from pathlib import Path
from typing import Any

import duckdb
import pytest

from vrbench.report import build_report, load_model
from vrbench.report.prompt import harmonic_mean
from vrbench.store import ingest, query
from vrbench.store.rundir import CONFIG, ERROR, RESULT, atomic_write_json, write_config

PSRC = "promptsrc_iccv23"
B2N = "Table 1 base-to-novel (16-shot base classes)"
FEWSHOT = "Suppl. few-shot per-dataset table"
XD = "Table: cross-dataset (train ImageNet 16-shot all classes, zero-shot transfer)"
DG = "Table: domain generalization (source ImageNet)"
ELEVEN = ("imagenet", "caltech101", "oxfordpets", "stanfordcars", "flowers102", "food101", "fgvc_aircraft", "sun397",
          "dtd", "eurosat", "ucf101")
TARGETS = ELEVEN[1:]
DG_TARGETS = ("imagenetv2", "imagenet_sketch", "imagenet_a", "imagenet_r")
LABELS = {"coop": "CoOp", "cocoop": "CoCoOp", "ivlp": "IVLP", "maple": "MaPLe", "promptsrc": "PromptSRC",
          "zeroshot": "CLIP (zero-shot)", "linear_probe_clip": "Linear probe CLIP"}
PAPER_DATASET = {"oxfordpets": "oxford_pets", "stanfordcars": "stanford_cars", "imagenetv2": "imagenet_v2"}


def run_id_of(config: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:16]


def write_prompt_run(root: Path, *, protocol: str, method: str, dataset: str, seed: int = 1, acc: float | None = 50.0,
                     backbone: str = "clip_vit_b16", shots: int | None = 16, subsample: str = "all",
                     train_run: str | None = None, source_dataset: str | None = None, label: str | None = None,
                     error: str | None = None) -> str:
    """A finished prompt-learning run directory, written with the store's own helpers; returns its run id."""
    stage = "eval" if train_run else "train"
    config = {"protocol": protocol, "method": method, "backbone": backbone, "dataset": dataset, "seed": seed,
              "shots": shots, "subsample": subsample, "stage": stage, "train_run": train_run,
              "source_dataset": source_dataset, "epochs": 0 if stage == "eval" else 20, "lr": 0.0025,
              "batch_size": 4, "versions": {"engine": 1}}
    run_id = run_id_of(config)
    directory = root / "runs" / run_id
    write_config(directory, run_id, label or method, config, {"device": "cpu"})
    if acc is not None:
        atomic_write_json(directory / RESULT, {
            "run_id": run_id, "status": "done", "epochs": config["epochs"], "final_acc": acc, "best_test_acc": None,
            "best_test_epoch": None, "best_val_acc": None, "best_val_epoch": None, "val_size": 0,
            "trainable_params": 46080, "train_seconds": 1.0, "finished_at": "2026-11-22T08:00:00+00:00"})
    if error is not None:
        atomic_write_json(directory / ERROR, {
            "run_id": run_id, "error_type": "RuntimeError", "message": error, "traceback": "...", "exit_code": 1,
            "failed_at": "2026-11-22T08:00:00+00:00"})
    return run_id


def write_vr_run(root: Path, method: str, dataset: str, seed: int, accs: tuple[float, float, float | None] | None,
                 error: str | None = None) -> None:
    """A finished VR run directory (input+mapping config, the three selection rules' accuracies)."""
    inp, _, mapping = method.partition("+")
    config = {"protocol": "vr", "input": inp, "mapping": mapping, "backbone": "resnet18", "dataset": dataset,
              "seed": seed, "epochs": 2, "lr": 0.01, "val_fraction": 0.1, "versions": {"engine": 1}}
    run_id = run_id_of(config)
    directory = root / "runs" / run_id
    write_config(directory, run_id, method, config, {})
    if accs is not None:
        final, best_test, best_val = accs
        atomic_write_json(directory / RESULT, {
            "run_id": run_id, "status": "done", "epochs": 2, "final_acc": final, "best_test_acc": best_test,
            "best_test_epoch": 1, "best_val_acc": best_val, "best_val_epoch": 1, "val_size": 10,
            "trainable_params": 5, "train_seconds": 1.0, "finished_at": "2026-11-22T08:00:00+00:00"})
    if error is not None:
        atomic_write_json(directory / ERROR, {"run_id": run_id, "error_type": "RuntimeError", "message": error,
                                              "traceback": "...", "exit_code": 1,
                                              "failed_at": "2026-11-22T08:00:00+00:00"})


def b2n_pair(root: Path, method: str, dataset: str, seed: int, base: float, novel: float, **kw: Any) -> list[str]:
    """A base-class training run and the eval run testing its prompts on the novel classes."""
    train = write_prompt_run(root, protocol="base2novel", method=method, dataset=dataset, seed=seed, acc=base,
                             subsample="base", **kw)
    test = write_prompt_run(root, protocol="base2novel", method=method, dataset=dataset, seed=seed, acc=novel,
                            subsample="new", train_run=train, source_dataset=dataset, **kw)
    return [train, test]


def published(table: str, method: str, dataset: str, metric: str) -> float:
    """The value printed in the shipped CSV, read independently of vrbench.report.references."""
    text = (resources.files("vrbench.references") / f"{PSRC}.csv").read_text(encoding="utf-8")
    rows = [r for r in csv.DictReader(text.splitlines())
            if (r["table"], r["method"], r["backbone"], r["dataset"], r["metric"]) == (
                table, method, "clip_vit_b16", PAPER_DATASET.get(dataset, dataset), metric)]
    assert len(rows) == 1, (table, method, dataset, metric)
    return float(rows[0]["value"])


def sections(text: str) -> dict[str, str]:
    parts = re.split(r"^## (.+)$", text, flags=re.MULTILINE)
    return {parts[i].strip(): parts[i + 1] for i in range(1, len(parts), 2)}


def tables(section: str, bold: bool = False) -> list[list[list[str]]]:
    """Every GFM table of a section, each as rows of cells (split on unescaped pipes); without ``bold`` the
    significance marks (**...**, tested in tests/test_prompt_stats.py) are stripped, so the numbers read plain."""
    found: list[list[list[str]]] = []
    current: list[list[str]] = []
    for line in [*section.splitlines(), ""]:
        if line.startswith("|"):
            cells = [c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]]
            current.append(cells if bold else [c.replace("**", "") for c in cells])
        elif current:
            found.append(current)
            current = []
    return found


def row(rows: list[list[str]], *keys: str) -> dict[str, str]:
    header = rows[0]
    hits = [r for r in rows[2:] if tuple(r[:len(keys)]) == keys]
    assert len(hits) == 1, (keys, rows)
    return dict(zip(header, hits[0], strict=True))


def paper_part(value: float, ours: float, note: int) -> str:
    diff = f"{ours - value:+.1f}"
    return f"paper {value:.2f} [{note}], Δ {'+0.0' if diff == '-0.0' else diff}"


@pytest.fixture
def results(tmp_path: Path) -> Path:
    root = tmp_path / "results"
    # base-to-novel: PromptSRC on two datasets with two seeds; EuroSAT has only a base run
    b2n_pair(root, "promptsrc", "caltech101", 1, 80.0, 70.0)
    b2n_pair(root, "promptsrc", "caltech101", 2, 82.0, 74.0)
    b2n_pair(root, "promptsrc", "dtd", 1, 60.0, 50.0)
    write_prompt_run(root, protocol="base2novel", method="promptsrc", dataset="eurosat", acc=90.0, subsample="base")
    # the same method on a tiny random CLIP: never next to the paper's ViT-B/16 numbers
    b2n_pair(root, "promptsrc", "caltech101", 1, 40.0, 30.0, backbone="clip_tiny")
    # few-shot: CoOp, 1 and 16 shots
    for dataset, accs in (("caltech101", {1: (86.0, 88.0), 16: (95.0,)}), ("oxfordpets", {16: (91.0,)})):
        for shots, values in accs.items():
            for seed, acc in enumerate(values, start=1):
                write_prompt_run(root, protocol="fewshot", method="coop", dataset=dataset, shots=shots, seed=seed,
                                 acc=acc)
    # cross-dataset: MaPLe trained on ImageNet (two seeds), tested on two targets
    for seed, (source_acc, target_accs) in enumerate(((70.0, (93.0, 20.0)), (72.0, (95.0, 24.0))), start=1):
        train = write_prompt_run(root, protocol="cross_dataset", method="maple", dataset="imagenet", seed=seed,
                                 acc=source_acc)
        for target, acc in zip(("caltech101", "dtd"), target_accs, strict=True):
            write_prompt_run(root, protocol="cross_dataset", method="maple", dataset=target, seed=seed, acc=acc,
                             train_run=train, source_dataset="imagenet")
    # a failed eval run
    write_prompt_run(root, protocol="cross_dataset", method="maple", dataset="eurosat", acc=None,
                     train_run="0" * 16, source_dataset="imagenet", error="no prompts\nsecond line")
    return root


@pytest.fixture
def db(results: Path, tmp_path: Path) -> Path:
    path = tmp_path / "vrbench.duckdb"
    stats = ingest(results, path)
    assert stats.problems == [] and stats.failed == 1
    return path


def test_ingest_prompt_columns(results: Path, db: Path) -> None:
    rows = query(db, "SELECT method, input, mapping, protocol, shots, subsample, stage, train_run, source_dataset "
                     "FROM runs WHERE protocol = 'base2novel' AND dataset = 'dtd' ORDER BY subsample")
    (base, new) = rows
    assert base == ("promptsrc", None, None, "base2novel", 16, "base", "train", None, None)
    assert new[:7] == ("promptsrc", None, None, "base2novel", 16, "new", "eval") and new[8] == "dtd"
    assert (results / "runs" / new[7] / CONFIG).exists()  # train_run names the training run's directory
    # the cells view keeps base and novel apart
    cells = query(db, "SELECT subsample, n, mean FROM cells WHERE method = 'promptsrc' AND backbone = 'clip_vit_b16' "
                      "AND dataset = 'caltech101' AND rule = 'final' ORDER BY subsample")
    assert cells == [("base", 2, 81.0), ("new", 2, 72.0)]
    assert query(db, "SELECT count(*) FROM scores WHERE rule = 'best_test' AND protocol = 'base2novel'") == [(0,)]


def test_base2novel_hm_of_seed_means(db: Path, tmp_path: Path) -> None:
    parts = sections(build_report(db, tmp_path / "out").read_text())
    (b2n,) = tables(parts["Base-to-novel generalization"])
    assert b2n[0] == ["Method · backbone", "Dataset", "Base", "Novel", "HM"]
    caltech = row(b2n, "promptsrc · clip_vit_b16", "caltech101")
    hm = 2 * 81.0 * 72.0 / (81.0 + 72.0)
    assert math.isclose(hm, 76.235, abs_tol=1e-3)  # not the mean of per-seed HMs (75.98)
    base_paper = published(B2N, "PromptSRC", "caltech101", "base_acc")
    novel_paper = published(B2N, "PromptSRC", "caltech101", "novel_acc")
    hm_paper = published(B2N, "PromptSRC", "caltech101", "hm")
    assert caltech["Base"] == f"81.0 ± 1.4 (n=2); {paper_part(base_paper, 81.0, 1)}"
    assert caltech["Novel"] == f"72.0 ± 2.8 (n=2); {paper_part(novel_paper, 72.0, 1)}"
    assert caltech["HM"] == f"76.2; {paper_part(hm_paper, hm, 1)}"
    eurosat = row(b2n, "promptsrc · clip_vit_b16", "eurosat")
    assert eurosat["Base"].startswith("90.0 (n=1)") and eurosat["Novel"] == "not run" and eurosat["HM"] == "—"
    # Average: over the datasets with both base and novel (caltech101, dtd), HM of the averages, partial
    average = row(b2n, "promptsrc · clip_vit_b16", "Average")
    avg_base, avg_novel = (81.0 + 60.0) / 2, (72.0 + 50.0) / 2
    assert average["Base"] == f"{avg_base:.1f} (over 2 of 11); paper —"
    assert average["Novel"] == f"{avg_novel:.1f} (over 2 of 11); paper —"
    assert average["HM"] == f"{harmonic_mean(avg_base, avg_novel):.1f} (over 2 of 11); paper —"
    section = parts["Base-to-novel generalization"]
    assert "the average (over datasets with both base and novel runs) lacks imagenet" in section
    assert "eurosat" in section.split("lacks", 1)[1].splitlines()[0]
    assert "after the last epoch" in section and "HM = 2·Base·Novel/(Base+Novel)" in section
    assert 'row "PromptSRC", backbone clip_vit_b16, metrics base_acc, novel_acc, hm' in parts["Published values"]


def test_other_backbones_show_no_paper_value(db: Path, tmp_path: Path) -> None:
    parts = sections(build_report(db, tmp_path / "out").read_text())
    (b2n,) = tables(parts["Base-to-novel generalization"])
    tiny = row(b2n, "promptsrc · clip_tiny", "caltech101")
    assert tiny == {**tiny, "Base": "40.0 (n=1); paper —", "Novel": "30.0 (n=1); paper —",
                    "HM": f"{harmonic_mean(40.0, 30.0):.1f}; paper —"}
    assert row(b2n, "promptsrc · clip_tiny", "Average")["HM"].endswith("paper —")
    assert ("Rows on clip_tiny (promptsrc): published values exist only for clip_vit_b16, a different model"
            in parts["Base-to-novel generalization"])


def test_full_average_is_compared_with_the_papers(tmp_path: Path) -> None:
    root = tmp_path / "results"
    for dataset in ELEVEN:
        b2n_pair(root, "coop", dataset, 1, 80.0, 60.0)
    db = tmp_path / "db.duckdb"
    ingest(root, db)
    (b2n,) = tables(sections(build_report(db, tmp_path / "out").read_text())["Base-to-novel generalization"])
    average = row(b2n, "coop · clip_vit_b16", "Average")
    for column, metric, ours in (("Base", "base_acc", 80.0), ("Novel", "novel_acc", 60.0),
                                 ("HM", "hm", harmonic_mean(80.0, 60.0))):
        paper = published(B2N, "CoOp", "avg_11_datasets", metric)
        assert average[column] == f"{ours:.1f}; {paper_part(paper, ours, 1)}"
    assert row(b2n, "coop · clip_vit_b16", "oxfordpets")["Base"].endswith(
        paper_part(published(B2N, "CoOp", "oxfordpets", "base_acc"), 80.0, 1))  # dataset alias


def test_fewshot_columns(db: Path, tmp_path: Path) -> None:
    parts = sections(build_report(db, tmp_path / "out").read_text())
    (few,) = tables(parts["Few-shot classification"])
    assert few[0] == ["Method · backbone", "Dataset", "1-shot", "16-shot"]
    caltech = row(few, "coop · clip_vit_b16", "caltech101")
    assert caltech["1-shot"] == (f"87.0 ± 1.4 (n=2); "
                                 f"{paper_part(published(FEWSHOT, 'CoOp', 'caltech101', 'top1_acc_1shot'), 87.0, 2)}")
    assert caltech["16-shot"].startswith("95.0 (n=1); paper ")
    pets = row(few, "coop · clip_vit_b16", "oxfordpets")
    assert pets["1-shot"] == "not run"
    assert pets["16-shot"].endswith(paper_part(published(FEWSHOT, "CoOp", "oxfordpets", "top1_acc_16shot"), 91.0, 2))
    average = row(few, "coop · clip_vit_b16", "Average")
    assert average["1-shot"] == "87.0 (over 1 of 11); paper —"
    assert average["16-shot"] == "93.0 (over 2 of 11); paper —"


def test_cross_dataset_average_over_targets_only(db: Path, tmp_path: Path) -> None:
    parts = sections(build_report(db, tmp_path / "out").read_text())
    (xd,) = tables(parts["Cross-dataset transfer"])
    assert xd[0] == ["Method · backbone", "imagenet (source)", "caltech101", "dtd", "Average"]
    maple = row(xd, "maple · clip_vit_b16")
    source_paper = published(XD, "MaPLe", "imagenet", "top1_acc")
    assert maple["imagenet (source)"] == f"71.0 ± 1.4 (n=2); {paper_part(source_paper, 71.0, 3)}"
    assert maple["dtd"].startswith("22.0 ± 2.8 (n=2); paper ")
    assert maple["Average"] == f"{(94.0 + 22.0) / 2:.1f} (over 2 of 10); paper —"  # the source (71.0) is left out
    assert "lacks oxfordpets, stanfordcars" in parts["Cross-dataset transfer"]


def test_transfer_full_targets_and_domain_generalization(tmp_path: Path) -> None:
    """As the suites write them: one ImageNet training run (protocol cross_dataset) whose prompts both the
    cross-dataset and the DG eval runs test; zero-shot CLIP's ImageNet job is a cross_dataset job too."""
    root = tmp_path / "results"
    train = write_prompt_run(root, protocol="cross_dataset", method="promptsrc", dataset="imagenet", acc=71.0)
    for index, target in enumerate(TARGETS):
        write_prompt_run(root, protocol="cross_dataset", method="promptsrc", dataset=target, acc=60.0 + index,
                         train_run=train, source_dataset="imagenet")
    dg_runs = {train}
    for index, target in enumerate(DG_TARGETS):
        dg_runs.add(write_prompt_run(root, protocol="domain_generalization", method="promptsrc", dataset=target,
                                     acc=50.0 + index, train_run=train, source_dataset="imagenet"))
    # zero-shot CLIP has no training run: every job tests on its own dataset, ImageNet is its source column
    for index, dataset in enumerate(("imagenet", *DG_TARGETS)):
        dg_runs.add(write_prompt_run(root, protocol="cross_dataset" if dataset == "imagenet" else
                                     "domain_generalization", method="zeroshot", dataset=dataset, acc=40.0 + index,
                                     shots=None))
    db = tmp_path / "db.duckdb"
    ingest(root, db)
    dg_only = load_model(db, run_ids=dg_runs)  # e.g. a suite with the DG grid alone
    assert [s.protocol for s in dg_only.prompt_sections] == ["domain_generalization"]
    parts = sections(build_report(db, tmp_path / "out", paper=PSRC).read_text())
    (xd,) = tables(parts["Cross-dataset transfer"])
    ours = sum(60.0 + i for i in range(10)) / 10
    average = row(xd, "promptsrc · clip_vit_b16")["Average"]
    assert average.startswith(f"{ours:.1f}; paper ")
    assert average.endswith(f"Δ {ours - published(XD, 'PromptSRC', 'avg_10_targets', 'top1_acc'):+.1f}")
    (dg,) = tables(parts["Domain generalization"])
    assert dg[0] == ["Method · backbone", "imagenet (source)", "imagenetv2", "imagenet_sketch", "imagenet_a",
                     "imagenet_r", "Average"]
    assert [r[0] for r in dg[2:]] == ["zeroshot · clip_vit_b16", "promptsrc · clip_vit_b16"]  # the papers' order
    assert [r[0] for r in xd[2:]] == ["promptsrc · clip_vit_b16"]  # zero-shot has no cross-dataset targets
    assert row(dg, "promptsrc · clip_vit_b16")["imagenet (source)"].startswith("71.0 (n=1); paper ")
    zeroshot = row(dg, "zeroshot · clip_vit_b16")
    assert zeroshot["imagenet (source)"].endswith(
        paper_part(published(DG, "CLIP (zero-shot)", "imagenet", "top1_acc"), 40.0, 2))
    assert zeroshot["imagenetv2"].startswith("41.0 (n=1); paper ")
    dg_avg = (41.0 + 42.0 + 43.0 + 44.0) / 4
    dg_paper = published(DG, "CLIP (zero-shot)", "avg_4_targets", "top1_acc")
    assert zeroshot["Average"] == f"{dg_avg:.1f}; {paper_part(dg_paper, dg_avg, 2)}"


def test_failed_prompt_runs_are_listed(db: Path, tmp_path: Path) -> None:
    parts = sections(build_report(db, tmp_path / "out").read_text())
    (failed,) = tables(parts["Failed runs"])
    assert failed[2][:3] == ["maple", "clip_vit_b16", "eurosat (cross_dataset, 16-shot, from imagenet)"]
    assert failed[2][4] == "RuntimeError: no prompts"


def test_html_and_csv(db: Path, tmp_path: Path) -> None:
    page = build_report(db, tmp_path / "out", "html").read_text()
    for title in ("Base-to-novel generalization", "Few-shot classification", "Cross-dataset transfer"):
        assert f">{title}</h2>" in page
    assert "81.0 ± 1.4 (n=2)" in page and "76.2" in page and "imagenet (source)" in page
    assert "paper —" in page and "Failed runs" in page and "after the last epoch" in page
    assert not re.search(r"<link|src=|@import|url\(", page)
    with open(tmp_path / "out" / "prompt_cells.csv", newline="") as handle:
        lines = list(csv.DictReader(handle))
    hm = next(r for r in lines if (r["protocol"], r["backbone"], r["row"], r["column"]) == (
        "base2novel", "clip_vit_b16", "caltech101", "HM"))
    assert (hm["rule"], hm["n"], hm["mean"], hm["paper_table"]) == ("final", "", "76.2353", B2N)
    avg = next(r for r in lines if (r["protocol"], r["backbone"], r["row"], r["column"]) == (
        "base2novel", "clip_vit_b16", "Average", "Base"))
    assert avg["over"] == "2/11" and avg["paper"] == ""
    with open(tmp_path / "out" / "cells.csv", newline="") as handle:
        assert not any(r["method"] in ("promptsrc", "coop", "maple") for r in csv.DictReader(handle))


def test_html_escapes_labels(tmp_path: Path) -> None:
    root = tmp_path / "results"
    evil = "<script>alert(1)</script>|x"
    b2n_pair(root, "promptsrc", "dtd", 1, 60.0, 50.0, label=evil)
    db = tmp_path / "db.duckdb"
    ingest(root, db)
    page = build_report(db, tmp_path / "html", "html").read_text()
    assert page.count("<script") == 1 and "&lt;script&gt;" in page  # only our own sorting script
    (b2n,) = tables(sections(build_report(db, tmp_path / "md").read_text())["Base-to-novel generalization"])
    assert all(len(r) == 5 for r in b2n)  # the pipe in the label is escaped


def test_suite_run_ids_and_labels(db: Path, tmp_path: Path) -> None:
    """`vrbench report --suite` passes the suite's run ids: only those runs, in the same layouts."""
    ids = {r for (r,) in query(db, "SELECT run_id FROM runs WHERE protocol = 'cross_dataset'")}
    text = build_report(db, tmp_path / "out", run_ids=ids, paper=PSRC).read_text()
    parts = sections(text)
    assert "Cross-dataset transfer" in parts and "Base-to-novel generalization" not in parts
    assert "Leaderboard: final" not in parts  # prompt runs never enter the VR leaderboards
    assert "from 7 runs (6 done, 1 failed)" in text
    model = load_model(db, run_ids=ids)
    assert [s.protocol for s in model.prompt_sections] == ["cross_dataset"] and model.boards == []


def test_non_paper_settings_are_not_compared(tmp_path: Path) -> None:
    root = tmp_path / "results"
    b2n_pair(root, "cocoop", "dtd", 1, 60.0, 50.0, shots=4)
    b2n_pair(root, "cocoop", "dtd", 1, 70.0, 55.0)
    train = write_prompt_run(root, protocol="cross_dataset", method="cocoop", dataset="caltech101", acc=90.0)
    write_prompt_run(root, protocol="cross_dataset", method="cocoop", dataset="dtd", acc=40.0, train_run=train,
                     source_dataset="caltech101")
    db = tmp_path / "db.duckdb"
    ingest(root, db)
    parts = sections(build_report(db, tmp_path / "out").read_text())
    (b2n,) = tables(parts["Base-to-novel generalization"])
    assert row(b2n, "cocoop · clip_vit_b16 · 4-shot", "dtd")["Base"] == "60.0 (n=1); paper —"
    assert row(b2n, "cocoop · clip_vit_b16 · 16-shot", "dtd")["Base"].startswith("70.0 (n=1); paper 7")
    assert "trained on 4-shot, the paper on 16 shots" in parts["Base-to-novel generalization"]
    (xd,) = tables(parts["Cross-dataset transfer"])
    assert xd[0] == ["Method · backbone", "caltech101 (source)", "dtd", "Average"]
    assert "No comparable published value" in parts["Cross-dataset transfer"]


def test_vr_only_results_render_as_before(tmp_path: Path) -> None:
    """Adding the prompt tables changes nothing for VR runs: same Markdown and HTML as a report without them."""
    root = tmp_path / "results"
    write_vr_run(root, "padding+ilm", "cifar10", 0, (60.0, 66.0, 64.0))
    write_vr_run(root, "padding+ilm", "cifar10", 1, (61.0, 66.6, 63.0))
    write_vr_run(root, "smm+ilm", "digits", 0, (70.0, 71.0, None))
    write_vr_run(root, "padding+rlm", "digits", 0, None, error="CUDA out of memory")
    db = tmp_path / "db.duckdb"
    ingest(root, db)
    md_text = build_report(db, tmp_path / "md").read_text()
    assert list(sections(md_text)) == ["Leaderboard: final", "Leaderboard: best_test", "Leaderboard: best_val",
                                       "Failed runs", "Published values", "How to read this"]
    assert not (tmp_path / "md" / "prompt_cells.csv").exists()
    assert "prompt" not in md_text.lower()
    # with prompt runs added, the VR sections keep exactly the same text
    mixed = tmp_path / "mixed"
    shutil.copytree(root, mixed)
    b2n_pair(mixed, "promptsrc", "dtd", 1, 60.0, 50.0, backbone="clip_tiny")
    ingest(mixed, tmp_path / "mixed.duckdb")
    mixed_text = build_report(tmp_path / "mixed.duckdb", tmp_path / "mixed_md").read_text()
    before, after = sections(md_text), sections(mixed_text)
    for name in ("Leaderboard: final", "Leaderboard: best_test", "Leaderboard: best_val", "Failed runs",
                 "Published values"):
        assert after[name] == before[name]
    assert "Base-to-novel generalization" in after


def test_old_index_is_rebuilt_with_the_new_columns(results: Path, tmp_path: Path) -> None:
    """An index written before the prompt columns existed is dropped and rebuilt from the run directories."""
    db = tmp_path / "old.duckdb"
    ingest(results, db)
    con = duckdb.connect(str(db))
    for statement in ("DROP VIEW cells_by_env", "DROP VIEW cells", "DROP VIEW scores"):
        con.execute(statement)
    for column in ("shots", "subsample", "stage", "train_run", "source_dataset"):
        con.execute(f"ALTER TABLE runs DROP COLUMN {column}")
    con.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
    con.close()
    before = sorted(p.name for p in (results / "runs").iterdir())
    stats = ingest(results, db)
    assert stats.added == len(before) and stats.problems == []
    assert sorted(p.name for p in (results / "runs").iterdir()) == before  # no run file touched
    assert query(db, "SELECT count(*) FROM runs WHERE subsample = 'new'") == [(4,)]
    assert load_model(db).prompt_sections


def test_suite_reference_rows_and_group_by(tmp_path: Path) -> None:
    """A suite's `reference.rows` names the published row of a labelled variant; group_by adds row keys."""
    from vrbench.report.references import RefSource

    root = tmp_path / "results"
    b2n_pair(root, "promptsrc", "dtd", 1, 60.0, 50.0, label="promptsrc-no-gpa")
    db = tmp_path / "db.duckdb"
    ingest(root, db)
    plain = sections(build_report(db, tmp_path / "plain").read_text())
    assert "No comparable published value" in plain["Base-to-novel generalization"]  # a label has no built-in row
    ablation = "Suppl. per-dataset component ablation (base-to-novel)"
    rows = {"promptsrc-no-gpa": (RefSource(PSRC, ablation, "IVLP+L_SCL"),)}
    text = build_report(db, tmp_path / "out", paper=PSRC, reference_rows=rows, group_by=("config.lr",)).read_text()
    (b2n,) = tables(sections(text)["Base-to-novel generalization"])
    assert b2n[0] == ["Method · backbone", "config.lr", "Dataset", "Base", "Novel", "HM"]
    dtd = row(b2n, "promptsrc-no-gpa · clip_vit_b16", "0.0025", "dtd")
    assert dtd["Novel"] == f"50.0 (n=1); {paper_part(published(ablation, 'IVLP+L_SCL', 'dtd', 'novel_acc'), 50.0, 1)}"


def test_zero_shot_runs_in_transfer_and_fewshot_tables(tmp_path: Path) -> None:
    """Zero-shot methods have no training run: each job tests on its own dataset. In a transfer table their source
    is the other rows' source; in a few-shot table they fill a column of their own."""
    root = tmp_path / "results"
    train = write_prompt_run(root, protocol="cross_dataset", method="maple", dataset="digits", acc=90.0,
                             backbone="clip_tiny", shots=4)
    write_prompt_run(root, protocol="cross_dataset", method="maple", dataset="animal_shapes", acc=30.0,
                     backbone="clip_tiny", shots=4, train_run=train, source_dataset="digits")
    for dataset, acc in (("digits", 20.0), ("animal_shapes", 10.0)):
        write_prompt_run(root, protocol="cross_dataset", method="zeroshot", dataset=dataset, acc=acc,
                         backbone="clip_tiny", shots=None)
    write_prompt_run(root, protocol="fewshot", method="zeroshot_ensemble", dataset="digits", acc=25.0,
                     backbone="clip_tiny", shots=None)
    for shots, acc in ((1, 40.0), (4, 60.0)):
        write_prompt_run(root, protocol="fewshot", method="coop", dataset="digits", acc=acc, backbone="clip_tiny",
                         shots=shots)
    db = tmp_path / "db.duckdb"
    ingest(root, db)
    parts = sections(build_report(db, tmp_path / "out", paper=PSRC).read_text())
    (xd,) = tables(parts["Cross-dataset transfer"])
    assert xd[0] == ["Method · backbone", "digits (source)", "animal_shapes", "Average"]
    assert row(xd, "zeroshot · clip_tiny")["digits (source)"] == "20.0 (n=1)"
    assert row(xd, "zeroshot · clip_tiny")["Average"] == "10.0"
    assert row(xd, "maple · clip_tiny")["animal_shapes"] == "30.0 (n=1)"
    (few,) = tables(parts["Few-shot classification"])
    assert few[0] == ["Method · backbone", "Dataset", "zero-shot", "1-shot", "4-shot"]
    assert row(few, "zeroshot_ensemble · clip_tiny", "digits")["zero-shot"] == "25.0 (n=1)"
    assert row(few, "coop · clip_tiny", "Average") == {
        "Method · backbone": "coop · clip_tiny", "Dataset": "Average", "zero-shot": "—", "1-shot": "40.0",
        "4-shot": "60.0"}


def test_latex_prompt_tables_compile(db: Path, tmp_path: Path) -> None:
    """The papers' layouts as booktabs tables: one per protocol table, best per column in bold within a dataset."""
    out = tmp_path / "tex"
    text = build_report(db, out, "latex", with_paper=True).read_text()
    assert text.count(r"\begin{table}") == text.count(r"\bottomrule") == 3  # base-to-novel, few-shot, cross-dataset
    assert r"\label{tab:vrbench-base2novel}" in text and r"\label{tab:vrbench-fewshot}" in text
    b2n = text.split(r"\label{tab:vrbench-base2novel}")[1].split(r"\end{table}")[0]
    assert "Method & Backbone & Dataset & Base & Novel & HM" in b2n and r"{\footnotesize(" in b2n
    engine = shutil.which("pdflatex")
    if engine is None:
        pytest.skip("no TeX engine on PATH (apt-get install texlive-latex-base texlive-latex-recommended; "
                    ".ci/run does): the structure was checked above")
    (out / "doc.tex").write_text("\\documentclass{article}\n\\usepackage{booktabs}\n\\begin{document}\n"
                                 "\\input{index}\n\\end{document}\n")
    import subprocess

    done = subprocess.run([engine, "-interaction=nonstopmode", "-halt-on-error", "doc.tex"], cwd=out,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-3000:]
