"""Weights & Biases: one W&B run per job, grouped by suite (``vrbench run SUITE --tracker wandb``).

The project is $WANDB_PROJECT (default "vrbench"), the group the suite's name, the run name a readable label and the
config the job's hyperparameters (run id included). W&B's own environment applies: WANDB_MODE=offline writes the
run under $WANDB_DIR (default: the results directory) for a later ``wandb sync``. A resumed job continues the same
W&B run (its id is kept in the run directory's tracking.json) from the epoch after its checkpoint. The console is
not captured (worker.log stays vrbench's own).
"""

from __future__ import annotations

import os
import uuid
from typing import Any

from vrbench.tracking import RunInfo, Tracker, epoch_metrics, result_metrics


class WandbTracker(Tracker):
    def start(self, info: RunInfo, saved: Any | None) -> str:
        import wandb

        run_id = saved if isinstance(saved, str) and saved else uuid.uuid4().hex[:12]
        self.run = wandb.init(
            project=os.environ.get("WANDB_PROJECT") or "vrbench", group=info.suite, name=info.label,
            job_type=info.method or None, id=run_id, resume="allow", config=info.hyperparameters(),
            dir=os.environ.get("WANDB_DIR") or str(info.results_root),
            settings=wandb.Settings(console="off", silent=True, x_disable_stats=True))
        self.run.define_metric("*", step_metric="epoch")
        return run_id

    def log_epoch(self, row: dict[str, Any]) -> None:
        self.run.log({**epoch_metrics(row), "epoch": row["epoch"]})

    def finish(self, result: dict[str, Any] | None) -> None:
        import wandb

        if result is not None:
            self.run.summary.update(result_metrics(result))
        self.run.finish(exit_code=0 if result is not None else 1)
        wandb.teardown()  # ends W&B's service process with the job
