"""The local executor: a pool of slots, each running one job in its own worker process.

The launcher never imports torch. It claims a job (claim.json, O_EXCL), writes its config, starts
`python -m vrbench.worker RUN_DIR`, watches progress.json for the display, and records how the worker
ended. A crash, an OOM kill or a timeout ends one job and the suite goes on.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from vrbench.errors import ResultsError
from vrbench.jobs import JobSpec
from vrbench.store.rundir import (
    ERROR,
    LOG,
    RESULT,
    Claim,
    JobState,
    atomic_write_json,
    job_state,
    now_iso,
    read_progress,
    run_dir,
    set_aside,
    try_claim,
    write_config,
)


@dataclass
class RunOptions:
    results: Path
    data_root: Path | None = None
    device: str = "auto"
    slots: int = 1
    threads: int | None = None  # per job; None: the machine's cores divided among the slots
    download: bool = False
    timeout_min: float | None = None
    poll_seconds: float = 0.25


@dataclass
class Running:
    job: JobSpec
    directory: Path
    claim: Claim
    process: subprocess.Popen
    log: IO[Any]
    started: float


@dataclass
class RunSummary:
    done: list[str] = field(default_factory=list)  # finished by this invocation
    skipped: list[str] = field(default_factory=list)  # already done before
    failed: list[str] = field(default_factory=list)
    elsewhere: list[str] = field(default_factory=list)  # claimed by another live process
    interrupted: bool = False

    @property
    def ok(self) -> bool:
        return not self.failed and not self.interrupted


Listener = Callable[[str, JobSpec, dict[str, Any]], None]


def default_threads(slots: int) -> int:
    return max(1, (os.cpu_count() or 1) // max(1, slots))


def worker_command(directory: Path) -> list[str]:
    return [sys.executable, "-m", "vrbench.worker", str(directory)]


class LocalRunner:
    """Keeps up to `slots` jobs running until every pending job has been tried once."""

    def __init__(self, jobs: list[JobSpec], options: RunOptions, listener: Listener | None = None) -> None:
        self.jobs = jobs
        self.options = options
        self.listener = listener or (lambda event, job, info: None)
        self.running: list[Running] = []
        self.summary = RunSummary()

    def pending_jobs(self) -> list[JobSpec]:
        pending = []
        for job in self.jobs:
            directory = run_dir(self.options.results, job.run_id)
            state = job_state(directory)
            if state.status == "corrupt":
                moved = set_aside(directory / RESULT)
                self.listener("corrupt", job, {"detail": f"{state.detail}; moved to {moved.name}, re-running"})
            elif state.status == "done":
                self.summary.skipped.append(job.run_id)
                self.listener("skipped", job, {})
                continue
            pending.append(job)
        return pending

    def run(self) -> RunSummary:
        queue = self.pending_jobs()
        try:
            while queue or self.running:
                while queue and len(self.running) < self.options.slots:
                    self._start(queue.pop(0))
                self._poll()
                if self.running:
                    time.sleep(self.options.poll_seconds)
        except KeyboardInterrupt:
            self.summary.interrupted = True
            self._stop_all()
        return self.summary

    def _start(self, job: JobSpec) -> None:
        directory = run_dir(self.options.results, job.run_id)
        claim = try_claim(directory)
        if claim is None:
            self.summary.elsewhere.append(job.run_id)
            self.listener("elsewhere", job, {})
            return
        if (directory / RESULT).exists():  # finished by another process between our scan and our claim
            claim.release()
            self.summary.skipped.append(job.run_id)
            return
        threads = self.options.threads or default_threads(self.options.slots)
        runtime = {"data_root": str(self.options.data_root) if self.options.data_root else None,
                   "device": self.options.device, "threads": threads, "download": self.options.download}
        try:
            write_config(directory, job.run_id, job.method, job.config, runtime)
        except ResultsError as exc:  # a foreign config.json in this job's directory: fail this job, keep going
            claim.release()
            atomic_write_json(directory / ERROR, {"run_id": job.run_id, "error_type": "ResultsError",
                                                  "message": str(exc), "traceback": "", "exit_code": None,
                                                  "failed_at": now_iso()})
            self.summary.failed.append(job.run_id)
            self.listener("failed", job, {"detail": str(exc)})
            return
        log = open(directory / LOG, "a", encoding="utf-8")
        log.write(f"\n=== {now_iso()} worker started by pid {os.getpid()}\n")
        log.flush()
        env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONUNBUFFERED": "1"}
        process = subprocess.Popen(worker_command(directory), stdout=log, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, env=env, start_new_session=True)
        claim.set_worker(process.pid)
        self.running.append(Running(job, directory, claim, process, log, time.monotonic()))
        self.listener("start", job, {})

    def _poll(self) -> None:
        for item in list(self.running):
            code = item.process.poll()
            timeout = self.options.timeout_min
            if code is None and timeout is not None and time.monotonic() - item.started > timeout * 60:
                self._kill(item.process)
                code = item.process.wait()
                self._record_external_failure(item, code, f"TimeoutError: the job exceeded --timeout-min {timeout}")
            if code is None:
                self.listener("progress", item.job, read_progress(item.directory))
                continue
            self._finish(item, code)

    def _finish(self, item: Running, code: int) -> None:
        item.log.close()
        self.running.remove(item)
        if (item.directory / RESULT).exists():
            self.summary.done.append(item.job.run_id)
            self.listener("done", item.job, {})
        else:
            if not (item.directory / ERROR).exists():
                self._record_external_failure(item, code, self._death_reason(code))
            self.summary.failed.append(item.job.run_id)
            self.listener("failed", item.job, {"detail": job_state(item.directory).detail})
        item.claim.release()

    @staticmethod
    def _death_reason(code: int) -> str:
        if code < 0:
            name = signal.Signals(-code).name if -code in signal.Signals._value2member_map_ else str(-code)
            hint = " (killed: out of memory?)" if -code == signal.SIGKILL else ""
            return f"WorkerDied: the worker was killed by signal {name}{hint}"
        return f"WorkerDied: the worker exited with code {code} without writing a result"

    def _record_external_failure(self, item: Running, code: int, message: str) -> None:
        error_type, _, text = message.partition(": ")
        tail = _tail(item.directory / LOG)
        atomic_write_json(item.directory / ERROR, {
            "run_id": item.job.run_id, "error_type": error_type, "message": text, "traceback": tail,
            "exit_code": code, "failed_at": now_iso()})

    @staticmethod
    def _kill(process: subprocess.Popen) -> None:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def _stop_all(self) -> None:
        """Ctrl-C: stop the workers; their checkpoints stay, so a re-run resumes them."""
        for item in self.running:
            try:
                os.killpg(item.process.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        for item in self.running:
            try:
                item.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._kill(item.process)
                item.process.wait()
            item.log.close()
            item.claim.release()
        self.running.clear()


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "".join(path.read_text(encoding="utf-8", errors="replace").splitlines(keepends=True)[-lines:])
    except OSError:
        return ""


def describe_states(jobs: list[JobSpec], results: Path) -> list[tuple[JobSpec, JobState]]:
    return [(job, job_state(run_dir(results, job.run_id))) for job in jobs]
