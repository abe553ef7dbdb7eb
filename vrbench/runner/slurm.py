"""The Slurm executor: a suite's pending jobs as Slurm job arrays, through submitit.

The launcher claims each pending job (claim.json, O_EXCL, as the local pool does), writes its config.json,
and submits one array per set of resources (an array shares one set); each array task runs one job, or
`jobs_per_task` of them one after another, as `python -m vrbench.worker RUN_DIR` subprocesses. Workers read
everything from disk and write only their own run directory; the Slurm job id is kept in claim.json (so any
`vrbench` process can ask Slurm whether the claim is still held) and in slurm.json (a record of submissions).

Preemption and time limits: submitit has Slurm send SIGUSR2 shortly before the time limit; the task (only
it: workers ignore SIGUSR2) stops its worker, which keeps the checkpoint of its last finished epoch, and
requeues itself, and the requeued task resumes the job from that checkpoint. On preemption or scancel, Slurm's
SIGTERM stops the worker at once; the task keeps the job's claim and waits for Slurm to requeue or end it.
A task that Slurm ends without a result (scancel, node failure, out of memory) leaves its claim behind;
whoever looks next (the launcher with --wait, `vrbench status`, `vrbench collect`, a re-run) sees from
Slurm's state that it ended, and the job becomes runnable again.
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vrbench.errors import ConfigError, ResultsError
from vrbench.jobs import JobSpec
from vrbench.runner import scheduler
from vrbench.runner.common import Listener, RunSummary, death_reason, pending_jobs, record_failure, worker_command
from vrbench.runner.forkserver import ForkedWorker, ForkServer
from vrbench.runner.resources import DEFAULT_TIMEOUT_MIN, Resources, merge_resources
from vrbench.store.rundir import (
    CLAIM,
    ERROR,
    LOG,
    PROGRESS,
    RESULT,
    Claim,
    atomic_write_json,
    now_iso,
    pid_alive,
    read_json,
    read_progress,
    run_dir,
    try_claim,
    write_config,
)

SLURM_RECORD = "slurm.json"
SUBMITIT_DIR = "slurm"  # under the results directory: submitit's pickles and each task's stdout/stderr


def check_slurm() -> None:
    """One clear line instead of a traceback when this machine cannot submit to Slurm."""
    if shutil.which("sbatch") is None:
        raise ConfigError("--executor slurm: Slurm's `sbatch` is not on PATH; run this on a cluster login node "
                          "(or use --executor local)")
    try:
        import submitit  # noqa: F401
    except ImportError:
        raise ConfigError("--executor slurm needs submitit: pip install submitit") from None


@dataclass
class SlurmOptions:
    results: Path
    data_root: Path | None = None
    device: str = "auto"
    download: bool = False
    resources: Resources = field(default_factory=Resources)  # the command line's layer (wins over the suite)
    array_parallelism: int | None = None
    jobs_per_task: int = 1
    wait: bool = False
    job_name: str = "vrbench"
    poll_seconds: float = 2.0  # how often --wait asks Slurm; progress files are read four times as often
    tracking: dict[str, Any] = field(default_factory=dict)  # {"trackers": [...], "suite": name} (vrbench.tracking)


@dataclass
class Submitted:
    job: JobSpec
    directory: Path
    claim: Claim
    resources: Resources
    slurm_job_id: str = ""
    stderr: str = ""
    submitted: float = 0.0  # wall clock, to tell this attempt's progress.json from an older one
    started: bool = False


# --------------------------------------------------------------------------------------- on the node


# A worker that ends with one of these was stopped (scancel, preemption, the requeue path), not broken.
INTERRUPTED_CODES = frozenset({130, -signal.SIGINT, -signal.SIGTERM})
# After its worker was stopped, a task waits this long for Slurm's next move (requeue signal or SIGKILL).
LINGER_SECONDS = 120


# Set to 1 (in the environment `vrbench run --executor slurm` is started from; sbatch exports it) to start every
# worker of a packed task as a fresh interpreter instead of forking it from a preloaded one.
NO_PRELOAD_ENV = "VRBENCH_NO_PRELOAD"


def _worker_signals() -> None:
    """In the worker before exec: the requeue signal is for the task wrapper only; SIGINT and SIGTERM stop it."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # Python then turns SIGINT into KeyboardInterrupt
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(_requeue_signal(), signal.SIG_IGN)


