"""The live view of a suite run: job counts plus the current jobs' epoch, loss and accuracy.

On a terminal it is a rich Live table; elsewhere (CI, log files) one plain line per event.
"""

from __future__ import annotations

from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table

from vrbench.jobs import JobSpec
from vrbench.terminal import literal


class RunDisplay:
    def __init__(self, total: int, console: Console | None = None) -> None:
        self.console = console or Console()
        self.total = total
        self.counts = {"done": 0, "skipped": 0, "failed": 0, "elsewhere": 0}
        self.running: dict[str, tuple[JobSpec, dict[str, Any]]] = {}
        self.live: Live | None = None

    def __enter__(self) -> RunDisplay:
        if self.console.is_terminal:
            self.live = Live(self._render(), console=self.console, refresh_per_second=4, transient=False)
            self.live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.live is not None:
            self.live.update(self._render())
            self.live.__exit__(None, None, None)

    def __call__(self, event: str, job: JobSpec, info: dict[str, Any]) -> None:
        if event == "start":
            self.running[job.run_id] = (job, {})
            self._say(f"[cyan]start[/]  {job.run_id}  {literal(job.label())}")
        elif event == "progress":
            self.running[job.run_id] = (job, info)
        elif event in ("done", "failed"):
            self.running.pop(job.run_id, None)
            self.counts[event] += 1
            colour = "green" if event == "done" else "red"
            detail = f"  {literal(info['detail'])}" if info.get("detail") else ""
            self._say(f"[{colour}]{event:<6}[/] {job.run_id}  {literal(job.label())}{detail}")
        elif event == "elsewhere":
            self.counts["elsewhere"] += 1
            self._say(f"[yellow]busy[/]   {job.run_id}  {literal(job.label())}  (held by another live launcher or "
                      "Slurm job)")
        elif event == "skipped":
            self.counts["skipped"] += 1
        elif event == "corrupt":
            self._say(f"[yellow]corrupt[/] {job.run_id}  {literal(info.get('detail', ''))}")
        if self.live is not None:
            self.live.update(self._render())

    def _say(self, message: str) -> None:
        self.console.print(message, highlight=False)

    def _render(self) -> Group:
        c = self.counts
        finished = c["done"] + c["skipped"] + c["failed"] + c["elsewhere"]
        pending = max(0, self.total - finished - len(self.running))
        header = (f"jobs: {self.total}  done {c['done'] + c['skipped']} (skipped {c['skipped']})  "
                  f"running {len(self.running)}  failed {c['failed']}  pending {pending}")
        table = Table(box=None, pad_edge=False)
        for column in ("job", "method", "backbone", "dataset", "seed", "phase", "epoch", "batch", "loss", "acc",
                       "test acc"):
            table.add_column(column)
        for run_id, (job, p) in self.running.items():
            c_ = job.config
            table.add_row(*map(literal, (
                run_id[:8], job.method, c_["backbone"], c_["dataset"], str(c_["seed"]), str(p.get("phase", "starting")),
                f"{p.get('epoch', 0)}/{c_['epochs']}", f"{p.get('batch', '-')}/{p.get('batches', '-')}",
                _fmt(p.get("loss"), 3), _fmt(p.get("acc"), 1), _fmt(p.get("test_acc"), 1))))
        return Group(header, table) if self.running else Group(header)


def _fmt(value: Any, digits: int) -> str:
    return f"{value:.{digits}f}" if isinstance(value, (int, float)) else "-"
