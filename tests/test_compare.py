"""`vrbench compare` and the report's statistics, end to end over a real index of run directories."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from vrbench.compare import compare_methods
from vrbench.errors import ConfigError, ResultsError
from vrbench.report import build_report, load_model
from vrbench.report.model import DATASET_ORDER
from vrbench.results import Results
from vrbench.store import ingest

ROOT = Path(__file__).resolve().parents[1]
DATASETS = DATASET_ORDER[:10]


def write_run(root: Path, run_id: str, method: str, dataset: str, seed: int, acc: float) -> None:
    """A finished run as docs/results-format.md describes it, with the same accuracy under every rule."""
    run = root / "runs" / run_id
    run.mkdir(parents=True)
    inp, _, mapping = method.partition("+")
    config = {"protocol": "vr", "input": inp, "mapping": mapping, "backbone": "resnet18", "dataset": dataset,
              "seed": seed, "epochs": 2, "lr": 0.01, "batch_size": 32, "versions": {"engine": 1}}
    (run / "config.json").write_text(json.dumps({"run_id": run_id, "method": method, "config": config,
                                                 "runtime": {}}))
    (run / "result.json").write_text(json.dumps({
        "run_id": run_id, "status": "done", "epochs": 2, "final_acc": acc, "best_test_acc": acc,
        "best_test_epoch": 1, "best_val_acc": None, "best_val_epoch": None, "val_size": 0,
        "trainable_params": 5, "train_seconds": 1.0, "finished_at": "2026-11-22T08:00:00+00:00"}))


def synthetic_results(root: Path, margin: float, seed: int = 0) -> dict[str, dict[str, list[float]]]:
    """padding+blm = padding+ilm + margin (+ noise) on 10 datasets x 3 seeds; padding+rlm far behind both.
    Returns method -> dataset -> scores by seed."""
    rng = np.random.default_rng(seed)
    written: dict[str, dict[str, list[float]]] = {"padding+blm": {}, "padding+ilm": {}, "padding+rlm": {}}
    for d, dataset in enumerate(DATASETS):
        level, seed_effect = rng.uniform(40, 90), rng.normal(scale=2.0, size=3)
        values = {"padding+ilm": level + seed_effect + rng.normal(scale=1.0, size=3),
                  "padding+blm": level + margin + seed_effect + rng.normal(scale=1.0, size=3),
                  "padding+rlm": level - 20 + rng.normal(scale=1.0, size=3)}
        for method, scores in values.items():
            written[method][dataset] = [round(float(v), 4) for v in scores]
            for s, acc in enumerate(written[method][dataset]):
                write_run(root, f"{method.replace('+', '')}{d:02d}{s}", method, dataset, s, acc)
    return written


@pytest.fixture(scope="module")
def known(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, dict[str, list[float]]]]:
    root = tmp_path_factory.mktemp("compare") / "results"
    written = synthetic_results(root, margin=2.0)
    ingest(root, root / "vrbench.duckdb")
    return root, written


def vrbench(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", "from vrbench.cli import main; main()", *args], cwd=ROOT,
                          capture_output=True, text=True, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})


def test_compare_json_finds_a_known_margin_with_independently_computed_numbers(known) -> None:
    root, written = known
    out = vrbench("compare", "padding+blm", "padding+ilm", "--results", str(root), "--format", "json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)  # nothing but the JSON object on stdout
    assert set(data["overall"]) == {"mean_diff", "ci_low", "ci_high", "p_value", "prob_improvement"}
    assert set(data["datasets"]) == set(DATASETS)
    for dataset in DATASETS:
        diffs = np.subtract(written["padding+blm"][dataset], written["padding+ilm"][dataset])
        entry = data["datasets"][dataset]
        assert set(entry) == {"mean_diff", "ci_low", "ci_high", "n"} and entry["n"] == 3
        assert entry["mean_diff"] == pytest.approx(diffs.mean())
        assert (entry["ci_low"], entry["ci_high"]) == pytest.approx(
            stats.t.interval(0.95, 2, diffs.mean(), stats.sem(diffs)))
    means = [data["datasets"][d]["mean_diff"] for d in DATASETS]
    overall = data["overall"]
    assert overall["mean_diff"] == pytest.approx(np.mean(means))
    assert overall["p_value"] == pytest.approx(stats.wilcoxon(means).pvalue)
    assert overall["ci_low"] > 0 and overall["p_value"] < 0.01  # the known margin is found
    assert data["bootstrap"] == {"seed": 0, "reps": 10000} and data["unpaired_runs"] == {"a": 0, "b": 0}
    assert data["outcomes"]["losses"] == 0
    assert vrbench("compare", "padding+blm", "padding+ilm", "--results", str(root), "-f", "json").stdout == out.stdout


def test_compare_table_says_what_it_computed(known) -> None:
    root, _ = known
    out = vrbench("compare", "padding+rlm", "padding+ilm", "--results", str(root), "--rule", "final")
    assert out.returncode == 0, out.stderr
    assert "wins / ties / losses: 0 / 0 / 10" in out.stdout
    assert "seed 0" in out.stdout and "10000 resamples" in out.stdout and "Wilcoxon" in out.stdout


def test_unpaired_runs_are_left_out_and_counted(tmp_path: Path) -> None:
    root = tmp_path / "results"
    for seed, (a, b) in enumerate([(70.0, 68.0), (71.0, 69.5), (72.0, 70.0)]):
        write_run(root, f"a{seed}", "padding+blm", "cifar10", seed, a)
        write_run(root, f"b{seed}", "padding+ilm", "cifar10", seed, b)
    write_run(root, "a9", "padding+blm", "cifar10", 9, 10.0)  # seed 9: B lacks it
    write_run(root, "a8", "padding+blm", "svhn", 0, 50.0)  # a dataset B lacks
    write_run(root, "b8", "padding+ilm", "dtd", 1, 40.0)  # a dataset A lacks
    ingest(root, root / "vrbench.duckdb")
    result = compare_methods(root / "vrbench.duckdb", "padding+blm", "padding+ilm", "best_test")
    assert [d.name for d in result.datasets] == ["cifar10"] and result.datasets[0].n == 3
    assert result.datasets[0].mean_diff == pytest.approx((2.0 + 1.5 + 2.0) / 3)  # seed 9's 10.0 left out
    assert result.unpaired == {"a": 2, "b": 1}
    only = compare_methods(root / "vrbench.duckdb", "padding+blm", "padding+ilm", "best_test",
                           run_ids={"a0", "a1", "b0", "b1", "b2"})  # a suite's runs only (--suite)
    assert only.datasets[0].n == 2 and only.unpaired == {"a": 0, "b": 1}


def test_compare_errors_are_one_line(known, tmp_path: Path) -> None:
    root, _ = known
    out = vrbench("compare", "padding+blm", "padding+ilmm", "--results", str(root))
    assert out.returncode != 0 and "Did you mean 'padding+ilm'" in out.stderr and "Traceback" not in out.stderr
    with pytest.raises(ConfigError, match="two different methods"):
        compare_methods(root / "vrbench.duckdb", "padding+blm", "padding+blm", "final")
    with pytest.raises(ConfigError, match="selection rule"):
        compare_methods(root / "vrbench.duckdb", "padding+blm", "padding+ilm", "best")
    lone = tmp_path / "results"
    write_run(lone, "a0", "padding+blm", "cifar10", 0, 70.0)
    write_run(lone, "b0", "padding+ilm", "cifar10", 1, 60.0)
    ingest(lone, lone / "vrbench.duckdb")
    with pytest.raises(ResultsError, match="share no"):
        compare_methods(lone / "vrbench.duckdb", "padding+blm", "padding+ilm", "final")


def test_report_statistics_in_cells_csv_markdown_html_and_pandas(known, tmp_path: Path) -> None:
    root, written = known
    db = root / "vrbench.duckdb"
    build_report(db, tmp_path / "md", intervals=True)
    with open(tmp_path / "md" / "cells.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    cell = next(r for r in rows if (r["rule"], r["method"], r["dataset"]) == ("final", "padding+rlm", "cifar10"))
    values = written["padding+rlm"]["cifar10"]
    low, high = stats.t.interval(0.95, 2, np.mean(values), stats.sem(values))
    assert (float(cell["ci_low"]), float(cell["ci_high"])) == pytest.approx((low, high), abs=1e-4)
    assert cell["not_worse_than_best"] == "0"  # 20 points behind on every seed
    text = (tmp_path / "md" / "index.md").read_text()
    assert f"[{low:.1f}, {high:.1f}]" in text.replace("\\[", "[").replace("\\]", "]")
    assert "## Across datasets: final" in text and "Nemenyi critical difference" in text and "seed 0" in text
    frame = Results(root, refresh=False).cells(rule="final", method="padding+rlm", dataset="cifar10")
    assert (frame["ci_low"].iloc[0], frame["ci_high"].iloc[0]) == pytest.approx((low, high))
    board = next(b for b in load_model(db).boards if b.rule == "final")
    ranks = board.summary.ranks
    means = np.array([[np.mean(written[m][d]) for d in DATASETS] for m in ("padding+blm", "padding+ilm",
                                                                                 "padding+rlm")])
    assert dict(zip(ranks.labels, ranks.average_ranks, strict=True))["padding+rlm · resnet18"] == 3.0
    assert ranks.friedman_p == pytest.approx(stats.friedmanchisquare(*means).pvalue)


def test_html_report_draws_the_critical_difference_diagram(known, tmp_path: Path) -> None:
    root, _ = known
    page = build_report(root / "vrbench.duckdb", tmp_path / "html", fmt="html").read_text()
    assert 'id="fig-critical-difference-final"' in page and "Across datasets: final" in page
    assert (tmp_path / "html" / "figures" / "critical-difference-best-test.png").read_bytes().startswith(b"\x89PNG")
    assert 'class="num top"' in page and "Holm-corrected" in page


def test_report_and_compare_do_not_import_torch(known, tmp_path: Path) -> None:
    root, _ = known
    code = f"""
