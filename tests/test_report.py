"""Tests for vrbench.report: leaderboards from a real index, published-value matching, Markdown/HTML/CSV output."""

from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

from vrbench.errors import ConfigError, ResultsError
from vrbench.report import build_report, load_model, match
from vrbench.report.markdown import md
from vrbench.store import ingest, query

EVIL = "<script>alert('x')</script>|evil"


def write_run(root: Path, run_id: str, *, method: str = "padding+ilm", backbone: str = "resnet18",
              dataset: str = "cifar10", seed: int = 0, accs: tuple[float, float, float | None] | None = None,
              error: str | None = None, device: str = "cpu") -> None:
    """A run directory as docs/results-format.md describes it; accs = (final, best_test, best_val)."""
    run = root / "runs" / run_id
    run.mkdir(parents=True)
    inp, _, mapping = method.partition("+")
    config = {"protocol": "vr", "input": inp, "mapping": mapping, "backbone": backbone, "dataset": dataset,
              "seed": seed, "epochs": 2, "lr": 0.01, "batch_size": 32, "image_size": 32, "canvas": 96,
              "subset": None, "val_fraction": 0.1, "versions": {"engine": 1}}
    (run / "config.json").write_text(json.dumps({"run_id": run_id, "method": method, "config": config,
                                                 "runtime": {}}))
    (run / "env.json").write_text(json.dumps({"device": device, "precision": "fp32", "threads": 2}))
    (run / "metrics.jsonl").write_text(json.dumps({"epoch": 1, "test_acc": 1.0}) + "\n")
    if accs is not None:
        final, best_test, best_val = accs
        (run / "result.json").write_text(json.dumps({
            "run_id": run_id, "status": "done", "epochs": 2, "final_acc": final, "best_test_acc": best_test,
            "best_test_epoch": 1, "best_val_acc": best_val, "best_val_epoch": 1, "val_size": 10,
            "trainable_params": 5, "train_seconds": 1.0, "finished_at": "2026-11-22T08:00:00+00:00"}))
    if error is not None:
        (run / "error.json").write_text(json.dumps({
            "run_id": run_id, "error_type": "RuntimeError", "message": error, "traceback": "...",
            "exit_code": 1, "failed_at": "2026-11-22T08:00:00+00:00"}))


def published(paper: str, method: str, backbone: str, dataset: str) -> float:
    """The value printed in the shipped CSV, read independently of vrbench.report.references."""
    text = (resources.files("vrbench.references") / f"{paper}.csv").read_text(encoding="utf-8")
    rows = [r for r in csv.DictReader(text.splitlines()) if (r["method"], r["backbone"], r["dataset"],
                                                             r["metric"]) == (method, backbone, dataset, "top1_acc")]
    assert rows, "the test relies on a real reference row"
    return float(rows[0]["value"])


@pytest.fixture
def db(tmp_path: Path) -> Path:
    root = tmp_path / "results"
    write_run(root, "a01", seed=0, accs=(60.0, 66.0, 64.0))
    write_run(root, "a02", seed=1, accs=(61.0, 66.6, 63.0))
    write_run(root, "a03", dataset="digits", accs=(50.0, 51.0, 50.5))
    write_run(root, "b01", method="smm+ilm", accs=(70.0, 71.0, None))
    write_run(root, "c01", method=EVIL, backbone="efficientnet_lite0", dataset="digits", accs=(10.0, 12.0, None))
    write_run(root, "d01", method="padding+rlm", dataset="digits", error="CUDA out of memory\nsecond line")
    write_run(root, "e01", method="padding+flm", dataset="digits", accs=(20.0, 22.0, None), device="cuda")
    path = tmp_path / "vrbench.duckdb"
    stats = ingest(root, path)
    assert stats.problems == [] and (stats.done, stats.failed) == (6, 1)
    return path


def sections(text: str) -> dict[str, str]:
    """Markdown '## ' sections by heading."""
    parts = re.split(r"^## (.+)$", text, flags=re.MULTILINE)
    return {parts[i].strip(): parts[i + 1] for i in range(1, len(parts), 2)}


def table(section: str) -> list[list[str]]:
    """The first GFM table in a section as rows of cells (split on unescaped pipes)."""
    lines = [line for line in section.splitlines() if line.startswith("|")]
    return [[c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]] for line in lines]


def row(rows: list[list[str]], label: str) -> dict[str, str]:
    header = rows[0]
    found = [r for r in rows[2:] if r[0] == label]
    assert len(found) == 1, (label, rows)
    return dict(zip(header, found[0], strict=True))


