"""Trackers (vrbench.tracking): TensorBoard event files read back with TensorBoard's own reader, a W&B offline run
read back with W&B's own record reader, an MLflow file store read back with MLflow's client, and a tracker that
fails, which must leave the job's result exactly as it is without trackers. Each job is a real one: padding + ILM
on the packaged EfficientNet-Lite0 and 64 digits, three epochs (about 5 s)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import run_cli, run_killed_after_first_checkpoint
from vrbench.engine.loop import run_job
from vrbench.errors import ConfigError
from vrbench.store.rundir import read_json, run_dir, write_config
from vrbench.store.scan import scan_runs
from vrbench.suite import parse_suite
from vrbench.tracking import (
    TRACKERS,
    RunInfo,
    Tracker,
    TrackerInfo,
    missing_packages,
    resolve_trackers,
    start_tracking,
    tracking_session,
)

TINY = """
name: tracked
grid: {input: padding, mapping: ilm, backbone: efficientnet_lite0, dataset: digits, seed: 0}
defaults: {epochs: 3, batch_size: 32, subset: {train: 64, test: 40}, canvas: 64, milestones: []}
"""


class RaisingTracker(Tracker):
    """A tracker whose service breaks in the middle of a run (after the first epoch)."""

    def start(self, info: RunInfo, saved: Any | None) -> None:
        self.epochs = 0

    def log_epoch(self, row: dict[str, Any]) -> None:
        self.epochs += 1
        if self.epochs == 2:
            raise ConnectionError("the tracking server went away")

    def finish(self, result: dict[str, Any] | None) -> None:
        raise AssertionError("a dropped tracker is never called again")


if "raising" not in TRACKERS:
    TRACKERS.register("raising", TrackerInfo("raising", f"{__name__}:RaisingTracker", "json", "-"))


def run_tiny(root: Path, trackers: list[str] | None, suite: str = TINY) -> tuple[Path, dict[str, Any]]:
    (spec,) = parse_suite(suite).jobs
    directory = run_dir(root, spec.run_id)
    runtime: dict[str, Any] = {"device": "cpu", "threads": 1, "suite": "tracked"}
    if trackers is not None:
        runtime["trackers"] = trackers
    write_config(directory, spec.run_id, spec.method, spec.config, runtime)
    return directory, run_job(directory)


def tensorboard_scalars(directory: Path) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(directory))
    events.Reload()
    return {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


def curve(directory: Path, key: str) -> list[tuple[int, float]]:
    rows = [json.loads(line) for line in (directory / "metrics.jsonl").read_text().splitlines()]
    return [(row["epoch"], pytest.approx(row[key])) for row in rows]


def test_every_job_writes_tensorboard_curves_and_hparams_by_default(tmp_path: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    directory, result = run_tiny(tmp_path / "results", trackers=None)  # no `trackers` key: the default
    scalars = tensorboard_scalars(directory)
    assert scalars["accuracy/test"] == curve(directory, "test_acc")
    assert scalars["loss/train"] == curve(directory, "train_loss")
    assert scalars["lr"] == curve(directory, "lr")
    assert set(scalars) >= {"accuracy/train", "time/epoch_seconds", "result/final_acc", "result/best_test_acc"}
    assert "accuracy/val" not in scalars  # no validation split: nothing is invented
    assert scalars["result/final_acc"] == [(3, pytest.approx(result["final_acc"]))]
    events = EventAccumulator(str(directory))
    events.Reload()
    content = events.PluginTagToContent("hparams")["_hparams_/session_start_info"]
    hparams = plugin_data_pb2.HParamsPluginData.FromString(content).session_start_info.hparams
    assert hparams["dataset"].string_value == "digits" and hparams["lr"].number_value == 0.01
    assert hparams["run_id"].string_value == directory.name
    (events_file,) = directory.glob("events.out.tfevents.*")  # cost: bytes written, hparams once + 7 scalars/epoch
    assert events_file.stat().st_size < 2048 + 3 * 400
    # the index reads the run as before: event files are neither read nor a problem
    scan = scan_runs(directory.parent)
    assert [r.run_id for r in scan.records] == [directory.name] and not scan.problems


def test_a_linear_probe_job_without_epochs_logs_its_hyperparameters_and_result(tmp_path: Path) -> None:
    probe = """
