"""Run directories: atomic files, claims and job states.

Results are files first. A job is done exactly when its result.json exists (written by rename as the
last step), so a crash at any moment leaves either a finished job or one that can resume. Ownership of
a job is a claim file created with O_EXCL: two `vrbench run` processes on one results directory never
run the same job, and a claim whose processes are gone is detected as stale and can be taken over.
No torch import here: `vrbench status` reads these files.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, BinaryIO

from vrbench.errors import ResultsError
from vrbench.store.diskfull import writing
from vrbench.store.validate import InvalidRecord, check_result

CONFIG, ENV, METRICS, CHECKPOINT = "config.json", "env.json", "metrics.jsonl", "checkpoint.pt"
RESULT, ERROR, CLAIM, PROGRESS, MAPPING, LOG = (
    "result.json", "error.json", "claim.json", "progress.json", "mapping.json", "worker.log")
# A claim held from another host is considered abandoned when its heartbeat is older than this.
STALE_AFTER_SECONDS = 15 * 60
TEMPORARY_SUFFIX = ".tmp"  # ".<name>.<pid>.<random>.tmp" while an atomic write is in progress
_RUN_ID = re.compile(r"^[0-9a-f]{8,64}$")


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def runs_root(results: Path) -> Path:
    return Path(results) / "runs"


def run_dir(results: Path, run_id: str) -> Path:
    """The directory of one run; ids are hex digests and links are refused, so it never escapes the results root."""
    if not isinstance(run_id, str) or not _RUN_ID.fullmatch(run_id):
        raise ResultsError(f"'{run_id}' is not a run id (expected lowercase hex)")
    return refuse_link(runs_root(results) / run_id)


def refuse_link(directory: Path) -> Path:
    """``directory``, unless it is a symbolic link: run directories never leave the results root, so vrbench
    neither reads a job's state through a link nor writes (claims, configs, results) through one."""
    if Path(directory).is_symlink():
        try:
            target = os.readlink(directory)
        except OSError:
            target = "?"
        raise ResultsError(f"run directory {directory} is a symbolic link (to {target}); run directories never leave "
                           "the results root, so vrbench does not follow it. Remove the link, or move that directory "
                           "into place instead of linking it.")
    return Path(directory)