def _requeue_signal() -> signal.Signals:
    from submitit.core.job_environment import JobEnvironment

    return JobEnvironment._usr_sig()


def _node_threads() -> int:
    """The CPUs Slurm gave this task (the whole node's cores would oversubscribe a shared node)."""
    for name in ("SLURM_CPUS_PER_TASK", "SLURM_CPUS_ON_NODE"):
        value = os.environ.get(name, "")
        if value.isdigit() and int(value) > 0:
            return int(value)
    return max(1, len(os.sched_getaffinity(0)))


class SlurmTask:
    """What one array task runs: its jobs' workers, one after another, each in its own process.

    submitit pickles this callable by reference (vrbench must be importable on the node) and, because it has a
    `checkpoint` method, requeues the task when Slurm times it out or preempts it.
    """

    def __init__(self) -> None:
        self._process: subprocess.Popen | ForkedWorker | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {}  # nothing but the arguments is needed to resume; a live Popen cannot be pickled

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._process = None

    def __call__(self, pack: list[dict[str, str]]) -> dict[str, str]:
        server = self._fork_server() if len(pack) > 1 else None
        try:
            return self._run_pack(pack, server)
        finally:
            if server is not None:
                server.close()

    @staticmethod
    def _fork_server() -> ForkServer | None:
        """A packed task (--jobs-per-task > 1) imports torch once and forks each job's worker from it, as the
        local pool does; the workers ignore the requeue signal, which is for this task only."""
        if os.environ.get(NO_PRELOAD_ENV) == "1":
            return None
        try:  # the server also outlives SIGTERM, so it can still report how its worker ended
            return ForkServer(ignore_signals=(_requeue_signal(), signal.SIGTERM))
        except OSError:
            return None  # fresh interpreters then: slower to start, same results

    def _run_pack(self, pack: list[dict[str, str]], server: ForkServer | None) -> dict[str, str]:
        outcome: dict[str, str] = {}
        threads = str(_node_threads())
        for entry in pack:
            directory = Path(entry["run_dir"])
            claim = Claim(directory, entry["token"], {})
            if (directory / RESULT).exists():
                claim.release()
                outcome[directory.name] = "done"
                continue
            if not _holds(directory, entry["token"]):
                print(f"{directory.name}: claim taken over by another launcher; not running it here", flush=True)
                outcome[directory.name] = "skipped"
                continue
            code = self._run_worker(directory, threads, server)
            if (directory / RESULT).exists():
                outcome[directory.name] = "done"
            elif code in INTERRUPTED_CODES:
                self._linger(directory.name, code)
            else:
                if not (directory / ERROR).exists():
                    record_failure(directory, directory.name, death_reason(code), code,
                                   {"slurm_job_id": _own_job_id()})
                outcome[directory.name] = "failed"
            claim.release()
        return outcome

    @staticmethod
    def _linger(run_id: str, code: int) -> None:
        """The worker was stopped by a signal: Slurm is cancelling, preempting or requeueing this task.

        Keep the claim (the job is unfinished, not failed) and wait for Slurm's next move: submitit's requeue
        handler or SIGKILL ends this process. If neither comes, end the task; its jobs stay claimed by a Slurm
        job that has ended, which any later look (status, collect, a re-run) sees, and a re-run resumes them.
        """
        print(f"{now_iso()} {run_id}: worker stopped by a signal (exit {code}); waiting for Slurm", flush=True)
        deadline = time.monotonic() + LINGER_SECONDS
        while time.monotonic() < deadline:
            time.sleep(0.5)
        raise RuntimeError(f"{run_id}: worker stopped by a signal (exit {code}) and Slurm neither requeued nor "
                           "ended this task; a re-run resumes its unfinished jobs")

    def _run_worker(self, directory: Path, threads: str, server: ForkServer | None = None) -> int:
        own = {"OMP_NUM_THREADS": threads, "PYTHONUNBUFFERED": "1"}
        with open(directory / LOG, "a", encoding="utf-8") as log:
            log.write(f"\n=== {now_iso()} worker started by Slurm task {_own_job_id()} on {os.uname().nodename}\n")
            log.flush()
            process: subprocess.Popen | ForkedWorker | None = None
            if server is not None and server.alive():
                try:
                    process = server.spawn(directory.resolve(), own, (directory / LOG).resolve())
                except OSError:
                    process = None
            if process is None:
                process = subprocess.Popen(worker_command(directory), stdout=log, stderr=subprocess.STDOUT,
                                           stdin=subprocess.DEVNULL, env={**os.environ, **own},
                                           preexec_fn=_worker_signals)
            self._process = process
            try:
                # Polling, not wait(): a blocking wait holds Popen's lock, and submitit's signal handler
                # (checkpoint below) runs on this thread while it is held.
                while (code := process.poll()) is None:
                    time.sleep(0.2)
                return code
            finally:
                self._process = None

    def checkpoint(self, pack: list[dict[str, str]]) -> Any:
        """Called by submitit on timeout or preemption: stop the worker (its last epoch is on disk), requeue."""
        from submitit.helpers import DelayedSubmission

        process = self._process
        # This runs inside a signal handler that interrupted __call__, so it never touches Popen's lock: plain
        # kill(2) and /proc. SIGINT makes the worker exit without recording a failure (KeyboardInterrupt).
        if process is not None and pid_alive(process.pid):
            os.kill(process.pid, signal.SIGINT)
            deadline = time.monotonic() + 20
            while pid_alive(process.pid) and time.monotonic() < deadline:
                time.sleep(0.2)
            if pid_alive(process.pid):
                os.kill(process.pid, signal.SIGKILL)
        print(f"{now_iso()} task {_own_job_id()} checkpointed: requeued, its jobs resume from their last epoch",
              flush=True)
        return DelayedSubmission(SlurmTask(), pack)


