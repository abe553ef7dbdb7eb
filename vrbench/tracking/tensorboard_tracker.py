"""TensorBoard event files in the run directory (the default tracker), through torch.utils.tensorboard.

Each process that works on a job writes one event file (``events.out.tfevents.<time>.<host>.<pid>.<n>``) into
``runs/<run_id>/``, so ``tensorboard --logdir results/runs`` lists every run by its id. Epoch e is step e. A fresh
job writes its hyperparameters once (the HParams dashboard); a resumed one opens its writer with
``purge_step=start`` and logs the checkpoint's last epoch again, so an epoch logged after its checkpoint by a
process that was then killed is replaced, one killed before logging it is filled in, and no step appears twice
(TensorBoard's readers drop the earlier files' events at or after the purge step).

Cost: seven scalars per epoch, flushed once per epoch (one small write; the writer's thread does it).
"""

from __future__ import annotations

from typing import Any

from vrbench.tracking import RunInfo, Tracker, epoch_metrics, result_metrics

HPARAM_METRICS = ("accuracy/test", "result/final_acc", "result/best_test_acc")


class TensorBoardTracker(Tracker):
    def start(self, info: RunInfo, saved: Any | None) -> None:
        from torch.utils.tensorboard import SummaryWriter
        from torch.utils.tensorboard.summary import hparams

        resumed = info.start_epoch > 0
        self.writer = SummaryWriter(log_dir=str(info.directory), purge_step=info.start_epoch if resumed else None,
                                    max_queue=64, flush_secs=600)
        if resumed:
            self.log_epoch(info.history[-1])
            return None
        for summary in hparams(info.hyperparameters(), {tag: 0.0 for tag in HPARAM_METRICS}):
            self.writer.file_writer.add_summary(summary)
        self.writer.flush()
        return None

    def log_epoch(self, row: dict[str, Any]) -> None:
        for tag, value in epoch_metrics(row).items():
            self.writer.add_scalar(tag, value, global_step=row["epoch"])
        self.writer.flush()  # a job killed later keeps this epoch's curve points

    def finish(self, result: dict[str, Any] | None) -> None:
        if result is not None:
            step = max(1, int(result.get("epochs") or 0))
            for tag, value in result_metrics(result).items():
                self.writer.add_scalar(tag, value, global_step=step)
        self.writer.close()
