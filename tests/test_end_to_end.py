"""End-to-end: the real CLI, real EfficientNet-Lite0 weights, real loaders, real DuckDB.

These train tiny jobs for real, so they are marked slow; CI runs them.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest
import torch

from tests.conftest import run_cli, run_killed_after_first_checkpoint
from vrbench.suite import load_suite

pytestmark = pytest.mark.slow

CIFAR_SUITE = """
name: e2e-cifar
grid:
  input: padding
  mapping: [rlm, flm, ilm, blm, blmpp]
  backbone: efficientnet_lite0
  dataset: cifar10
  seed: 0
defaults: {epochs: 2, batch_size: 20, subset: {train: 60, test: 40}, canvas: 64, milestones: []}
"""


def write_suite(tmp_path: Path, text: str, name: str = "suite.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def result_of(results: Path, run_id: str) -> dict:
    return json.loads((results / "runs" / run_id / "result.json").read_text())


def test_cifar_format_smoke_suite_runs_ingests_reports_and_skips_on_rerun(tmp_path: Path, cifar_root: Path) -> None:
    suite = write_suite(tmp_path, CIFAR_SUITE)
    results = tmp_path / "results"
    first = run_cli("run", str(suite), "--results", str(results), "--data-root", str(cifar_root), cwd=tmp_path)
    assert first.returncode == 0, first.stdout + first.stderr
    jobs = load_suite(suite).jobs
    assert len(jobs) == 5
    for job in jobs:
        result = result_of(results, job.run_id)
        assert result["epochs"] == 2 and 0 <= result["final_acc"] <= 100
        assert result["best_test_acc"] >= result["final_acc"]
        assert result["trainable_params"] == 3 * 64 * 64
        lines = (results / "runs" / job.run_id / "metrics.jsonl").read_text().splitlines()
        assert [json.loads(line)["epoch"] for line in lines] == [1, 2]
        env = json.loads((results / "runs" / job.run_id / "env.json").read_text())
        assert env["device"] == "cpu" and env["precision"] == "fp32"
        # what decides the CPU kernels' rounding, so that two machines' different numbers can be explained
        assert env["cpu_capability"] == torch.backends.cpu.get_cpu_capability() and env["device_name"]
    with duckdb.connect(str(results / "vrbench.duckdb"), read_only=True) as con:
        assert con.execute("select count(*) from runs where status = 'done'").fetchone()[0] == 5
        assert con.execute("select count(*) from epochs").fetchone()[0] == 10

    report = run_cli("report", "--results", str(results), "--suite", str(suite), "--out", str(tmp_path / "rep"),
                     cwd=tmp_path)
    assert report.returncode == 0, report.stderr
    text = (tmp_path / "rep" / "index.md").read_text()
    for mapping in ("rlm", "flm", "ilm", "blm", "blmpp"):
        assert f"padding+{mapping}" in text
    assert "cifar10" in text

    again = run_cli("run", str(suite), "--results", str(results), "--data-root", str(cifar_root), cwd=tmp_path)
    assert again.returncode == 0
    assert "0 ran, 5 already done" in again.stdout
    for job in jobs:
        log = (results / "runs" / job.run_id / "worker.log").read_text()
        assert log.count("worker started") == 1


def test_missing_data_stops_the_run_before_any_job_starts(tmp_path: Path) -> None:
    suite = write_suite(tmp_path, """
name: no-data
grid: {input: padding, mapping: flm, backbone: efficientnet_lite0, dataset: [cifar10, digits], seed: 0}
defaults: {epochs: 1, batch_size: 32, subset: {train: 40, test: 40}, canvas: 48}
""")
    results = tmp_path / "results"
    run = run_cli("run", str(suite), "--results", str(results), "--data-root", str(tmp_path / "nothing"),
                  cwd=tmp_path)
    assert run.returncode == 2
    assert "not ready" in run.stderr and "cifar10" in run.stderr and "Traceback" not in run.stderr
    assert not (results / "runs").exists()


def test_damaged_data_is_reported_by_the_preflight_check_not_a_traceback(tmp_path: Path, cifar_root: Path) -> None:
    suite = write_suite(tmp_path, CIFAR_SUITE)
    batch = cifar_root / "cifar-10-batches-py" / "data_batch_1"
    batch.write_bytes(batch.read_bytes()[:100])  # truncated; checksums are off for this user-built copy
    run = run_cli("run", str(suite), "--results", str(tmp_path / "results"), "--data-root", str(cifar_root),
                  cwd=tmp_path)
    assert run.returncode == 2 and "Traceback" not in run.stderr
    assert "UnpicklingError" in run.stderr and "cifar10" in run.stderr


def test_a_failing_job_is_recorded_and_the_suite_goes_on(tmp_path: Path) -> None:
    suite = write_suite(tmp_path, """