def _own_job_id() -> str:
    array, task = os.environ.get("SLURM_ARRAY_JOB_ID"), os.environ.get("SLURM_ARRAY_TASK_ID")
    return f"{array}_{task}" if array and task else os.environ.get("SLURM_JOB_ID", "?")


def _holds(directory: Path, token: str) -> bool:
    try:
        return read_json(directory / CLAIM).get("token") == token
    except (FileNotFoundError, ResultsError):
        return False


# ------------------------------------------------------------------------------------- the launcher


class SlurmRunner:
    """Claims and submits the pending jobs; with `wait`, follows them to the end like the local pool."""

    def __init__(self, jobs: list[JobSpec], options: SlurmOptions, listener: Listener | None = None,
                 resources: dict[str, Resources] | None = None) -> None:
        check_slurm()
        if options.jobs_per_task < 1:
            raise ConfigError("--jobs-per-task must be at least 1")
        self.jobs = jobs
        self.options = options
        self.options.results = Path(options.results).resolve()
        self.listener: Listener = listener or (lambda event, job, info: None)
        self.suite_resources = resources or {}
        self.summary = RunSummary()
        self.arrays: list[str] = []  # Slurm job ids of the arrays this run submitted

    def resources_for(self, job: JobSpec) -> Resources:
        """Built-in default < suite (`resources:`) < command line."""
        return merge_resources(self.suite_resources.get(job.run_id), self.options.resources)

    def run(self) -> RunSummary:
        queue = pending_jobs(self.jobs, self.options.results, self.listener, self.summary)
        claimed = [item for item in (self._claim(job) for job in queue) if item is not None]
        if claimed:
            self._submit(claimed)
        if self.options.wait:
            try:
                self._follow(claimed)
            except KeyboardInterrupt:  # stop following; the Slurm jobs go on
                self.summary.interrupted = True
        else:
            self.summary.submitted = [item.job.run_id for item in claimed]
        return self.summary

    # ---------------------------------------------------------------------------------- submit
    def _claim(self, job: JobSpec) -> Submitted | None:
        directory = run_dir(self.options.results, job.run_id)
        claim = try_claim(directory, executor="slurm")
        if claim is None:
            self.summary.elsewhere.append(job.run_id)
            self.listener("elsewhere", job, {})
            return None
        if (directory / RESULT).exists():
            claim.release()
            self.summary.skipped.append(job.run_id)
            return None
        resources = self.resources_for(job)
        runtime = {"data_root": str(Path(self.options.data_root).resolve()) if self.options.data_root else None,
                   "device": self.options.device, "threads": resources.cpus_per_job, "download": self.options.download,
                   **self.options.tracking}
        try:
            write_config(directory, job.run_id, job.method, job.config, runtime)
        except ResultsError as exc:
            claim.release()
            record_failure(directory, job.run_id, f"ResultsError: {exc}", None)
            self.summary.failed.append(job.run_id)
            self.listener("failed", job, {"detail": str(exc)})
            return None
        if (directory / ERROR).exists():  # the last failure is kept for reference; this attempt decides anew
            os.replace(directory / ERROR, directory / "error.previous.json")
        return Submitted(job, directory, claim, resources)

    def _submit(self, claimed: list[Submitted]) -> None:
        """Job arrays by resources; evaluation jobs whose training run is in this submission go in later arrays
        that Slurm starts only after the training arrays ended (``--dependency=afterany``: a failed training run
        makes its evaluation jobs fail with a clear message instead of waiting forever)."""
        in_batch = {item.job.run_id for item in claimed}
        stages = [[i for i in claimed if i.job.depends_on not in in_batch],
                  [i for i in claimed if i.job.depends_on in in_batch]]
        try:
            first_arrays: list[str] = []
            for stage, members in enumerate(stages):
                groups: dict[tuple, list[Submitted]] = {}
                for item in members:
                    groups.setdefault(item.resources.key(), []).append(item)
                dependency = f"afterany:{':'.join(first_arrays)}" if stage and first_arrays else None
                for items in groups.values():
                    # Packed jobs that share a backbone and dataset reuse the node's file cache.
                    items.sort(key=lambda i: (i.job.config["backbone"], i.job.config["dataset"]))
                    size = self.options.jobs_per_task
                    packs = [items[start:start + size] for start in range(0, len(items), size)]
                    self._submit_array(items[0].resources, packs, dependency)
                    if stage == 0:
                        first_arrays.append(self.arrays[-1])
        except BaseException:
            for item in claimed:  # what was not submitted is free again; what was stays with its Slurm job
                if not item.slurm_job_id:
                    item.claim.release()
            raise

    def _executor(self, resources: Resources, per_task: int, dependency: str | None = None) -> Any:
        import submitit

        folder = self.options.results / SUBMITIT_DIR / "%j"
        executor = submitit.AutoExecutor(folder=folder, cluster="slurm", slurm_max_num_timeout=3)
        minutes = max(1, math.ceil((resources.timeout_min or DEFAULT_TIMEOUT_MIN) * per_task))
        params: dict[str, Any] = {
            "name": self.options.job_name, "timeout_min": minutes,
            # submitit's requeue signal comes this long before the limit: long enough to stop a worker cleanly.
            "slurm_signal_delay_s": int(min(90, max(15, minutes * 60 * 0.2))),
        }
        if resources.partition:
            params["slurm_partition"] = resources.partition
        if resources.gpus_per_job:
            params["gpus_per_node"] = resources.gpus_per_job
        if resources.cpus_per_job:
            params["cpus_per_task"] = resources.cpus_per_job
        if resources.mem_gb:
            params["mem_gb"] = float(resources.mem_gb)
        if self.options.array_parallelism:
            params["slurm_array_parallelism"] = self.options.array_parallelism
        if dependency:
            params["slurm_additional_parameters"] = {"dependency": dependency}
        executor.update_parameters(**params)
        return executor

    def _submit_array(self, resources: Resources, packs: list[list[Submitted]], dependency: str | None = None) -> None:
        executor = self._executor(resources, max(len(pack) for pack in packs), dependency)
        arguments = [[{"run_dir": str(item.directory), "token": item.claim.token} for item in pack] for pack in packs]
        try:
            with contextlib.redirect_stderr(io.StringIO()):  # submitit echoes sbatch's stderr; we say it once
                handles = executor.map_array(SlurmTask(), arguments)
        except Exception as exc:  # noqa: BLE001 - sbatch's refusal (bad partition, limits) becomes one message
            text = str(exc).strip().splitlines()
            detail = next((line for line in text if "error" in line.lower()), text[-1] if text else repr(exc))
            raise ConfigError(f"Slurm refused the submission: {detail.strip()}") from None
        submitted = time.time()
        for handle, pack in zip(handles, packs, strict=True):
            for item in pack:
                item.slurm_job_id = str(handle.job_id)
                item.stderr = str(handle.paths.stderr)
                item.submitted = submitted
                item.claim.data.update(slurm_job_id=item.slurm_job_id, submitted_at=now_iso())
                atomic_write_json(item.directory / CLAIM, item.claim.data)
                self._write_record(item, [i.job.run_id for i in pack], handle)
        self.arrays.append(scheduler.base_id(str(handles[0].job_id)))

    def _write_record(self, item: Submitted, pack: list[str], handle: Any) -> None:
        path = item.directory / SLURM_RECORD
        try:
            previous = read_json(path)
        except (FileNotFoundError, ResultsError):
            previous = {}
        history = previous.get("history", [])
        if previous.get("job_id"):
            history.append({k: previous.get(k) for k in ("job_id", "submitted_at")})
        atomic_write_json(path, {
            "job_id": item.slurm_job_id, "array_job_id": scheduler.base_id(item.slurm_job_id),
            "submitted_at": now_iso(), "stdout": str(handle.paths.stdout), "stderr": item.stderr,
            "resources": item.resources.as_dict(), "packed_with": pack, "history": history})

    # ---------------------------------------------------------------------------------- follow
    def _follow(self, items: list[Submitted]) -> None:
        outstanding = {item.job.run_id: item for item in items}
        next_query = 0.0
        states: dict[str, scheduler.TaskState] | None = {}
        while outstanding:
            if time.monotonic() >= next_query:
                scheduler.forget()
                states = scheduler.query([item.slurm_job_id for item in outstanding.values()])
                next_query = time.monotonic() + self.options.poll_seconds
            for item in list(outstanding.values()):
                if self._settle(item, states):
                    del outstanding[item.job.run_id]
            if outstanding:
                time.sleep(self.options.poll_seconds / 4)

    def _settle(self, item: Submitted, states: dict[str, scheduler.TaskState] | None) -> bool:
        """Report what happened to one job since the last look; True once it is finished either way."""
        finished = self._finished(item)
        if finished is not None:
            return finished
        task = states.get(item.slurm_job_id) if states else None
        if task is not None and task.final:
            # Files first: the worker may have finished between the two looks.
            finished = self._finished(item, task_ended=True)
            if finished is not None:
                return finished
            line = scheduler.first_error_line(item.stderr)
            record_failure(item.directory, item.job.run_id,
                           f"SlurmJobEnded: Slurm job {item.slurm_job_id} ended ({task.state}) without a result"
                           + (f": {line}" if line else ""), None, {"slurm_job_id": item.slurm_job_id})
            item.claim.release()
            self.summary.failed.append(item.job.run_id)
            self.listener("failed", item.job, {"detail": f"Slurm {task.state}" + (f": {line}" if line else "")})
            return True
        if self._progress_is_ours(item):
            if not item.started:
                item.started = True
                self.listener("start", item.job, {"slurm_job_id": item.slurm_job_id})
            self.listener("progress", item.job, read_progress(item.directory))
        return False

    def _finished(self, item: Submitted, task_ended: bool = False) -> bool | None:
        if (item.directory / RESULT).exists():
            item.claim.release()
            if not item.started:
                self.listener("start", item.job, {"slurm_job_id": item.slurm_job_id})
            self.summary.done.append(item.job.run_id)
            self.listener("done", item.job, {})
            return True
        # error.json is final once the task let go of the claim (it writes the error, then releases).
        if (item.directory / ERROR).exists() and (task_ended or not _holds(item.directory, item.claim.token)):
            item.claim.release()
            if not item.started:
                self.listener("start", item.job, {"slurm_job_id": item.slurm_job_id})
            self.summary.failed.append(item.job.run_id)
            error = read_json(item.directory / ERROR)
            self.listener("failed", item.job, {"detail": f"{error.get('error_type')}: {error.get('message')}"})
            return True
        return None

    @staticmethod
    def _progress_is_ours(item: Submitted) -> bool:
        try:
            return (item.directory / PROGRESS).stat().st_mtime >= item.submitted - 1
        except OSError:
            return False


def describe_submission(runner: SlurmRunner, say: Callable[[str], None]) -> None:
    """What a user needs after `run --executor slurm` without --wait."""
    if runner.arrays:
        arrays = ", ".join(runner.arrays)
        say(f"submitted {len(runner.summary.submitted)} job(s) to Slurm as job array(s) {arrays}; "
            f"logs in {runner.options.results / SUBMITIT_DIR}/<job id>/")
