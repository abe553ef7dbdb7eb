"""Result files that parse but lie are corrupt everywhere (issue 25, items 4 and 5).

A result.json with a mistyped field, a JSON list, a NaN/Infinity/1e308/-5 accuracy: `status` lists it as corrupt
(no traceback), `run` sets it aside and runs the job again, ingestion reports it and keeps it out of the index (so
it is never ranked), and the worker refuses to write one. metrics.jsonl lines with such values are skipped with a
warning.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from vrbench.errors import ResultsError
from vrbench.jobs import JobSpec
from vrbench.results import Results
from vrbench.runner.common import RunSummary, pending_jobs
from vrbench.store.db import DB_NAME, ingest
from vrbench.store.rundir import RESULT, job_state, write_result
from vrbench.store.validate import InvalidRecord, check_epoch, check_result
from vrbench.suite import load_suite
from vrbench.testing.runs import learning_curve, write_finished_run

SMOKE = Path(__file__).resolve().parents[1] / "suites" / "smoke.yaml"

# The raw text written as result.json (literal NaN / Infinity as Python's json module writes and reads them).
BAD_RESULTS = {
    "text-accuracy": '{"status": "done", "final_acc": "18.3", "best_test_acc": 20.0}',
    "null-accuracy": '{"status": "done", "final_acc": null, "best_test_acc": 20.0}',
    "missing-accuracy": '{"status": "done", "epochs": 5}',
    "json-list": '[18.3, 20.0]',
    "json-null": 'null',
    "json-number": '18.3',
    "nan": '{"status": "done", "final_acc": NaN, "best_test_acc": 20.0}',
    "infinity": '{"status": "done", "final_acc": 40.0, "best_test_acc": Infinity}',
    "huge": '{"status": "done", "final_acc": 1e308, "best_test_acc": 1e308}',
    "300-digits": '{"status": "done", "final_acc": 40.0, "best_test_acc": 1' + "0" * 300 + "}",
    "400-digits": '{"status": "done", "final_acc": 1' + "0" * 400 + "}",
    "negative": '{"status": "done", "final_acc": -5, "best_test_acc": 20.0}',
    "above-100": '{"status": "done", "final_acc": 100.5, "best_test_acc": 20.0}',
    "bool-accuracy": '{"status": "done", "final_acc": true}',
    "fractional-epochs": '{"status": "done", "final_acc": 40.0, "epochs": 2.5}',
    "negative-seconds": '{"status": "done", "final_acc": 40.0, "train_seconds": -1}',
    "wrong-status": '{"status": "failed", "final_acc": 40.0}',
}


def run_cli(*args: str) -> subprocess.CompletedProcess:
    """`vrbench ...` in a subprocess, as a user runs it."""
    return subprocess.run([sys.executable, "-m", "vrbench.cli", *args], capture_output=True, text=True,
                          env=dict(os.environ), timeout=300)


@pytest.fixture(scope="module")
def smoke_jobs() -> list[JobSpec]:
    return load_suite(SMOKE).jobs


def _write_runs(results: Path, jobs: list[JobSpec]) -> None:
    rng = random.Random(0)
    for job in jobs:
        write_finished_run(results, job.run_id, job.method, job.config, learning_curve(5, 50.0, rng))


@pytest.mark.parametrize("name", sorted(BAD_RESULTS))
def test_bad_result_is_corrupt_for_status_and_run(tmp_path: Path, smoke_jobs, name: str) -> None:
    results = tmp_path / "results"
    job = smoke_jobs[0]
    _write_runs(results, [job])
    directory = results / "runs" / job.run_id
    (directory / RESULT).write_text(BAD_RESULTS[name])
    state = job_state(directory)
    assert state.status == "corrupt" and "result.json" in state.detail
    events = []
    summary = RunSummary()
    pending = pending_jobs([job], results, lambda event, j, info: events.append((event, info)), summary)
    assert pending == [job] and not summary.skipped  # run treats it as unfinished ...
    assert events[0][0] == "corrupt"
    assert not (directory / RESULT).exists()  # ... after setting the file aside, never deleting it
    kept = list(directory.glob("result.json.corrupt-*"))
    assert len(kept) == 1 and kept[0].read_text() == BAD_RESULTS[name]


@pytest.mark.parametrize("name", sorted(BAD_RESULTS))
def test_bad_result_is_reported_and_never_indexed(tmp_path: Path, smoke_jobs, name: str) -> None:
    results = tmp_path / "results"
    good, bad = smoke_jobs[:2]
    _write_runs(results, [good, bad])
    (results / "runs" / bad.run_id / RESULT).write_text(BAD_RESULTS[name])
    stats = ingest(results, results / DB_NAME)
    assert stats.done == 1
    assert [p.path.parent.name for p in stats.problems] == [bad.run_id]
    assert list(Results(results, refresh=False).runs()["run_id"]) == [good.run_id]


def test_status_lists_every_bad_result_as_corrupt(tmp_path: Path, smoke_jobs) -> None:
    results = tmp_path / "results"
    names = sorted(BAD_RESULTS)[: len(smoke_jobs) - 1]
    _write_runs(results, smoke_jobs)
    for job, name in zip(smoke_jobs, names, strict=False):
        (results / "runs" / job.run_id / RESULT).write_text(BAD_RESULTS[name])
    out = run_cli("status", str(SMOKE), "--results", str(results))
    assert out.returncode == 0, out.stderr
    assert "Traceback" not in out.stderr
    assert f"corrupt: {len(names)}" in out.stdout and "done: 1" in out.stdout


def test_valid_result_passes_with_its_values() -> None:
    fields = check_result({"status": "done", "final_acc": 40, "best_test_acc": 41.5, "epochs": 5.0,
                           "best_val_acc": None})
    assert fields["final_acc"] == 40.0 and fields["epochs"] == 5 and fields["best_val_acc"] is None
    assert check_result({"final_acc": 0})["final_acc"] == 0.0 and check_result({"final_acc": 100})["final_acc"] == 100


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf"), 1e308, -5.0, 101.0])
def test_worker_never_writes_an_impossible_result(tmp_path: Path, value: float) -> None:
    with pytest.raises(ResultsError, match="final_acc"):
        write_result(tmp_path, {"run_id": "x", "status": "done", "final_acc": value, "best_test_acc": 10.0})
    assert not (tmp_path / RESULT).exists()
    write_result(tmp_path, {"run_id": "x", "status": "done", "final_acc": 10.0, "best_test_acc": 10.0})
    assert json.loads((tmp_path / RESULT).read_text())["final_acc"] == 10.0


@pytest.mark.parametrize("line", [
    '{"epoch": 2, "test_acc": NaN}', '{"epoch": 2, "test_acc": Infinity}', '{"epoch": 2, "test_acc": 1e308}',
    '{"epoch": 2, "train_acc": -5}', '{"epoch": 2, "train_loss": NaN, "test_acc": 40.0}',
    '{"epoch": 2, "test_acc": "40"}', '{"epoch": NaN}', '[1, 2]'])
def test_impossible_metrics_lines_are_skipped_with_a_warning(tmp_path: Path, smoke_jobs, line: str) -> None:
    results = tmp_path / "results"
    job = smoke_jobs[0]
    _write_runs(results, [job])
    metrics = results / "runs" / job.run_id / "metrics.jsonl"
    rows = metrics.read_text().splitlines()
    rows[1] = line
    metrics.write_text("\n".join(rows) + "\n")
    stats = ingest(results, results / DB_NAME)
    assert stats.done == 1
    assert len(stats.problems) == 1 and "line 2 skipped" in stats.problems[0].reason
    epochs = Results(results, refresh=False).epochs()
    assert list(epochs["epoch"]) == [1, 3, 4, 5]


def test_check_epoch_types() -> None:
    epoch, values = check_epoch({"epoch": 3, "test_acc": 50, "lr": 0.1}, ("test_acc", "lr", "val_acc"))
    assert epoch == 3 and values == [50.0, 0.1, None]
    with pytest.raises(InvalidRecord, match="test_acc"):
        check_epoch({"epoch": 3, "test_acc": float("nan")}, ("test_acc",))