import sys, contextlib, io
from vrbench.cli import main
for args in (["report", "--results", "{root}", "--out", "{tmp_path}", "-f", "html"],
             ["compare", "padding+blm", "padding+ilm", "--results", "{root}"]):
    sys.argv = ["vrbench", *args]
    with contextlib.redirect_stdout(io.StringIO()):
        try:
            main()
        except SystemExit as exc:
            assert not exc.code, exc.code
print(sorted(m for m in ("torch", "scipy.stats") if m in sys.modules))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                         env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "['scipy.stats']"  # compare's Wilcoxon test only; never torch


class CountingConnection:
    """A real DuckDB connection that counts the queries run through it."""

    def __init__(self, con) -> None:
        self.con, self.queries = con, 0

    def execute(self, *args, **kwargs):
        self.queries += 1
        return self.con.execute(*args, **kwargs)

    def __getattr__(self, name: str):
        return getattr(self.con, name)


def queries_of_load_model(db: Path, monkeypatch: pytest.MonkeyPatch) -> int:
    import vrbench.report.build as build
    from vrbench.store.db import connect

    opened: list[CountingConnection] = []

    def counting(*args, **kwargs):
        opened.append(CountingConnection(connect(*args, **kwargs)))
        return opened[-1]

    monkeypatch.setattr(build, "connect", counting)
    load_model(db)
    return sum(c.queries for c in opened)


def test_report_statistics_cost_no_query_per_cell(known, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The marks, intervals and aggregates come from one query of the seeds, whatever the size of the tables."""
    small = tmp_path / "results"
    for seed in range(2):
        for method in ("padding+blm", "padding+ilm"):
            write_run(small, f"{method.replace('+', '')}{seed}", method, "cifar10", seed, 50.0 + seed)
    ingest(small, small / "vrbench.duckdb")
    root, _ = known  # 90 runs in 30 cells per rule, against 4 runs in 2 cells
    large_count = queries_of_load_model(root / "vrbench.duckdb", monkeypatch)
    assert large_count == queries_of_load_model(small / "vrbench.duckdb", monkeypatch) and large_count > 3