name: half-broken
grid: {input: padding, mapping: flm, backbone: [resnet18, efficientnet_lite0], dataset: digits, seed: 0}
defaults: {epochs: 1, batch_size: 32, subset: {train: 40, test: 40}, canvas: 48}
""")
    # No ResNet-18 weights in this TORCH_HOME and no way to download them here: that job fails in its worker,
    # with the message saying what to fetch; the EfficientNet job still runs.
    results = tmp_path / "results"
    run = run_cli("run", str(suite), "--results", str(results), cwd=tmp_path,
                  env={"TORCH_HOME": str(tmp_path / "torch-home")})
    assert run.returncode == 1, run.stdout + run.stderr
    resnet_job, lite_job = load_suite(suite).jobs
    assert (results / "runs" / lite_job.run_id / "result.json").exists()
    error = json.loads((results / "runs" / resnet_job.run_id / "error.json").read_text())
    assert error["error_type"] == "MissingResourceError" and "Traceback" in error["traceback"]
    assert "resnet18" in error["message"]
    status = run_cli("status", str(suite), "--results", str(results), cwd=tmp_path)
    assert "failed" in status.stdout and "MissingResourceError" in status.stdout
    assert "done" in status.stdout


DIGITS_ONE_JOB = """
name: resume
grid: {input: padding, mapping: ilm, backbone: efficientnet_lite0, dataset: digits, seed: 3}
defaults: {epochs: 4, batch_size: 16, subset: {train: 160, test: 60}, canvas: 64, milestones: [0.5]}
"""


def test_a_worker_killed_mid_job_resumes_from_its_checkpoint_with_identical_numbers(tmp_path: Path) -> None:
    suite = write_suite(tmp_path, DIGITS_ONE_JOB)
    (job,) = load_suite(suite).jobs

    reference = tmp_path / "uninterrupted"
    assert run_cli("run", str(suite), "--results", str(reference), "--threads", "1", cwd=tmp_path).returncode == 0

    results = tmp_path / "killed"
    directory = results / "runs" / job.run_id
    run_killed_after_first_checkpoint(suite, results, job.run_id, tmp_path)
    status = run_cli("status", str(suite), "--results", str(results), cwd=tmp_path)
    assert "failed" in status.stdout and "SIGKILL" in status.stdout

    resumed = run_cli("run", str(suite), "--results", str(results), "--threads", "1", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    ours, theirs = result_of(results, job.run_id), result_of(reference, job.run_id)
    assert ours["resumed_at_epochs"], "the re-run should have resumed from the checkpoint"
    assert 1 <= ours["resumed_at_epochs"][0] < 4
    for key in ("final_acc", "best_test_acc", "best_test_epoch", "epochs"):
        assert ours[key] == theirs[key], key

    def curve(root: Path) -> list[tuple]:
        rows = [json.loads(line) for line in (root / "runs" / job.run_id / "metrics.jsonl").read_text().splitlines()]
        return [(r["epoch"], r["train_loss"], r["train_acc"], r["test_acc"], r["lr"]) for r in rows]

    assert curve(results) == curve(reference)
    mapping = json.loads((directory / "mapping.json").read_text())
    assert mapping == json.loads((reference / "runs" / job.run_id / "mapping.json").read_text())


def test_two_runs_on_one_results_directory_never_run_a_job_twice(tmp_path: Path) -> None:
    suite = write_suite(tmp_path, """
name: shared
grid: {input: padding, mapping: [rlm, flm], backbone: efficientnet_lite0, dataset: digits, seed: [0, 1]}
defaults: {epochs: 1, batch_size: 32, subset: {train: 64, test: 40}, canvas: 48}
""")
    results = tmp_path / "results"
    command = [sys.executable, "-m", "vrbench.cli", "run", str(suite), "--results", str(results), "--threads", "1"]
    first = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    second = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    outputs = [p.communicate(timeout=600)[0] for p in (first, second)]
    assert first.returncode == 0 and second.returncode == 0, outputs
    for job in load_suite(suite).jobs:
        directory = results / "runs" / job.run_id
        assert (directory / "result.json").exists()
        assert (directory / "worker.log").read_text().count("worker started") == 1
        assert not (directory / "claim.json").exists()
    ran = sum(int(out.split("finished: ")[1].split(" ran")[0]) for out in outputs)
    assert ran == 4, outputs


def test_corrupted_files_are_set_aside_or_explained_never_deleted(tmp_path: Path) -> None:
    suite = write_suite(tmp_path, """
name: corrupt
grid: {input: padding, mapping: blm, backbone: efficientnet_lite0, dataset: digits, seed: 0}
defaults: {epochs: 1, batch_size: 32, subset: {train: 64, test: 40}, canvas: 48}
""")
    results = tmp_path / "results"
    (job,) = load_suite(suite).jobs
    directory = results / "runs" / job.run_id
    assert run_cli("run", str(suite), "--results", str(results), cwd=tmp_path).returncode == 0
    original = result_of(results, job.run_id)

    (directory / "result.json").write_text('{"run_id": "trunc')  # a truncated result file
    rerun = run_cli("run", str(suite), "--results", str(results), cwd=tmp_path)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert "corrupt" in rerun.stdout
    kept = list(directory.glob("result.json.corrupt-*"))
    assert len(kept) == 1 and kept[0].read_text() == '{"run_id": "trunc'
    restored = result_of(results, job.run_id)  # rebuilt from the final checkpoint, same numbers
    assert restored["final_acc"] == original["final_acc"]

    (directory / "result.json").unlink()
    (directory / "checkpoint.pt").write_bytes(b"not a checkpoint")
    broken = run_cli("run", str(suite), "--results", str(results), cwd=tmp_path)
    assert broken.returncode == 1
    error = json.loads((directory / "error.json").read_text())
    assert error["error_type"] == "ResultsError" and "checkpoint.pt is unreadable" in error["message"]
    assert (directory / "checkpoint.pt").read_bytes() == b"not a checkpoint"  # nothing deleted
