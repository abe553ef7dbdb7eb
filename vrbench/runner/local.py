"""The local executor: a pool of slots, each running one job at a time in its own worker process.

The launcher never imports torch. It claims a job (claim.json, O_EXCL), writes its config, starts a worker
for it (`python -m vrbench.worker RUN_DIR`, or the same forked from a process that imported torch once, see
forkserver.py) on a free slot (its GPU through CUDA_VISIBLE_DEVICES, its share of the
CPU threads and cores, see placement.py), watches progress.json for the display, and records how the worker
ended. A crash, an OOM kill or a timeout ends one job and the suite goes on.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from vrbench.errors import DiskSpaceError, ResultsError
from vrbench.jobs import JobSpec
from vrbench.runner.common import (
    Listener,
    RunSummary,
    death_reason,
    pending_jobs,
    record_failure,
    worker_command,
)
from vrbench.runner.forkserver import STOP_GRACE_SECONDS, ForkedWorker, ForkServer
from vrbench.runner.lifetime import PARENT_ENV, StopRequested, stop_signals
from vrbench.runner.placement import Slot, check_cuda, plan_slots, usable_cores, visible_gpus
from vrbench.runner.resources import Resources
from vrbench.store.diskfull import DISK_FULL_EXIT, out_of_space, writing
from vrbench.store.rundir import (
    ERROR,
    LOG,
    RESULT,
    Claim,
    JobState,
    atomic_write_json,
    job_state,
    now_iso,
    read_json,
    read_progress,
    run_dir,
    try_claim,
    write_config,
)

__all__ = ["LocalRunner", "RunOptions", "RunSummary", "default_threads", "describe_states", "worker_command"]


@dataclass
class RunOptions:
    results: Path
    data_root: Path | None = None
    device: str = "auto"
    slots: int | None = None  # None: one per visible GPU, else one
    threads: int | None = None  # per job; None: the machine's cores divided among the slots
    gpus: list[str] | None = None  # GPUs to hand out; None: the visible ones (none with --device cpu)
    download: bool = False
    timeout_min: float | None = None  # overrides the suite's per-job resources.timeout_min
    poll_seconds: float = 0.25
    # Fork workers from a process that imported torch once (forkserver.py). None: only for CPU slots, since a
    # GPU job is long enough not to notice two seconds, and a fork server must never have touched CUDA.
    preload: bool | None = None
    tracking: dict[str, Any] = field(default_factory=dict)  # {"trackers": [...], "suite": name} (vrbench.tracking)

    def runtime(self, threads: int | None) -> dict[str, Any]:
        """The non-hashed part of config.json that the worker reads."""
        return {"data_root": str(Path(self.data_root).resolve()) if self.data_root else None,
                "device": self.device, "threads": threads, "download": self.download, **self.tracking}


@dataclass
class Running:
    job: JobSpec
    directory: Path
    claim: Claim
    process: subprocess.Popen | ForkedWorker
    log: IO[Any]
    started: float
    slot: Slot
    timeout_min: float | None


def default_threads(slots: int) -> int:
    return max(1, len(usable_cores()) // max(1, slots))


def slot_plan(options: RunOptions) -> list[Slot]:
    gpus = [] if options.device == "cpu" else (options.gpus if options.gpus is not None else visible_gpus())
    return plan_slots(options.slots, gpus, options.threads, usable_cores())


class LocalRunner:
    """Keeps every slot busy until each pending job has been tried once."""

    def __init__(self, jobs: list[JobSpec], options: RunOptions, listener: Listener | None = None,
                 resources: dict[str, Resources] | None = None) -> None:
        self.jobs = jobs
        self.options = options
        self.listener = listener or (lambda event, job, info: None)
        self.resources = resources or {}
        self.slots = slot_plan(options)
        if options.device == "cuda":  # a run that cannot work never starts
            check_cuda(self.slots)
        self.running: list[Running] = []
        self.summary = RunSummary()
        self.server: ForkServer | None = None

    def pending_jobs(self) -> list[JobSpec]:
        return pending_jobs(self.jobs, self.options.results, self.listener, self.summary)

    def run(self) -> RunSummary:
        """Run the pending jobs. Ctrl-C, SIGTERM and SIGHUP stop every worker (each keeps its last checkpoint)
        and release the claims; so does a full disk, after which ``summary.disk_full`` says where."""
        with stop_signals():
            try:
                self._run()
            except KeyboardInterrupt as exc:
                self.summary.interrupted = True
                self.summary.signal = exc.number if isinstance(exc, StopRequested) else signal.SIGINT
                self._stop_all()
            except DiskSpaceError as exc:
                self.summary.disk_full = str(exc)
                self._stop_all()
            finally:
                if self.server is not None:
                    self.server.close()
        return self.summary

    def _run(self) -> None:
        queue = self.pending_jobs()
        preload = self.options.preload
        if preload is None:
            preload = all(slot.gpu is None for slot in self.slots)
        if queue and preload:
            try:
                self.server = ForkServer()
            except OSError:
                self.server = None  # fresh interpreters then: slower to start, same results
        while queue or self.running:
            while queue and len(self.running) < len(self.slots):
                job = self._next_ready(queue)
                if job is None:  # every queued job waits for a running one
                    break
                self._start(job, self._free_slot())
            self._poll()
            if self.running:
                time.sleep(self.options.poll_seconds)

    def _next_ready(self, queue: list[JobSpec]) -> JobSpec | None:
        """The first queued job whose dependency (an evaluation job's training run) has finished; jobs whose
        dependency failed or is not part of this run are failed with the reason instead of waiting forever."""
        waiting = {job.run_id for job in queue} | {item.job.run_id for item in self.running}
        for index, job in enumerate(queue):
            dependency = job.depends_on
            if dependency is None or (run_dir(self.options.results, dependency) / RESULT).exists():
                return queue.pop(index)
            if dependency not in waiting:
                queue.pop(index)
                directory = run_dir(self.options.results, job.run_id)
                directory.mkdir(parents=True, exist_ok=True)
                write_config(directory, job.run_id, job.method, job.config, self.options.runtime(None))
                record_failure(directory, job.run_id, f"DependencyFailed: its training run {dependency} did not "
                               "finish; see `vrbench status` for that run, fix it and re-run the suite", None)
                self.summary.failed.append(job.run_id)
                self.listener("failed", job, {"detail": f"training run {dependency} did not finish"})
                return self._next_ready(queue)
        return None

    def _spawn(self, directory: Path, slot: Slot, log: IO[Any]) -> subprocess.Popen | ForkedWorker:
        """A worker process for one job: forked from the preloaded server when there is one."""
        env = {**slot.environment(), "PYTHONUNBUFFERED": "1"}
        if self.server is not None and self.server.alive():
            try:
                return self.server.spawn(directory.resolve(), env, (directory / LOG).resolve())
            except OSError:
                self.server = None
        env[PARENT_ENV] = str(os.getpid())  # the worker stops by itself if this launcher dies
        return subprocess.Popen(worker_command(directory), stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, env={**os.environ, **env}, start_new_session=True)

    def _free_slot(self) -> Slot:
        busy = {item.slot.index for item in self.running}
        return next(slot for slot in self.slots if slot.index not in busy)

    def _timeout_for(self, job: JobSpec) -> float | None:
        if self.options.timeout_min is not None:
            return self.options.timeout_min
        resources = self.resources.get(job.run_id)
        return resources.timeout_min if resources is not None else None

    def _start(self, job: JobSpec, slot: Slot) -> None:
        directory = run_dir(self.options.results, job.run_id)
        with writing(directory, "the job's run directory"):
            claim = try_claim(directory, executor="local", placement=slot.describe())
        if claim is None:
            self.summary.elsewhere.append(job.run_id)
            self.listener("elsewhere", job, {})
            return
        try:
            log = self._prepare(job, slot, directory, claim)
        except BaseException:  # e.g. out of space: the job stays as it was, unclaimed
            claim.release()
            raise
        if log is None:
            return
        process = self._spawn(directory, slot, log)
        self.running.append(Running(job, directory, claim, process, log, time.monotonic(), slot,
                                    self._timeout_for(job)))
        claim.set_worker(process.pid)
        self.listener("start", job, {"slot": slot.index})

    def _prepare(self, job: JobSpec, slot: Slot, directory: Path, claim: Claim) -> IO[Any] | None:
        """Write what the worker reads; its log, open for appending, or None when the job is not to be run."""
        if (directory / RESULT).exists():  # finished by another process between our scan and our claim
            claim.release()
            self.summary.skipped.append(job.run_id)
            return None
        runtime = {**self.options.runtime(slot.threads), "placement": slot.describe()}
        try:
            write_config(directory, job.run_id, job.method, job.config, runtime)
        except ResultsError as exc:  # a foreign config.json in this job's directory: fail this job, keep going
            claim.release()
            atomic_write_json(directory / ERROR, {"run_id": job.run_id, "error_type": "ResultsError",
                                                  "message": str(exc), "traceback": "", "exit_code": None,
                                                  "failed_at": now_iso()})
            self.summary.failed.append(job.run_id)
            self.listener("failed", job, {"detail": str(exc)})
            return None
        if (directory / ERROR).exists():  # the last failure is kept for reference; this attempt decides anew
            os.replace(directory / ERROR, directory / "error.previous.json")
        log = open(directory / LOG, "a", encoding="utf-8")
        try:
            with writing(directory / LOG, "the worker log"):
                log.write(f"\n=== {now_iso()} worker started by pid {os.getpid()} on {slot.label()}\n")
                log.flush()
        except BaseException:
            _close_quietly(log)
            raise
        return log

    def _poll(self) -> None:
        for item in list(self.running):
            code = item.process.poll()
            timeout = item.timeout_min
            if code is None and timeout is not None and time.monotonic() - item.started > timeout * 60:
                self._kill(item.process)
                code = item.process.wait()
                record_failure(item.directory, item.job.run_id,
                               f"TimeoutError: the job exceeded its time limit of {timeout:g} min and was killed",
                               code)
            if code is None:
                self.listener("progress", item.job, read_progress(item.directory))
                continue
            self._finish(item, code)

    def _finish(self, item: Running, code: int) -> None:
        _close_quietly(item.log)
        self.running.remove(item)
        try:
            if (item.directory / RESULT).exists():
                self.summary.done.append(item.job.run_id)
                self.listener("done", item.job, {})
                return
            if code == DISK_FULL_EXIT:  # every other job would fail alike: stop the run (see run())
                error = self._disk_full_error(item)
                self.summary.failed.append(item.job.run_id)
                self.listener("failed", item.job, {"detail": str(error)})
                raise error
            if not (item.directory / ERROR).exists():
                record_failure(item.directory, item.job.run_id, death_reason(code), code)
            self.summary.failed.append(item.job.run_id)
            self.listener("failed", item.job, {"detail": job_state(item.directory).detail})
        finally:
            item.claim.release()

    @staticmethod
    def _disk_full_error(item: Running) -> DiskSpaceError:
        """What the worker said about the full disk (error.json), or, when it had no room to say it, where."""
        try:
            error = read_json(item.directory / ERROR)
            if error.get("error_type") == DiskSpaceError.__name__:
                return DiskSpaceError(error["message"])
        except (OSError, ValueError, ResultsError):
            pass
        return out_of_space(item.directory / ERROR, f"job {item.job.run_id}'s results (it ran out of space and "
                            "had no room left to record where)")

    @staticmethod
    def _kill(process: subprocess.Popen | ForkedWorker) -> None:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def _stop_all(self) -> None:
        """Ctrl-C, SIGTERM, SIGHUP or a full disk: stop the workers (SIGTERM: each ends its current write and
        exits); their checkpoints stay, so a re-run resumes them."""
        for item in self.running:
            try:
                os.killpg(item.process.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        for item in self.running:
            try:
                item.process.wait(timeout=STOP_GRACE_SECONDS)
            except subprocess.TimeoutExpired:
                self._kill(item.process)
                item.process.wait()
            _close_quietly(item.log)
            item.claim.release()
        self.running.clear()


def _close_quietly(log: IO[Any]) -> None:
    try:
        log.close()
    except OSError:  # nothing buffered is worth a crash (a full disk)
        pass


def describe_states(jobs: list[JobSpec], results: Path) -> list[tuple[JobSpec, JobState]]:
    """Each job's state; Slurm-held jobs are described with their scheduler state (see runner.status)."""
    from vrbench.runner.status import describe_states as describe

    return describe(jobs, results)
