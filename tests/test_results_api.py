"""vrbench.results: pandas DataFrames of a results directory, checked against the run files read directly."""

from __future__ import annotations

import json
import random
import statistics
from pathlib import Path

import pytest

from vrbench.errors import ConfigError
from vrbench.results import Results, cells, epochs, runs
from vrbench.store import is_current
from vrbench.store.db import DB_NAME
from vrbench.testing.runs import learning_curve, write_finished_run, write_suite_results

SMOKE = Path(__file__).resolve().parents[1] / "suites" / "smoke.yaml"


@pytest.fixture
def results(tmp_path: Path) -> Path:
    root = tmp_path / "results"
    write_suite_results(SMOKE, root)
    return root


def read_runs(root: Path) -> dict[str, dict]:
    """run_id -> {config, result, history}, straight from the JSON files (no vrbench reader involved)."""
    out = {}
    for directory in sorted((root / "runs").iterdir()):
        if not (directory / "result.json").exists():
            continue
        out[directory.name] = {
            "config": json.loads((directory / "config.json").read_text()),
            "result": json.loads((directory / "result.json").read_text()),
            "history": [json.loads(line) for line in (directory / "metrics.jsonl").read_text().splitlines()],
        }
    return out


def test_runs_match_result_files(results: Path) -> None:
    files = read_runs(results)
    frame = runs(results)
    assert sorted(frame["run_id"]) == sorted(files)
    for record in frame.itertuples():
        result, doc = files[record.run_id]["result"], files[record.run_id]["config"]
        assert (record.method, record.dataset, record.seed) == (doc["method"], doc["config"]["dataset"],
                                                                doc["config"]["seed"])
        assert record.final_acc == result["final_acc"] and record.best_test_acc == result["best_test_acc"]
        assert record.best_test_epoch == result["best_test_epoch"] and record.epochs == result["epochs"]


def test_epochs_match_metrics_files(results: Path) -> None:
    files = read_runs(results)
    frame = epochs(results)
    assert len(frame) == sum(len(f["history"]) for f in files.values())
    for run_id, group in frame.groupby("run_id"):
        history = files[run_id]["history"]
        assert list(group["epoch"]) == [row["epoch"] for row in history]
        assert list(group["test_acc"]) == [row["test_acc"] for row in history]
        assert set(group["method"]) == {files[run_id]["config"]["method"]}
    ilm = Results(results).epochs(method="padding+ilm", seed=[1])
    assert set(ilm["method"]) == {"padding+ilm"} and set(ilm["seed"]) == {1} and len(ilm) == 5


def test_cells_and_scores_are_seed_statistics_of_the_files(results: Path) -> None:
    files = read_runs(results)
    by_method: dict[str, list[float]] = {}
    for f in files.values():
        by_method.setdefault(f["config"]["method"], []).append(f["result"]["best_test_acc"])
    frame = cells(results, rule="best_test")
    assert set(frame["rule"]) == {"best_test"} and len(frame) == len(by_method)
    for record in frame.itertuples():
        values = by_method[record.method]
        assert record.n == len(values)
        assert record.mean == pytest.approx(statistics.mean(values))
        assert record.std == pytest.approx(statistics.stdev(values))
        assert (record.min, record.max) == (min(values), max(values))
    seed1 = Results(results).scores(rule="final", seed=1)
    assert sorted(seed1["acc"]) == sorted(f["result"]["final_acc"] for f in files.values()
                                          if f["config"]["config"]["seed"] == 1)


def test_index_is_refreshed_only_when_stale(results: Path) -> None:
    db = results / DB_NAME
    Results(results)
    assert is_current(results, db)
    stamp = db.stat().st_mtime_ns
    Results(results).runs()  # current: read-only, the file is not touched
    assert db.stat().st_mtime_ns == stamp
    config = {"protocol": "vr", "input": "padding", "mapping": "ilm", "backbone": "efficientnet_lite0",
              "dataset": "digits", "seed": 7, "epochs": 3}
    write_finished_run(results, "00000000000000ff", "padding+ilm", config, learning_curve(3, 50.0, random.Random(1)))
    assert not is_current(results, db)
    stale = Results(results, refresh=False).runs()
    assert "00000000000000ff" not in set(stale["run_id"])
    fresh = Results(results).runs(seed=7)
    assert list(fresh["run_id"]) == ["00000000000000ff"] and is_current(results, db)


def test_bad_filters_are_clear_errors(results: Path) -> None:
    res = Results(results)
    with pytest.raises(ConfigError, match="cannot filter on 'lr'"):
        res.runs(lr=0.01)
    with pytest.raises(ConfigError, match="unknown selection rule"):
        res.cells(rule="best")
    with pytest.raises(ConfigError, match="aggregated over seeds"):
        res.cells(seed=0)
