"""MLflow: one MLflow run per job in an experiment named after the suite (``vrbench run SUITE --tracker mlflow``).

The store is $MLFLOW_TRACKING_URI when set (a server, a database), else a local file store in ``results/mlruns``
(``mlflow ui --backend-store-uri results/mlruns`` shows it). Parameters are the job's hyperparameters, metrics are
logged per epoch with the epoch as step, and the run ends FINISHED or FAILED. A resumed job reopens the same MLflow
run (its id is kept in the run directory's tracking.json). Works with ``mlflow`` or the lighter ``mlflow-skinny``.
"""

from __future__ import annotations

import os
import time
from typing import Any

from vrbench.tracking import RunInfo, Tracker, epoch_metrics, result_metrics

PARAM_LIMIT = 6000  # MLflow's longest parameter value; longer values (long lists) are cut


class MlflowTracker(Tracker):
    def start(self, info: RunInfo, saved: Any | None) -> str:
        from mlflow import MlflowClient
        from mlflow.entities import Param

        uri = os.environ.get("MLFLOW_TRACKING_URI")
        if not uri:  # the file store is in "maintenance mode" since MLflow 3; it still is the one that needs nothing
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
            uri = (info.results_root / "mlruns").resolve().as_uri()
        self.client = MlflowClient(tracking_uri=uri)
        if isinstance(saved, str) and saved:
            try:
                self.client.update_run(saved, status="RUNNING")
                self.run_id = saved
                return saved
            except Exception:  # noqa: BLE001 - not in this store (MLFLOW_TRACKING_URI changed): start a new run
                pass
        run = self.client.create_run(self._experiment(info.suite), run_name=info.label,
                                     tags={"vrbench.run_id": info.run_id, "vrbench.suite": info.suite,
                                           "vrbench.method": info.method})
        self.run_id = run.info.run_id
        params = [Param(key, str(value)[:PARAM_LIMIT]) for key, value in info.hyperparameters().items()]
        for start in range(0, len(params), 100):  # MLflow's batch limit for parameters
            self.client.log_batch(self.run_id, params=params[start:start + 100])
        return self.run_id

    def _experiment(self, name: str) -> str:
        found = self.client.get_experiment_by_name(name)
        if found is not None:
            return found.experiment_id
        try:
            return self.client.create_experiment(name)
        except Exception:  # noqa: BLE001 - another worker created it first
            found = self.client.get_experiment_by_name(name)
            if found is None:
                raise
            return found.experiment_id

    def _log(self, metrics: dict[str, float], step: int) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self.client.log_batch(self.run_id, metrics=[Metric(tag, value, now, step) for tag, value in metrics.items()])

    def log_epoch(self, row: dict[str, Any]) -> None:
        self._log(epoch_metrics(row), row["epoch"])

    def finish(self, result: dict[str, Any] | None) -> None:
        if result is not None:
            self._log(result_metrics(result), max(1, int(result.get("epochs") or 0)))
        self.client.set_terminated(self.run_id, "FINISHED" if result is not None else "FAILED")
