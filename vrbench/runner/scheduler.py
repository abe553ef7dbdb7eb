"""Asking Slurm what became of a job, without submitit and without torch (`vrbench status` uses this).

One `squeue --states=all` call per poll answers for a whole array: live tasks (pending, running, requeued...)
and, for MinJobAge after they end, their final state (COMPLETED, CANCELLED, TIMEOUT, OUT_OF_MEMORY...) and
end time (an end that a requeue may still undo counts only after a grace period). A task Slurm no longer lists
has ended; `sacct` can name its final state where accounting is enabled. Answers are
cached for a moment so that a status over hundreds of jobs asks Slurm once. When Slurm cannot be asked at
all (no squeue on this machine, controller down) callers get None and fall back to the job's heartbeat.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

# States after which a Slurm job never runs again; anything else (including states this list does not know)
# counts as live, so that an unfamiliar state never lets two processes run one job.
ENDED_STATES = frozenset({"COMPLETED", "CANCELLED", "FAILED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL", "PREEMPTED",
                          "BOOT_FAIL", "DEADLINE", "REVOKED", "ENDED"})
QUEUED_STATES = frozenset({"PENDING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "CONFIGURING", "SPECIAL_EXIT",
                           "RESV_DEL_HOLD", "POWER_UP_NODE"})
# A task seen in one of these states may still come back: submitit requeues a task from its signal handler
# after the batch step may already have ended (FAILED/COMPLETED), and Slurm requeues preempted jobs and jobs
# of failed nodes. Such an end counts only once it is this old; CANCELLED, TIMEOUT, OUT_OF_MEMORY are final.
MAY_BE_REQUEUED = frozenset({"COMPLETED", "FAILED", "PREEMPTED", "NODE_FAIL"})
REQUEUE_GRACE_SECONDS = 30.0
CACHE_SECONDS = 2.0
_TIMEOUT = 30


@dataclass(frozen=True)
class TaskState:
    job_id: str  # "123_4" for an array task, "123" for a single job
    state: str  # Slurm's state name; "ENDED" when Slurm no longer knows the job and sacct cannot say more
    reason: str = ""
    node: str = ""
    ended_at: float | None = None  # epoch seconds, when Slurm says when it ended

    @property
    def live(self) -> bool:
        return self.state not in ENDED_STATES

    @property
    def queued(self) -> bool:
        return self.state in QUEUED_STATES

    @property
    def final(self) -> bool:
        """Ended for good: no requeue can bring it back any more."""
        if self.live:
            return False
        if self.state in MAY_BE_REQUEUED and self.ended_at is not None:
            return time.time() - self.ended_at >= REQUEUE_GRACE_SECONDS
        return True


_cache: dict[str, tuple[float, dict[str, TaskState]]] = {}


def base_id(job_id: str) -> str:
    return str(job_id).split("_", 1)[0]


def slurm_available() -> bool:
    return shutil.which("squeue") is not None


def query(job_ids: Iterable[str], max_age: float = CACHE_SECONDS) -> dict[str, TaskState] | None:
    """State of each given job id ("123_4" or "123"); None when Slurm cannot be asked."""
    wanted = {str(j) for j in job_ids if j}
    if not wanted:
        return {}
    now = time.monotonic()
    stale = sorted({base_id(j) for j in wanted if now - _cache.get(base_id(j), (-1e9, {}))[0] > max_age})
    if stale:
        fresh = _squeue(stale)
        if fresh is None:
            return None
        for array in stale:
            _cache[array] = (now, {})
        for task in fresh.values():
            _cache[base_id(task.job_id)][1][task.job_id] = task
    known: dict[str, TaskState] = {}
    for array in {base_id(j) for j in wanted}:
        known.update(_cache[array][1])
    missing = sorted(j for j in wanted if j not in known)
    if missing:  # ended and already forgotten by the controller: ask accounting once, remember the answer
        ended = _sacct(missing)
        for job_id in missing:
            known[job_id] = ended.get(job_id) or TaskState(job_id, "ENDED", "no longer listed by Slurm")
            _cache[base_id(job_id)][1][job_id] = known[job_id]
    return {job_id: known[job_id] for job_id in wanted}


def forget() -> None:
    """Drop cached answers (the launcher calls this before each poll it wants fresh)."""
    _cache.clear()


def _run(command: list[str]) -> subprocess.CompletedProcess | None:
    try:
        return subprocess.run(command, capture_output=True, text=True, timeout=_TIMEOUT)
    except (OSError, subprocess.SubprocessError):
        return None


def _squeue(arrays: list[str]) -> dict[str, TaskState] | None:
    if not slurm_available():
        return None
    out = _run(["squeue", "--noheader", "--array", "--states=all", "--jobs=" + ",".join(arrays),
                "--format=%i|%T|%r|%N|%e"])
    if out is None:
        return None
    if out.returncode != 0:
        # Every id unknown to the controller (purged after MinJobAge): they all ended long ago.
        if "invalid job id" in (out.stderr + out.stdout).lower():
            return {}
        return None
    states = {}
    for line in out.stdout.splitlines():
        parts = line.strip().split("|") + ["", "", ""]
        if parts[0] and parts[1]:
            states[parts[0]] = TaskState(parts[0], parts[1], parts[2], parts[3], _timestamp(parts[4]))
    return states


def _timestamp(text: str) -> float | None:
    """Slurm's local-time ISO stamps ("2026-11-22T08:31:45"); None for N/A, Unknown, None."""
    try:
        return datetime.fromisoformat(text.strip()).timestamp()
    except ValueError:
        return None


def _sacct(job_ids: list[str]) -> dict[str, TaskState]:
    """Final states from accounting, where the cluster keeps it (most do; this test cluster does not)."""
    if shutil.which("sacct") is None:
        return {}
    out = _run(["sacct", "--noheader", "--parsable2", "--allocations", "--format=JobID,State",
                "--jobs=" + ",".join(job_ids)])
    if out is None or out.returncode != 0:
        return {}
    states = {}
    for line in out.stdout.splitlines():
        parts = line.strip().split("|")
        if len(parts) >= 2 and parts[0] in job_ids:
            states[parts[0]] = TaskState(parts[0], parts[1].split()[0] if parts[1] else "ENDED", "from sacct")
    return states


def claim_is_stale(directory: Path, data: dict[str, Any], heartbeat_seconds: float) -> bool:
    """A claim held by a Slurm job is stale once Slurm says the job ended; without Slurm, by heartbeat."""
    states = query([data["slurm_job_id"]])
    if states is None:
        newest = max(_mtime(directory / "claim.json"), _mtime(directory / "progress.json"))
        return time.time() - newest > heartbeat_seconds
    return states[str(data["slurm_job_id"])].final


def first_error_line(path: str | Path | None, limit: int = 300) -> str:
    """The first line of a Slurm log that says what went wrong (slurmstepd's CANCELLED/TIME LIMIT/OOM, a traceback)."""
    if not path:
        return ""
    try:
        lines = Path(path).read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return ""
    markers = ("error", "***", "traceback", "killed", "oom", "exception")
    for line in lines:
        if any(marker in line.lower() for marker in markers):
            return line.strip()[:limit]
    return ""


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0
