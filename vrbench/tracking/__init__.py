"""Experiment trackers: TensorBoard by default, W&B and MLflow on request, behind one small interface.

The training loop (vrbench.engine.loop.Job.run) makes three calls and knows nothing else: ``start_tracking`` once
the checkpoint is loaded, ``Tracking.log_epoch`` after each epoch's checkpoint and metrics.jsonl are written, and
``Tracking.finish`` after result.json. Which trackers run is the job's ``runtime.trackers`` (config.json's non-hashed
part, from ``vrbench run --tracker`` and the suite's ``tracker:``), so turning one on never changes a run id.

A tracker is a side channel: one that fails (its package missing, not logged in, no network, an exception in the
middle of a run) prints one warning to worker.log and is dropped for the rest of that run; the job and its files
never notice. Trackers are a registry (``TRACKERS``); this module imports neither torch nor any tracker package,
so suites and the CLI can validate tracker names cheaply.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vrbench.registry import Registry, load_object

DEFAULT_TRACKERS = ("tensorboard",)
NONE = "none"  # `--tracker none`: no tracker at all, TensorBoard included
STATE_FILE = "tracking.json"  # the external run id of each tracker, so a resumed job continues the same run

# metrics.jsonl field -> the tag every tracker logs it under (TensorBoard groups tags by their prefix)
METRIC_TAGS = {
    "train_loss": "loss/train",
    "train_acc": "accuracy/train",
    "test_acc": "accuracy/test",
    "val_acc": "accuracy/val",
    "lr": "lr",
    "seconds": "time/epoch_seconds",
}
# result.json field -> tag, logged once when the job is done
RESULT_TAGS = {"final_acc": "result/final_acc", "best_test_acc": "result/best_test_acc",
               "best_val_acc": "result/best_val_acc"}


@dataclass(frozen=True)
class TrackerInfo:
    """A tracker's registry entry: where its class lives and what to install for it."""

    name: str
    implementation: str  # "module:Class", imported in the worker only
    package: str  # the import name checked before a run (find_spec: nothing is imported)
    install: str  # what to tell a user who lacks it
    description: str = ""


TRACKERS: Registry[TrackerInfo] = Registry("tracker", paths=("implementation",))
TRACKERS.register("tensorboard", TrackerInfo(
    "tensorboard", "vrbench.tracking.tensorboard_tracker:TensorBoardTracker", "tensorboard",
    "pip install tensorboard", "event files in each run directory (tensorboard --logdir results/runs)"))
TRACKERS.register("wandb", TrackerInfo(
    "wandb", "vrbench.tracking.wandb_tracker:WandbTracker", "wandb", 'pip install "vrbench[wandb]"',
    "one W&B run per job, grouped by suite (WANDB_MODE=offline works without network)"))
TRACKERS.register("mlflow", TrackerInfo(
    "mlflow", "vrbench.tracking.mlflow_tracker:MlflowTracker", "mlflow", 'pip install "vrbench[mlflow]"',
    "one MLflow run per job in an experiment named after the suite ($MLFLOW_TRACKING_URI, else results/mlruns)"))


def resolve_trackers(*requests: list[str] | tuple[str, ...] | None) -> list[str]:
    """The trackers a run uses: TensorBoard plus every one requested (suite, command line), in order, once each;
    ``none`` among the requests means none at all. Unknown names are a ConfigError that suggests the closest."""
    names = [name for request in requests for name in (request or [])]
    for name in names:
        if name != NONE:
            TRACKERS.get(name)
    if NONE in names:
        return []
    return list(dict.fromkeys([*DEFAULT_TRACKERS, *names]))


def missing_packages(names: list[str]) -> list[str]:
    """One line per requested tracker whose package is not installed (checked without importing it)."""
    lines = []
    for name in names:
        info = TRACKERS.get(name)
        if importlib.util.find_spec(info.package) is None:
            lines.append(f"the {name} tracker needs the {info.package} package, which is not installed: jobs run "
                         f"without it ({info.install})")
    return lines


