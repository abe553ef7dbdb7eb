"""A report of a suite names its rows with that suite's labels (issue 25, item 9).

A label is not part of the job id, so two suites that differ only in a label share their runs; the index stores the
label of the suite that wrote a run. `vrbench report --suite S` must name the rows as S does, in every table,
figure and CSV, and leave the index as it is.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from vrbench.report import build_report
from vrbench.results import Results
from vrbench.store.db import DB_NAME, ingest
from vrbench.suite import load_suite
from vrbench.testing.runs import index_mapping, learning_curve, write_finished_run


def _suite(directory: Path, stem: str, label: str | None) -> Path:
    defaults = {"epochs": 3, "lr": 0.01, "batch_size": 32, "image_size": 32, "canvas": 64,
                "selection": ["final", "best_test"]}
    if label is not None:
        defaults["label"] = label
    path = directory / f"{stem}.yaml"
    path.write_text(yaml.safe_dump({
        "name": stem, "protocol": "vr",
        "grid": {"input": ["padding"], "mapping": ["ilm", "flm"], "backbone": ["efficientnet_lite0"],
                 "dataset": ["digits"], "seed": [0, 1]},
        "defaults": defaults}), encoding="utf-8")
    return path


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Path, Path, Path, Path]:
    """Runs written by suite A (label 'variant A'); suite B (label 'variant B') and C (no label) have the same jobs."""
    a, b, c = (_suite(tmp_path, "a", "variant A"), _suite(tmp_path, "b", "variant B"), _suite(tmp_path, "c", None))
    jobs_a = load_suite(a).jobs
    assert [j.run_id for j in jobs_a] == [j.run_id for j in load_suite(b).jobs] == [j.run_id for j in
                                                                                      load_suite(c).jobs]
    results = tmp_path / "results"
    rng = random.Random(0)
    for job in jobs_a:
        write_finished_run(results, job.run_id, job.method, job.config, learning_curve(3, 40.0, rng),
                           index_mapping(20, [str(k) for k in range(10)], rng))
    ingest(results, results / DB_NAME)
    return results, a, b, c


@pytest.mark.parametrize("fmt", ["md", "latex", "html"])
def test_report_of_a_suite_uses_its_labels(tmp_path: Path, setup, fmt: str) -> None:
    results, a, b, c = setup
    for suite, shown, hidden in ((b, "variant B", "variant A"), (c, "padding+ilm", "variant A"),
                                 (a, "variant A", "variant B")):
        jobs = load_suite(suite).jobs
        out = tmp_path / f"{fmt}-{suite.stem}"
        path = build_report(results / DB_NAME, out, fmt=fmt, run_ids={j.run_id for j in jobs},
                            labels={j.run_id: j.method for j in jobs})
        text = path.read_text(encoding="utf-8") + (out / "cells.csv").read_text(encoding="utf-8")
        if fmt == "html":
            text += (out / "figures" / "figures.json").read_text(encoding="utf-8")
        assert shown in text and hidden not in text, (suite.stem, fmt)
    # the index itself is untouched: it still holds the names the writing suite gave
    assert set(Results(results, refresh=False).runs()["method"]) == {"variant A"}


def test_cli_report_with_suite_uses_its_labels_and_without_the_stored_ones(tmp_path: Path, setup) -> None:
    results, _, b, _ = setup
    env = {**os.environ, "COLUMNS": "300"}
    for args, shown, hidden in ((["--suite", str(b)], "variant B", "variant A"), ([], "variant A", "variant B")):
        out = tmp_path / ("with" if args else "without")
        done = subprocess.run([sys.executable, "-m", "vrbench.cli", "report", "--results", str(results), "--out",
                               str(out), *args], capture_output=True, text=True, env=env, timeout=120)
        assert done.returncode == 0, done.stderr
        text = (out / "index.md").read_text(encoding="utf-8")
        assert shown in text and hidden not in text


def test_figure_data_use_the_suite_labels(setup) -> None:
    from vrbench.report.figures import best_runs, load_curves
    from vrbench.report.labels import use_labels
    from vrbench.store.db import connect

    results, _, b, _ = setup
    jobs = load_suite(b).jobs
    con = connect(results / DB_NAME, read_only=True)
    try:
        use_labels(con, {j.run_id: j.method for j in jobs})
        curves = load_curves(con, {j.run_id for j in jobs})
        assert set(curves["digits"]) == {"variant B · efficientnet_lite0"}
        assert {method for method, _ in best_runs(con, None)} == {"variant B"}
        assert {m for (m,) in con.execute("SELECT DISTINCT method FROM cells").fetchall()} == {"variant B"}
    finally:
        con.close()
