"""Job states for `vrbench status` and `vrbench collect`, Slurm included, without torch or submitit.

A job held by a Slurm job (its claim.json names the Slurm job id) is described by Slurm's state: queued
(pending in the queue, with Slurm's reason), running (with its epoch), or failed once Slurm ended the task
without a result, with the Slurm state and the first error line of the task's log. Slurm is asked once for
all the jobs shown.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vrbench.errors import ResultsError
from vrbench.jobs import JobSpec
from vrbench.runner import scheduler
from vrbench.runner.common import record_failure
from vrbench.store.rundir import (
    CLAIM,
    ERROR,
    PROGRESS,
    RESULT,
    Claim,
    JobState,
    job_state,
    read_json,
    read_progress,
    run_dir,
    runs_root,
)

SLURM_RECORD = "slurm.json"


def _slurm_claim(directory: Path) -> dict[str, Any] | None:
    try:
        data = read_json(directory / CLAIM)
    except (FileNotFoundError, ResultsError):
        return None
    return data if data.get("slurm_job_id") else None


def _record(directory: Path) -> dict[str, Any]:
    try:
        return read_json(directory / SLURM_RECORD)
    except (FileNotFoundError, ResultsError):
        return {}


def describe_states(jobs: list[JobSpec], results: Path) -> list[tuple[JobSpec, JobState]]:
    directories = [run_dir(results, job.run_id) for job in jobs]
    claims = {d: _slurm_claim(d) for d in directories}
    ids = [c["slurm_job_id"] for c in claims.values() if c]
    states = scheduler.query(ids) if ids else {}
    out = []
    for job, directory in zip(jobs, directories, strict=True):
        claim = claims[directory]
        if claim is None or (directory / RESULT).exists():
            out.append((job, job_state(directory)))
        else:
            out.append((job, slurm_job_state(directory, claim, states)))
    return out


def slurm_job_state(directory: Path, claim: dict[str, Any],
                    states: dict[str, scheduler.TaskState] | None) -> JobState:
    job_id = str(claim["slurm_job_id"])
    if states is None:  # Slurm cannot be asked from here: the heartbeat decides (job_state does that)
        state = job_state(directory)
        return JobState(state.status, f"{state.detail} (Slurm {job_id}; squeue unavailable here, judged by "
                                      "heartbeat)".strip())
    task = states[job_id]
    if not task.live and not task.final:
        return JobState("running", f"Slurm {job_id} {task.state} just now; it may be requeued (checkpointed)")
    if task.live:
        if task.queued:
            reason = f" ({task.reason})" if task.reason and task.reason != "None" else ""
            return JobState("queued", f"Slurm {job_id} {task.state.lower()}{reason}")
        ahead = _ahead_in_pack(directory)
        if ahead:
            return JobState("queued", f"Slurm {job_id} runs {ahead} first (packed task)")
        progress = read_progress(directory)
        if progress and _mtime(directory / PROGRESS) >= _mtime(directory / CLAIM) - 1:
            where = f"epoch {progress.get('epoch', '?')}/{progress.get('epochs', '?')}, "
        else:
            where = "starting, "
        return JobState("running", f"{where}Slurm {job_id} on {task.node or '?'}")
    return JobState("failed", ended_detail(directory, job_id, task))


def _ahead_in_pack(directory: Path) -> str | None:
    """The unfinished job that runs before this one in its packed array task, if any."""
    pack = _record(directory).get("packed_with") or []
    if directory.name not in pack:
        return None
    for run_id in pack[:pack.index(directory.name)]:
        if not (directory.parent / run_id / RESULT).exists() and not (directory.parent / run_id / ERROR).exists():
            return run_id
    return None


def ended_detail(directory: Path, job_id: str, task: scheduler.TaskState) -> str:
    if (directory / ERROR).exists():
        try:
            error = read_json(directory / ERROR)
            return f"{error.get('error_type', 'Error')}: {error.get('message', '')} (Slurm {job_id} {task.state})"
        except ResultsError as exc:
            return str(exc)
    line = scheduler.first_error_line(_record(directory).get("stderr"))
    return (f"Slurm {job_id} ended {task.state} without a result" + (f": {line}" if line else "")
            + "; a re-run resumes it")


def reconcile(results: Path) -> list[str]:
    """Record a failure for each job whose Slurm task ended without a result, and free its claim.

    `vrbench collect` does this so that the index lists such jobs as failed (with the Slurm state) even when
    nobody followed the array with --wait. Does nothing where Slurm cannot be asked.
    """
    claims = {}
    root = runs_root(results)
    if not root.is_dir():
        return []
    for claim_path in root.glob(f"*/{CLAIM}"):
        if claim_path.parent.is_symlink():  # never written through (see rundir.refuse_link)
            continue
        data = _slurm_claim(claim_path.parent)
        if data is not None and not (claim_path.parent / RESULT).exists():
            claims[claim_path.parent] = data
    if not claims:
        return []
    states = scheduler.query([c["slurm_job_id"] for c in claims.values()])
    if states is None:
        return []
    recorded = []
    for directory, data in claims.items():
        job_id = str(data["slurm_job_id"])
        task = states[job_id]
        if not task.final:
            continue
        if not (directory / ERROR).exists():
            line = scheduler.first_error_line(_record(directory).get("stderr"))
            record_failure(directory, directory.name, f"SlurmJobEnded: Slurm job {job_id} ended ({task.state}) "
                           "without a result" + (f": {line}" if line else ""), None, {"slurm_job_id": job_id})
        Claim(directory, data.get("token", ""), data).release()
        recorded.append(directory.name)
    return recorded


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0