@dataclass
class RunInfo:
    """What a tracker knows about the job it follows."""

    directory: Path
    run_id: str
    method: str
    config: dict[str, Any]
    suite: str
    start_epoch: int  # 0 for a fresh job; the checkpoint's epoch for a resumed one
    history: list[dict[str, Any]] = field(default_factory=list)  # the epochs done before this process started

    @property
    def results_root(self) -> Path:
        return self.directory.parent.parent

    @property
    def label(self) -> str:
        """A readable run name: method, backbone, dataset, shots, seed (the run id stays the identity)."""
        c = self.config
        shots = f" {c['shots']}-shot" if c.get("shots") else ""
        return f"{self.method} {c.get('backbone', '')} {c.get('dataset', '')}{shots} seed {c.get('seed', '')}".strip()

    def hyperparameters(self) -> dict[str, str | int | float | bool]:
        """The job's config as flat scalars (what TensorBoard's HParams, W&B and MLflow all accept)."""
        flat: dict[str, str | int | float | bool] = {"method": self.method, "suite": self.suite, "run_id": self.run_id}
        for key, value in sorted(self.config.items()):
            flat[key] = value if isinstance(value, (str, int, float, bool)) else json.dumps(value, sort_keys=True)
        return flat


def epoch_metrics(row: dict[str, Any]) -> dict[str, float]:
    """A metrics.jsonl row as {tag: value}, without the fields this epoch did not measure (None)."""
    return {tag: float(row[key]) for key, tag in METRIC_TAGS.items() if row.get(key) is not None}


def result_metrics(result: dict[str, Any]) -> dict[str, float]:
    return {tag: float(result[key]) for key, tag in RESULT_TAGS.items() if result.get(key) is not None}


class Tracker:
    """One tracker following one job. ``start`` returns what must be kept to continue the same external run after
    a resume (a W&B or MLflow run id; saved in tracking.json), or None."""

    def start(self, info: RunInfo, saved: Any | None) -> Any | None:
        raise NotImplementedError

    def log_epoch(self, row: dict[str, Any]) -> None:
        raise NotImplementedError

    def finish(self, result: dict[str, Any] | None) -> None:
        """``result`` is result.json, or None when the job failed."""
        raise NotImplementedError


class Tracking:
    """The trackers of one job, each isolated: the first exception of one is a warning and drops that tracker."""

    def __init__(self, info: RunInfo, names: list[str]) -> None:
        self.info = info
        self.active: dict[str, Tracker] = {}
        self.warnings: list[str] = []
        saved = _read_state(info.directory)
        state = dict(saved)
        for name in names:
            tracker = self._call(name, lambda name=name: load_object(TRACKERS.get(name).implementation)())
            if tracker is None:
                continue
            self.active[name] = tracker
            handle = self._call(name, lambda t=tracker, name=name: t.start(info, saved.get(name)))
            if name in self.active and handle is not None:
                state[name] = handle
        if state != saved:
            with contextlib.suppress(OSError):  # losing it only means a resumed job starts a new external run
                from vrbench.store.rundir import atomic_write_json

                atomic_write_json(info.directory / STATE_FILE, state)

    def _call(self, name: str, action):
        try:
            return action()
        except Exception as exc:  # noqa: BLE001 - a tracker must never end the job
            self.active.pop(name, None)
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            message = (f"warning: the {name} tracker failed ({type(exc).__name__}: {first}); this run goes on "
                       f"without it")
            if isinstance(exc, ImportError):
                message += f" ({TRACKERS.get(name).install})"
            self.warnings.append(message)
            with contextlib.suppress(OSError, ValueError):
                print(message, file=sys.stderr, flush=True)
            return None

    def log_epoch(self, row: dict[str, Any]) -> None:
        for name, tracker in list(self.active.items()):
            self._call(name, lambda t=tracker: t.log_epoch(row))

    def finish(self, result: dict[str, Any] | None) -> None:
        for name, tracker in list(self.active.items()):
            self._call(name, lambda t=tracker: t.finish(result))
        self.active.clear()
        _OPEN.discard(self)


_OPEN: set[Tracking] = set()  # the trackings of jobs still running in this process (closed on failure)


def start_tracking(directory: Path, history: list[dict[str, Any]]) -> Tracking:
    """The trackers of the job in ``directory`` (its config.json says which), started at ``len(history)`` epochs."""
    from vrbench.store.rundir import CONFIG, read_json

    meta = read_json(directory / CONFIG)
    runtime = meta.get("runtime") or {}
    names = runtime.get("trackers", list(DEFAULT_TRACKERS))
    info = RunInfo(directory, meta["run_id"], meta.get("method", ""), meta["config"],
                   runtime.get("suite") or "vrbench", len(history), list(history))
    tracking = Tracking(info, names)
    _OPEN.add(tracking)
    return tracking


@contextlib.contextmanager
def tracking_session() -> Iterator[None]:
    """Around a job: trackers the job left open because it failed are closed as failed runs."""
    try:
        yield
    except BaseException:
        for tracking in list(_OPEN):
            tracking.finish(None)
        raise


def _read_state(directory: Path) -> dict[str, Any]:
    try:
        state = json.loads((directory / STATE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return state if isinstance(state, dict) else {}
