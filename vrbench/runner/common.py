"""What every executor shares: how a worker's end is explained and recorded, and the pending-job scan."""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vrbench.jobs import JobSpec
from vrbench.store.rundir import ERROR, LOG, RESULT, atomic_write_json, job_state, now_iso, run_dir, set_aside

Listener = Callable[[str, JobSpec, dict[str, Any]], None]


@dataclass
class RunSummary:
    done: list[str] = field(default_factory=list)  # finished by this invocation
    skipped: list[str] = field(default_factory=list)  # already done before
    failed: list[str] = field(default_factory=list)
    elsewhere: list[str] = field(default_factory=list)  # claimed by another live process or Slurm job
    submitted: list[str] = field(default_factory=list)  # handed to Slurm and not followed to the end (no --wait)
    interrupted: bool = False
    signal: int | None = None  # the signal that stopped the launcher (SIGINT for Ctrl-C), when interrupted
    disk_full: str | None = None  # the out-of-space message that stopped the run

    @property
    def ok(self) -> bool:
        return not self.failed and not self.interrupted and not self.disk_full


def worker_command(directory: Path) -> list[str]:
    """Absolute paths and this interpreter: the command must mean the same on a compute node."""
    return [sys.executable, "-m", "vrbench.worker", str(Path(directory).resolve())]


def pending_jobs(jobs: list[JobSpec], results: Path, listener: Listener, summary: RunSummary) -> list[JobSpec]:
    """Jobs without a readable result; a corrupt result.json is set aside (never deleted) and re-run."""
    pending = []
    for job in jobs:
        directory = run_dir(results, job.run_id)
        state = job_state(directory)
        if state.status == "corrupt":
            moved = set_aside(directory / RESULT)
            listener("corrupt", job, {"detail": f"{state.detail}; moved to {moved.name}, re-running"})
        elif state.status == "done":
            summary.skipped.append(job.run_id)
            listener("skipped", job, {})
            continue
        pending.append(job)
    return pending


def death_reason(code: int | None) -> str:
    """Why a worker ended without a result, from its exit status."""
    if code is None:
        return "WorkerDied: the worker ended without writing a result"
    if code < 0:
        number = -code
        name = signal.Signals(number).name if number in signal.Signals._value2member_map_ else str(number)
        hint = " (killed: out of memory?)" if number == signal.SIGKILL else ""
        return f"WorkerDied: the worker was killed by signal {name}{hint}"
    return f"WorkerDied: the worker exited with code {code} without writing a result"


def record_failure(directory: Path, run_id: str, message: str, exit_code: int | None,
                   extra: dict[str, Any] | None = None) -> None:
    """Write error.json for a job that could not record its own failure ("Type: text" message)."""
    error_type, _, text = message.partition(": ")
    atomic_write_json(directory / ERROR, {
        "run_id": run_id, "error_type": error_type, "message": text, "traceback": tail(directory / LOG),
        "exit_code": exit_code, "failed_at": now_iso(), **(extra or {})})


def tail(path: Path, lines: int = 30) -> str:
    try:
        return "".join(path.read_text(encoding="utf-8", errors="replace").splitlines(keepends=True)[-lines:])
    except OSError:
        return ""