def test_markdown_leaderboards(db: Path, tmp_path: Path) -> None:
    path = build_report(db, tmp_path / "out", "md")
    assert path == tmp_path / "out" / "index.md"
    text = path.read_text()
    assert text.startswith("# vrbench report")
    assert "from 7 runs (6 done, 1 failed)" in text
    parts = sections(text)
    assert {"Leaderboard: final", "Leaderboard: best_test", "Leaderboard: best_val", "Failed runs",
            "How to read this", "Published values"} <= set(parts)
    assert "optimistic" in parts["Leaderboard: best_test"] and "after the last epoch" in parts["Leaderboard: final"]
    rows = table(parts["Leaderboard: best_test"])
    assert rows[0] == ["Method · backbone", "cifar10", "digits", "average"]  # papers' dataset order
    assert all(len(r) == 4 for r in rows)  # a valid table: the malicious '|' is escaped
    ilm = row(rows, "padding+ilm · resnet18")
    paper = published("ilm_vp_cvpr23", "ILM-VP", "resnet18_imagenet1k", "cifar10")
    diff = 66.3 - paper
    assert ilm["cifar10"] == f"66.3 ± 0.4 (n=2); paper {paper:.1f} [1], Δ {diff:+.1f}"
    assert ilm["digits"] == "**51.0 (n=1)**; paper —"  # the column's best is bold (issue 23)
    assert ilm["average"] == f"{(66.3 + 51.0) / 2:.1f}"
    assert "no published value" in parts["Leaderboard: best_test"]
    assert row(rows, "smm+ilm · resnet18")["digits"] == "not run"
    assert row(rows, "smm+ilm · resnet18")["average"] == "71.0 (over 1 of 2)"
    assert rows[2][0] == "padding+ilm · resnet18"  # ranked: most datasets first
    assert row(rows, md(EVIL) + " · efficientnet_lite0")["digits"] == "12.0 (n=1); paper —"


def test_other_rules_show_paper_value_marked(db: Path, tmp_path: Path) -> None:
    parts = sections(build_report(db, tmp_path / "out").read_text())
    final = row(table(parts["Leaderboard: final"]), "padding+ilm · resnet18")
    assert final["cifar10"].startswith("60.5 ± 0.7 (n=2); paper† 65.5 [1], Δ† -5.0")
    assert "not like for like" in parts["Leaderboard: final"]
    best_val = table(parts["Leaderboard: best_val"])
    assert [r[0] for r in best_val[2:]] == ["padding+ilm · resnet18"]  # NULL best_val rows are dropped
    assert row(best_val, "padding+ilm · resnet18")["cifar10"].startswith("**63.5 ± 0.7 (n=2)**")  # the best: bold
    assert "ILM-VP (Chen et al., CVPR 2023)" in parts["Published values"]


def test_paper_choice(db: Path, tmp_path: Path) -> None:
    default = sections(build_report(db, tmp_path / "a").read_text())
    smm = row(table(default["Leaderboard: best_test"]), "smm+ilm · resnet18")
    value = published("smm_icml24", "SMM", "resnet18_imagenet1k", "cifar10")
    assert smm["cifar10"] == f"**71.0 (n=1)**; paper {value:.1f} [2], Δ {71.0 - value:+.1f}"  # best: bold
    only_ilm = sections(build_report(db, tmp_path / "b", paper="ilm_vp_cvpr23").read_text())
    assert row(table(only_ilm["Leaderboard: best_test"]), "smm+ilm · resnet18")["cifar10"] == "**71.0 (n=1)**; paper —"
    with pytest.raises(ConfigError, match="ilm_vp_cvpr23"):
        build_report(db, tmp_path / "c", paper="ilm_vp")


def test_reference_matching() -> None:
    assert match("padding+ilm", "resnet50", "cifar10").paper_stem == "ilm_vp_cvpr23"
    assert match("padding+ilm", "resnet50", "cifar10", paper="smm_icml24").method == "Pad"
    assert match("padding+rlm", "resnet18", "svhn").method == "RLM-VP"
    assert match("resize+linear_probe", "resnext101_32x8d_wsl", "dtd").backbone == "resnext101_32x8d_instagram_wsl"
    assert match("smm+ilm", "vit_b32", "stanford_cars").table.startswith("Table 12")
    assert match("padding+ilm", "efficientnet_lite0", "cifar10") is None
    assert match("padding+ilm", "resnet18", "digits") is None
    assert match("padding+blm", "resnet18", "cifar10") is None  # BLM's table is not transcribed yet
    assert match("padding+ilm", "resnet18", "cifar10", metric="hm") is None


