"""Worker entry point: `python -m vrbench.worker RUN_DIR` runs one job from its config.json.

Every job runs in its own process through this module, so an OOM or a crash ends one job, not the
suite, and any job can be re-run by hand. On failure it writes error.json (with the traceback) and exits 1; out of
disk space it exits 28 (DISK_FULL_EXIT), which makes its launcher stop the run; on SIGTERM, or when the launcher
that started it is gone (runner/lifetime.py), it stops with exit 130 and keeps its last checkpoint.

Launchers place a worker through its environment, so a hand-run worker needs none of it: CUDA_VISIBLE_DEVICES
(its GPU), OMP_NUM_THREADS (its threads) and VRBENCH_CPUS (its cores, applied here before torch starts its
thread pool). The first line it prints says what it got, so worker.log shows where each attempt ran.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
import traceback
from pathlib import Path
from typing import TextIO

from vrbench.errors import DiskSpaceError, VrbenchError
from vrbench.runner.lifetime import stop_on_sigterm, stop_with_parent
from vrbench.runner.placement import CPUS_ENV, apply_cpu_affinity
from vrbench.store.diskfull import DISK_FULL_EXIT, describe, is_disk_full
from vrbench.store.rundir import ERROR, RESULT, atomic_write_json, now_iso, refuse_link, remove_temporaries


def record_failure(directory: Path, exc: BaseException, exit_code: int = 1) -> None:
    lines = str(exc).strip().splitlines()
    atomic_write_json(directory / ERROR, {
        "run_id": directory.name,
        "error_type": type(exc).__name__,
        "message": lines[0] if lines else type(exc).__name__,
        "traceback": "".join(traceback.format_exception(exc)),
        "exit_code": exit_code,
        "failed_at": now_iso(),
    })


def describe_placement(cpus: list[int] | None) -> str:
    """One line: host, pid, and the GPU, threads and cores this process was given."""
    if os.environ.get("SLURM_ARRAY_JOB_ID"):
        slurm = f"{os.environ['SLURM_ARRAY_JOB_ID']}_{os.environ.get('SLURM_ARRAY_TASK_ID')}"
    else:
        slurm = os.environ.get("SLURM_JOB_ID")
    fields = {
        "host": socket.gethostname(), "pid": os.getpid(),
        "CUDA_VISIBLE_DEVICES": os.environ.get("CUDA_VISIBLE_DEVICES", "(unset)"),
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "(unset)"),
        CPUS_ENV: ",".join(map(str, cpus)) if cpus else "(unpinned)",
    }
    if slurm:
        fields["slurm_job"] = slurm
    return "worker placement: " + " ".join(f"{key}={value}" for key, value in fields.items())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vrbench.worker", description=__doc__)
    parser.add_argument("run_dir", type=Path, help="a run directory holding config.json")
    args = parser.parse_args(argv)
    try:
        refuse_link(args.run_dir)  # before resolve(), which would follow it
    except VrbenchError as exc:
        _say(f"error: {exc}")
        return 2
    directory: Path = args.run_dir.resolve()
    stop_on_sigterm()  # a stopped worker cleans up its writes and keeps its last checkpoint
    stop_with_parent()  # ... and is stopped when its launcher (or fork server) is gone
    try:
        return _run(directory)
    except KeyboardInterrupt:  # interrupted, not failed: the checkpoint stays and a re-run resumes
        return 130
    except BaseException as exc:  # noqa: BLE001 - the worker must record every failure
        if is_disk_full(exc):
            return _disk_full(directory, exc)
        _try_record(directory, exc)
        if isinstance(exc, VrbenchError):
            _say(f"error: {exc}")
        else:
            _say("".join(traceback.format_exception(exc)).rstrip())
        return 1


def _run(directory: Path) -> int:
    if (directory / RESULT).exists():
        _say(f"{directory.name}: already done ({RESULT} exists)", sys.stdout)
        return 0
    remove_temporaries(directory)  # of an earlier attempt that was killed mid-write
    previous = directory / ERROR
    if previous.exists():  # keep the last failure for reference; the fresh attempt decides the state
        os.replace(previous, directory / "error.previous.json")
    cpus = apply_cpu_affinity()
    print(describe_placement(cpus), flush=True)
    from vrbench.engine.loop import run_job

    result = run_job(directory)
    best = result.get("best_test_acc")  # None for runs tested once (zero-shot, prompt learning)
    _say(f"{directory.name}: done, final {result['final_acc']:.2f}%, best_test "
         f"{'-' if best is None else f'{best:.2f}%'}", sys.stdout)
    return 0


def _disk_full(directory: Path, exc: BaseException) -> int:
    """Out of space: say where, if there is still room to say it, and exit with DISK_FULL_EXIT so the launcher
    stops the run; the last checkpoint stays and a re-run after freeing space resumes."""
    error = exc if isinstance(exc, DiskSpaceError) else DiskSpaceError(describe(exc))
    _try_record(directory, error, DISK_FULL_EXIT)
    _say(f"error: {error}")
    return DISK_FULL_EXIT


def _try_record(directory: Path, exc: BaseException, exit_code: int = 1) -> None:
    try:
        record_failure(directory, exc, exit_code)
    except (OSError, VrbenchError):  # e.g. no room left for error.json either; the exit code still tells
        pass


def _say(text: str, stream: TextIO | None = None) -> None:
    """Print to worker.log (stderr unless told), which may itself be on the full disk."""
    try:
        print(text, file=stream or sys.stderr, flush=True)
    except (OSError, ValueError):
        pass


def exit_now(code: int) -> None:
    """End the process without the interpreter's teardown, which takes about a second once torch is loaded.

    Safe because every file a job writes is complete when main() returns (atomic, fsync'd renames); only the
    standard streams can hold buffered output, so they are flushed first.
    """
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)


if __name__ == "__main__":
    exit_now(main())