name: probe
protocol: fewshot
grid: {method: linear_probe_clip, backbone: clip_tiny, dataset: digits, shots: 1, seed: 1}
"""
    directory, result = run_tiny(tmp_path / "results", trackers=None, suite=probe)
    assert tensorboard_scalars(directory)["result/final_acc"] == [(1, pytest.approx(result["final_acc"]))]


def test_tracker_none_writes_no_event_file(tmp_path: Path) -> None:
    directory, _ = run_tiny(tmp_path / "results", trackers=[])
    assert not list(directory.glob("events.out.tfevents.*"))


@pytest.mark.slow
def test_a_killed_and_resumed_job_continues_its_tensorboard_curves_without_repeated_steps(tmp_path: Path) -> None:
    suite = tmp_path / "suite.yaml"
    suite.write_text(TINY.replace("epochs: 3", "epochs: 4"))
    (job,) = parse_suite(suite.read_text()).jobs
    results = tmp_path / "results"
    run_killed_after_first_checkpoint(suite, results, job.run_id, tmp_path)
    resumed = run_cli("run", str(suite), "--results", str(results), "--threads", "1", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    directory = results / "runs" / job.run_id
    assert read_json(directory / "result.json")["resumed_at_epochs"]
    assert len(list(directory.glob("events.out.tfevents.*"))) == 2  # one per process
    scalars = tensorboard_scalars(directory)
    assert scalars["accuracy/test"] == curve(directory, "test_acc")  # epochs 1-4, each once
    assert [step for step, _ in scalars["loss/train"]] == [1, 2, 3, 4]


def test_a_wandb_offline_run_holds_the_jobs_config_and_metrics(tmp_path: Path, monkeypatch) -> None:
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "wandb_dir"))
    monkeypatch.setenv("WANDB_SILENT", "true")
    directory, result = run_tiny(tmp_path / "results", trackers=["tensorboard", "wandb"])
    (record,) = (tmp_path / "wandb_dir").glob("wandb/offline-run-*/run-*.wandb")
    saved = read_json(directory / "tracking.json")["wandb"]
    assert record.name == f"run-{saved}.wandb"
    wandb_cli = Path(sys.executable).with_name("wandb")
    summary = json.loads(subprocess.run([str(wandb_cli), "leet", "inspect", "--summary", "--json", str(record)],
                                        capture_output=True, text=True, check=True, timeout=120).stdout)
    assert summary["config"]["dataset"] == "digits" and summary["config"]["run_id"] == directory.name
    assert summary["config"]["suite"] == "tracked" and summary["state"] == "finished"
    assert summary["summary"]["result/final_acc"] == pytest.approx(result["final_acc"])
    lines = subprocess.run([str(wandb_cli), "leet", "inspect", "--json", str(record)], capture_output=True,
                           text=True, check=True, timeout=120).stdout.splitlines()
    records = [json.loads(line) for line in lines]
    (run,) = [r["run"] for r in records if r["type"] == "run"]
    assert run["run_group"] == "tracked"
    history = [r["history"]["item"] for r in records if r["type"] == "history"]
    assert [(h["epoch"], pytest.approx(h["accuracy/test"])) for h in history] == curve(directory, "test_acc")
    assert not _children_named("wandb-core"), "W&B's service must end with the job"


def _children_named(name: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == os.getpid() and name in stat:
                found.append(int(entry.name))
    return found


def test_an_mlflow_file_store_run_holds_the_jobs_config_and_metrics(tmp_path: Path, monkeypatch) -> None:
    mlflow = pytest.importorskip("mlflow")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    results = tmp_path / "results"
    directory, result = run_tiny(results, trackers=["mlflow"])
    client = mlflow.MlflowClient(tracking_uri=(results / "mlruns").as_uri())
    experiment = client.get_experiment_by_name("tracked")
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.run_id == read_json(directory / "tracking.json")["mlflow"]
    assert run.info.status == "FINISHED" and run.data.tags["vrbench.run_id"] == directory.name
    assert run.data.params["dataset"] == "digits" and run.data.params["epochs"] == "3"
    history = client.get_metric_history(run.info.run_id, "accuracy/test")
    assert sorted((m.step, m.value) for m in history) == curve(directory, "test_acc")
    assert run.data.metrics["result/best_test_acc"] == pytest.approx(result["best_test_acc"])
    assert not list(directory.glob("events.out.tfevents.*"))  # only what was asked for


def test_a_job_that_fails_closes_its_tracker_runs_as_failed(tmp_path: Path, monkeypatch) -> None:
    mlflow = pytest.importorskip("mlflow")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    (spec,) = parse_suite(TINY).jobs
    results = tmp_path / "results"
    directory = run_dir(results, spec.run_id)
    write_config(directory, spec.run_id, spec.method, spec.config, {"trackers": ["tensorboard", "mlflow"],
                                                                    "suite": "tracked"})
    row = {"epoch": 1, "train_loss": 2.0, "train_acc": 10.0, "val_acc": None, "test_acc": 12.5, "lr": 0.01,
           "seconds": 1.0}
    with pytest.raises(FloatingPointError), tracking_session():  # as run_job wraps a job
        start_tracking(directory, []).log_epoch(row)
        raise FloatingPointError("the loss is nan at epoch 2")
    client = mlflow.MlflowClient(tracking_uri=(results / "mlruns").as_uri())
    run = client.get_run(read_json(directory / "tracking.json")["mlflow"])
    assert run.info.status == "FAILED" and run.data.metrics["accuracy/test"] == 12.5
    assert tensorboard_scalars(directory)["accuracy/test"] == [(1, 12.5)]  # the writer was closed, all flushed


def test_a_tracker_that_fails_warns_once_and_leaves_the_result_untouched(tmp_path: Path, capsys, monkeypatch) -> None:
    plain, plain_result = run_tiny(tmp_path / "plain", trackers=[])
    monkeypatch.setitem(sys.modules, "mlflow", None)  # as if not installed: importing it raises ImportError
    tracked, tracked_result = run_tiny(tmp_path / "tracked", trackers=["tensorboard", "raising", "mlflow"])
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 2, warnings
    assert "mlflow tracker failed (ModuleNotFoundError" in warnings[0] and 'vrbench[mlflow]' in warnings[0]
    assert "raising tracker failed (ConnectionError: the tracking server went away)" in warnings[1]
    ignore = {"finished_at", "train_seconds", "init_seconds"}
    assert {k: v for k, v in tracked_result.items() if k not in ignore} == \
        {k: v for k, v in plain_result.items() if k not in ignore}
    assert curve(tracked, "test_acc") == curve(plain, "test_acc")
    assert tensorboard_scalars(tracked)["accuracy/test"] == curve(tracked, "test_acc")  # the others go on


def test_tracker_names_are_validated_in_suites_and_on_the_command_line(tmp_path: Path) -> None:
    assert parse_suite(TINY + "tracker: wandb\n").trackers == ["wandb"]
    assert parse_suite(TINY + "tracker: [wandb, mlflow]\n").trackers == ["wandb", "mlflow"]
    with pytest.raises(ConfigError, match=r"<suite>:5: unknown tracker 'wandbb'. Did you mean 'wandb'\?"):
        parse_suite(TINY + "tracker: wandbb\n")
    assert resolve_trackers(["wandb"], ["mlflow", "wandb"]) == ["tensorboard", "wandb", "mlflow"]
    assert resolve_trackers(None, None) == ["tensorboard"]
    assert resolve_trackers(["wandb"], ["none"]) == []
    if "absent" not in TRACKERS:
        TRACKERS.register("absent", TrackerInfo("absent", f"{__name__}:RaisingTracker", "no_such_module",
                                                "pip install x"))
    assert missing_packages(["tensorboard", "absent"]) == [
        "the absent tracker needs the no_such_module package, which is not installed: jobs run without it "
        "(pip install x)"]
    suite = tmp_path / "suite.yaml"
    suite.write_text(TINY)
    bad = run_cli("run", str(suite), "--results", str(tmp_path / "r"), "--tracker", "tensorbord", cwd=tmp_path)
    assert bad.returncode == 2 and "unknown tracker 'tensorbord'. Did you mean 'tensorboard'?" in bad.stderr
    assert not (tmp_path / "r" / "runs").exists()