def test_failed_runs_section(db: Path, tmp_path: Path) -> None:
    parts = sections(build_report(db, tmp_path / "out").read_text())
    rows = table(parts["Failed runs"])
    assert rows[0] == ["Method", "Backbone", "Dataset", "Seed", "Error", "Run"]
    assert rows[2] == ["padding+rlm", "resnet18", "digits", "0", "RuntimeError: CUDA out of memory", "d01"]
    assert "second line" not in parts["Failed runs"]


def test_run_ids_filter(db: Path, tmp_path: Path) -> None:
    text = build_report(db, tmp_path / "out", run_ids={"a01", "a03"}).read_text()
    assert "from 2 runs (2 done, 0 failed)" in text
    parts = sections(text)
    assert "Failed runs" not in parts
    rows = table(parts["Leaderboard: final"])
    assert [r[0] for r in rows[2:]] == ["padding+ilm · resnet18"]
    assert row(rows, "padding+ilm · resnet18")["cifar10"].startswith("**60.0 (n=1)**")
    empty = build_report(db, tmp_path / "none", run_ids=set()).read_text()
    assert "from 0 runs" in empty and "No finished run" in empty


def test_group_by_device(db: Path, tmp_path: Path) -> None:
    rows = table(sections(build_report(db, tmp_path / "out", group_by=("device",)).read_text())[
        "Leaderboard: final"])
    assert rows[0][:2] == ["Method · backbone", "device"]
    assert row(rows, "padding+flm · resnet18")["device"] == "cuda"
    assert row(rows, "padding+ilm · resnet18")["device"] == "cpu"
    by_lr = table(sections(build_report(db, tmp_path / "lr", group_by=("config.lr",)).read_text())[
        "Leaderboard: final"])
    assert row(by_lr, "padding+ilm · resnet18")["config.lr"] == "0.01"
    with pytest.raises(ConfigError, match="device"):
        build_report(db, tmp_path / "bad", group_by=("devcie",))


def test_model_matches_cells_view(db: Path) -> None:
    model = load_model(db)
    ours = {(b.rule, r.method, r.backbone, d, c.n, round(c.mean, 6), None if c.std is None else round(c.std, 6))
            for b in model.boards for r in b.rows for d, c in r.cells.items()}
    view = {(rule, m, bb, d, n, round(mean, 6), None if std is None else round(std, 6))
            for m, bb, d, rule, n, mean, std in query(db, "SELECT method, backbone, dataset, rule, n, mean, std "
                                                          "FROM cells")}
    assert ours == view


def test_html_is_escaped_and_self_contained(db: Path, tmp_path: Path) -> None:
    path = build_report(db, tmp_path / "out", "html", paper="ilm_vp_cvpr23")
    assert path.name == "index.html"
    page = path.read_text()
    assert page.count("<script") == 1 and "&lt;script&gt;" in page  # our own sorting script only
    assert not re.search(r"<link|src=(?![\"']data:)|@import|url\(", page)  # no external assets
    assert "66.3 ± 0.4 (n=2)" in page and "paper 65.5 [1], Δ +0.8" in page
    assert "no published value" in page and "Failed runs" in page and "CUDA out of memory" in page
    assert "How to read this" in page


def test_cells_csv(db: Path, tmp_path: Path) -> None:
    build_report(db, tmp_path / "out")
    with open(tmp_path / "out" / "cells.csv", newline="") as handle:
        rows: list[dict[str, Any]] = list(csv.DictReader(handle))
    cell = next(r for r in rows if (r["rule"], r["method"], r["dataset"]) == ("best_test", "padding+ilm", "cifar10"))
    assert (cell["n"], cell["mean"], cell["paper"], cell["paper_value"], cell["diff"]) == (
        "2", "66.3000", "ilm_vp_cvpr23", "65.5", "0.8000")
    assert any(r["method"] == EVIL for r in rows)


def test_missing_database_and_bad_format(tmp_path: Path) -> None:
    with pytest.raises(ResultsError, match="vrbench collect"):
        build_report(tmp_path / "nothing.duckdb", tmp_path / "out")
    with pytest.raises(ConfigError, match="md, html"):
        build_report(tmp_path / "nothing.duckdb", tmp_path / "out", fmt="pdf")


def test_report_does_not_import_torch_or_pandas() -> None:
    code = ("import sys, vrbench.report, vrbench.report.html, vrbench.store; "
            "print(sorted(m for m in ('torch', 'pandas') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[1])
    assert out.stdout.strip() == "[]"