def atomic_write(path: Path, write: Callable[[BinaryIO], object], what: str | None = None) -> None:
    """Write via a temp file in the same directory and rename, so readers never see half a file.

    Whatever ends the write early (a full disk, an exception, a stop signal) removes the temp file; a full disk
    becomes one ``DiskSpaceError`` naming ``what`` (default: the file's name) and the directory.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}{TEMPORARY_SUFFIX}")
    with writing(path, what or path.name):  # outermost, so the space it reports is after the clean-up
        try:
            with open(tmp, "wb") as handle:
                write(handle)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise


def atomic_write_text(path: Path, text: str, what: str | None = None) -> None:
    data = text.encode("utf-8")
    atomic_write(path, lambda handle: handle.write(data), what)


def remove_temporaries(directory: Path) -> list[Path]:
    """Delete the temp files of writes that a killed process could not finish (only the run's owner may)."""
    removed = []
    for path in Path(directory).glob(f".*{TEMPORARY_SUFFIX}"):
        if _writer_alive(path):  # e.g. the launcher updating claim.json while its worker starts: not a leftover
            continue
        path.unlink(missing_ok=True)
        removed.append(path)
    return removed


def _writer_alive(temporary: Path) -> bool:
    """Whether the process named in a temp file's name (``.<name>.<pid>.<hex><suffix>``) is still running."""
    parts = temporary.name[: -len(TEMPORARY_SUFFIX)].split(".")
    if len(parts) < 3 or not parts[-2].isdigit():
        return False
    pid = int(parts[-2])
    return pid != os.getpid() and pid_alive(pid)


def atomic_write_bytes(path: Path, data: bytes, what: str | None = None) -> None:
    """``atomic_write`` of ready bytes; the temp file is made by open(), so it gets the user's umask."""
    atomic_write(path, lambda handle: handle.write(data), what)


def atomic_write_json(path: Path, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def write_result(directory: Path, result: dict[str, Any]) -> None:
    """Write result.json, the job's last step, only if every reader will accept it: a result with a NaN, infinite,
    out-of-range or mistyped value fails the job instead (``ResultsError`` naming the field)."""
    try:
        check_result(result)
    except InvalidRecord as exc:
        raise ResultsError(f"the job's result is invalid, so it was not written: {exc}") from None
    atomic_write_json(Path(directory) / RESULT, result)


def read_json(path: Path) -> Any:
    """Read a JSON file, turning a truncated or corrupted file into a clear ResultsError."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise
    except (OSError, ValueError) as exc:
        raise ResultsError(f"{path} is unreadable or corrupted ({exc.__class__.__name__}: {exc})") from None


def write_config(directory: Path, run_id: str, method: str, config: dict, runtime: dict) -> None:
    """Write config.json; an existing one for a different config means a hash collision or tampering."""
    refuse_link(directory).mkdir(parents=True, exist_ok=True)
    path = directory / CONFIG
    if path.exists():
        try:
            existing = read_json(path)
        except ResultsError:
            existing = None
        if existing is not None and existing.get("config") != config:
            raise ResultsError(f"{path} holds a different config than job {run_id}; move that directory away")
    atomic_write_json(path, {"run_id": run_id, "method": method, "config": config, "runtime": runtime})


# ----------------------------------------------------------------------------------------------- claims


def _process_start(pid: int) -> str | None:
    """Kernel start time of a process (Linux), so a recycled pid is not mistaken for the claimant."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return fields[19]
    except (OSError, IndexError):
        return None


def pid_alive(pid: int | None, start: str | None = None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    if start is not None:
        current = _process_start(pid)
        if current is not None and current != start:
            return False
    # A zombie (exited, not yet reaped) counts as dead.
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        return state != "Z"
    except (OSError, IndexError):
        return True


@dataclass
class Claim:
    directory: Path
    token: str
    data: dict[str, Any]

    def set_worker(self, pid: int) -> None:
        self.data["worker_pid"] = pid
        self.data["worker_start"] = _process_start(pid)
        atomic_write_json(self.directory / CLAIM, self.data)

    def release(self) -> None:
        path = self.directory / CLAIM
        try:
            if read_json(path).get("token") == self.token:
                path.unlink()
        except (FileNotFoundError, ResultsError):
            pass


def try_claim(directory: Path, **extra: Any) -> Claim | None:
    """Create claim.json atomically; None if another live process holds the job."""
    refuse_link(directory).mkdir(parents=True, exist_ok=True)
    token = uuid.uuid4().hex
    data = {"token": token, "host": socket.gethostname(), "launcher_pid": os.getpid(),
            "launcher_start": _process_start(os.getpid()), "worker_pid": None, "claimed_at": now_iso(), **extra}
    if _create_claim(directory, data):
        return Claim(directory, token, data)
    # Taking over a stale claim is check-then-rename; an flock (released by the kernel if we die) makes the
    # check, the rename and the new claim one step, so two takers can never both win.
    with open(directory / "claim.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (directory / CLAIM).exists():
            if not claim_is_stale(directory):
                return None
            try:
                os.replace(directory / CLAIM, directory / f"claim.stale-{token}.json")
            except FileNotFoundError:
                pass
        if _create_claim(directory, data):
            return Claim(directory, token, data)
    return None


def _create_claim(directory: Path, data: dict[str, Any]) -> bool:
    try:
        fd = os.open(directory / CLAIM, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return False
    try:
        with writing(directory / CLAIM, "the job's claim"), os.fdopen(fd, "w") as handle:
            json.dump(data, handle)
    except BaseException:  # a half-written claim would hold the job for 30 s: take it back
        (directory / CLAIM).unlink(missing_ok=True)
        raise
    return True


def claim_is_stale(directory: Path) -> bool:
    """True when no process of the claim can still be working on the job."""
    path = directory / CLAIM
    try:
        data = read_json(path)
    except FileNotFoundError:
        return False
    except ResultsError:
        # Created but not yet written (O_EXCL then write): give its owner a moment.
        return time.time() - _mtime(path) > 30
    if data.get("slurm_job_id"):  # held by a Slurm job: the scheduler's state decides (runner/scheduler.py)
        from vrbench.runner.scheduler import claim_is_stale as slurm_claim_is_stale

        return slurm_claim_is_stale(directory, data, STALE_AFTER_SECONDS)
    if data.get("host") == socket.gethostname():
        launcher = pid_alive(data.get("launcher_pid"), data.get("launcher_start"))
        worker = pid_alive(data.get("worker_pid"), data.get("worker_start"))
        return not (launcher or worker)
    heartbeat = max(_mtime(path), _mtime(directory / PROGRESS))
    return time.time() - heartbeat > STALE_AFTER_SECONDS


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


# ------------------------------------------------------------------------------------------------ state


@dataclass
class JobState:
    status: str  # done | running | pending | failed | stale | corrupt
    detail: str = ""


def job_state(directory: Path) -> JobState:
    """What a run directory says about its job, without importing torch."""
    result = refuse_link(directory) / RESULT
    if result.exists():
        try:
            fields = check_result(read_json(result))
        except ResultsError as exc:
            return JobState("corrupt", str(exc))
        except InvalidRecord as exc:
            return JobState("corrupt", f"{result} is corrupted ({exc})")
        return JobState("done", f"final {fields['final_acc']:.1f}%")
    if (directory / CLAIM).exists():
        if claim_is_stale(directory):
            return JobState("stale", "its process is gone; a re-run resumes it")
        progress = read_progress(directory)
        if progress:
            return JobState("running", f"epoch {progress.get('epoch', '?')}/{progress.get('epochs', '?')}")
        return JobState("running")
    if (directory / ERROR).exists():
        try:
            error = read_json(directory / ERROR)
            return JobState("failed", f"{error.get('error_type', 'Error')}: {error.get('message', '')}")
        except ResultsError as exc:
            return JobState("failed", str(exc))
    if (directory / CHECKPOINT).exists():
        return JobState("pending", "interrupted; resumes from its checkpoint")
    return JobState("pending")


def read_progress(directory: Path) -> dict[str, Any]:
    try:
        return read_json(directory / PROGRESS)
    except (FileNotFoundError, ResultsError):
        return {}


def set_aside(path: Path) -> Path:
    """Rename a corrupted file instead of deleting it: nothing a user did not delete is lost."""
    stamp = datetime.now().strftime("%Y%m%dT%H%M%S")
    target = path.with_name(f"{path.name}.corrupt-{stamp}-{uuid.uuid4().hex[:8]}")
    os.rename(path, target)
    return target
