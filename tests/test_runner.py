"""The local pool and the executor plumbing: slot placement, suite resources, Slurm-free fallbacks, CLI errors.

The last test is end to end (slow): a real two-slot pool over real worker processes, with one job that hangs
past its time limit, one whose worker is killed mid-job, one that fails on an unreadable checkpoint, and two
that finish.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

from tests.conftest import run_cli
from vrbench.errors import ConfigError
from vrbench.runner import scheduler
from vrbench.runner.placement import parse_gpu_list, plan_slots, visible_gpus
from vrbench.runner.resources import DEFAULT_TIMEOUT_MIN, Resources, merge_resources
from vrbench.runner.status import describe_states
from vrbench.store.rundir import atomic_write_json, claim_is_stale
from vrbench.suite import load_suite, parse_suite

BASE = """
name: pool
grid: {input: padding, mapping: [rlm, flm], backbone: efficientnet_lite0, dataset: digits, seed: [0, 1]}
defaults: {epochs: 1, batch_size: 32, subset: {train: 64, test: 40}, canvas: 48}
"""

# ----------------------------------------------------------------------------------------------- placement


def test_one_slot_per_gpu_by_default_each_with_its_own_gpu_and_cores() -> None:
    slots = plan_slots(None, ["0", "1"], None, [0, 1, 2, 3])
    assert [(s.gpu, s.threads, s.cpus) for s in slots] == [("0", 2, (0, 1)), ("1", 2, (2, 3))]
    env = slots[1].environment()
    assert env["CUDA_VISIBLE_DEVICES"] == "1" and env["OMP_NUM_THREADS"] == "2" and env["VRBENCH_CPUS"] == "2,3"


def test_more_slots_than_gpus_share_them_round_robin() -> None:
    slots = plan_slots(3, ["3", "5"], None, [0, 1, 2, 3, 4, 5])
    assert [s.gpu for s in slots] == ["3", "5", "3"]
    assert [s.cpus for s in slots] == [(0, 1), (2, 3), (4, 5)]


def test_without_gpus_one_cpu_slot_gets_every_core_unpinned() -> None:
    (slot,) = plan_slots(None, [], None, [0, 1])
    assert slot.gpu is None and slot.threads == 2 and slot.cpus is None
    assert "CUDA_VISIBLE_DEVICES" not in slot.environment()


def test_overlapping_thread_shares_are_not_pinned() -> None:
    slots = plan_slots(2, [], 3, [0, 1, 2, 3])  # 2 x 3 threads > 4 cores: no disjoint shares exist
    assert all(s.cpus is None and s.threads == 3 for s in slots)


def test_visible_gpus_follow_cuda_visible_devices_as_cuda_reads_it() -> None:
    assert visible_gpus({"CUDA_VISIBLE_DEVICES": "2,3"}) == ["2", "3"]
    assert visible_gpus({"CUDA_VISIBLE_DEVICES": ""}) == []
    assert visible_gpus({"CUDA_VISIBLE_DEVICES": "0,-1,1"}) == ["0"]  # CUDA stops at the first invalid entry
    assert visible_gpus({"CUDA_VISIBLE_DEVICES": "GPU-8f1c2d3e-aaaa"}) == ["GPU-8f1c2d3e-aaaa"]


@pytest.mark.parametrize("text, problem", [("0,x", "'x' is not a GPU index"), ("1,1", "GPU 1 twice")])
def test_bad_gpu_lists_are_refused(text: str, problem: str) -> None:
    with pytest.raises(ConfigError, match=problem):
        parse_gpu_list(text)


def test_a_worker_pins_itself_to_the_cores_its_launcher_chose() -> None:
    code = ("import os; from vrbench.runner.placement import apply_cpu_affinity; "
            "print(apply_cpu_affinity(), sorted(os.sched_getaffinity(0)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "VRBENCH_CPUS": "0"})
    assert out.stdout.split() == ["[0]", "[0]"]


# ----------------------------------------------------------------------------------------------- resources


def test_suite_resources_apply_per_job_and_stay_out_of_the_hash() -> None:
    plain = parse_suite(BASE)
    with_resources = parse_suite(BASE + """resources:
  timeout_min: 30
  gpus_per_job: 1
  overrides:
    - match: {mapping: flm, seed: 1}
      set: {mem_gb: 12, timeout_min: 90}
""")
    assert [j.run_id for j in plain.jobs] == [j.run_id for j in with_resources.jobs]
    by_combo = {(j.config["mapping"], j.config["seed"]): with_resources.resources[j.run_id]
                for j in with_resources.jobs}
    assert by_combo[("rlm", 0)] == {"timeout_min": 30, "gpus_per_job": 1}
    assert by_combo[("flm", 1)] == {"timeout_min": 90, "gpus_per_job": 1, "mem_gb": 12}
    assert plain.resources[plain.jobs[0].run_id] == {}


@pytest.mark.parametrize("section, message", [
    ("resources: {timeout: 5}", "x.yaml:5: unknown resource 'timeout'. Did you mean 'timeout_min'?"),
    ("resources: {gpus_per_job: -1}", "x.yaml:5: resource 'gpus_per_job' must be a non-negative integer, got -1"),
    ("resources:\n  overrides:\n    - match: {backbone: resnet99}\n      set: {mem_gb: 4}",
     "unknown backbone 'resnet99'"),
    ("resources: [1]", "'resources' must be a mapping"),
])
def test_bad_resources_name_the_file_and_line(section: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_suite(BASE + section + "\n", source="x.yaml")
    assert message in str(info.value)


def test_the_command_line_wins_over_the_suite_which_wins_over_defaults() -> None:
    assert merge_resources(None, None) == Resources(timeout_min=DEFAULT_TIMEOUT_MIN)
    suite = Resources(timeout_min=30, mem_gb=8, partition="gpu")
    merged = merge_resources(suite, Resources(timeout_min=5, cpus_per_job=2))
    assert merged == Resources(timeout_min=5, mem_gb=8, partition="gpu", cpus_per_job=2)


# ------------------------------------------------------------------------------ Slurm without a scheduler


def _slurm_claim(tmp_path: Path, age_seconds: float) -> Path:
    directory = tmp_path / "runs" / "0123456789abcdef"
    directory.mkdir(parents=True)
    atomic_write_json(directory / "claim.json", {"token": "t", "host": "login1", "launcher_pid": 1,
                                                 "slurm_job_id": "4242_3"})
    past = time.time() - age_seconds
    os.utime(directory / "claim.json", (past, past))
    return directory


def test_where_slurm_cannot_be_asked_a_slurm_claim_is_judged_by_its_heartbeat(tmp_path: Path,
                                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))  # no squeue: e.g. results copied to a laptop
    scheduler.forget()
    assert scheduler.query(["4242_3"]) is None
    fresh, old = _slurm_claim(tmp_path / "a", 60), _slurm_claim(tmp_path / "b", 3600)
    assert not claim_is_stale(fresh)
    assert claim_is_stale(old)
    (job,) = [j for j in parse_suite(BASE).jobs[:1]]
    (_, state), = describe_states([job], tmp_path / "c")
    assert state.status == "pending"


def test_first_error_line_finds_slurms_own_message(tmp_path: Path) -> None:
    log = tmp_path / "task.err"
    log.write_text("submitit INFO starting\nslurmstepd: error: *** JOB 8 ON vm CANCELLED AT 2026-01-01 ***\n"
                   "srun: error: vm: task 0: Killed\n")
    assert scheduler.first_error_line(log) == "slurmstepd: error: *** JOB 8 ON vm CANCELLED AT 2026-01-01 ***"
    assert scheduler.first_error_line(tmp_path / "missing.err") == ""


# ------------------------------------------------------------------------------------------------- CLI


def test_bad_executor_options_get_one_clear_line(tmp_path: Path) -> None:
    suite = tmp_path / "s.yaml"
    suite.write_text(BASE)
    bin_dir = Path(sys.executable).parent
    no_slurm = {"PATH": str(bin_dir)}  # this interpreter's scripts only: no sbatch
    cases = [
        (["--executor", "slurm"], no_slurm, "--executor slurm: Slurm's `sbatch` is not on PATH"),
        (["--partition", "gpu"], {}, "--partition only apply to --executor slurm"),
        (["--executor", "slurm", "--slots", "2"], no_slurm, "--slots only apply to --executor local"),
        (["--gpus", "0,zero"], {}, "--gpus: 'zero' is not a GPU index or UUID"),
    ]
    procs = [subprocess.Popen([sys.executable, "-m", "vrbench.cli", "run", str(suite), "--results",
                               str(tmp_path / "r"), *args], cwd=tmp_path, env={**os.environ, **env},
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for args, env, _ in cases]
    for proc, (args, _, message) in zip(procs, cases, strict=True):
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 2, (args, out, err)
        lines = [line for line in err.splitlines() if line.strip()]
        assert len(lines) == 1 and message in lines[0], (args, err)
        assert "Traceback" not in err
    assert not (tmp_path / "r" / "runs").exists()  # nothing was claimed or submitted


# --------------------------------------------------------------------------------- the pool, end to end

POOL = """
name: pool-failures
grid: {input: padding, mapping: [rlm, flm, ilm, blm, blmpp], backbone: efficientnet_lite0, dataset: digits, seed: 0}
defaults: {epochs: 2, batch_size: 32, subset: {train: 96, test: 40}, canvas: 48}
"""


@pytest.mark.slow
def test_two_slot_pool_survives_a_hang_a_killed_worker_and_a_crash(tmp_path: Path) -> None:
    """No test hooks: the hang is a checkpoint that is a FIFO (the real resume path blocks opening it), the
    killed worker gets SIGSEGV from outside (as a segfault or the OOM killer would), the crash is a checkpoint
    full of garbage (the real loader raises)."""
    suite = tmp_path / "suite.yaml"
    suite.write_text(POOL)
    jobs = {job.config["mapping"]: job for job in load_suite(suite).jobs}
    results = tmp_path / "results"
    runs = results / "runs"
    hang, killed, crash = (runs / jobs[m].run_id for m in ("rlm", "flm", "ilm"))
    hang.mkdir(parents=True)
    os.mkfifo(hang / "checkpoint.pt")
    crash.mkdir(parents=True)
    (crash / "checkpoint.pt").write_bytes(b"\x00 not a checkpoint")

    launcher = subprocess.Popen(
        [sys.executable, "-m", "vrbench.cli", "run", str(suite), "--results", str(results), "--slots", "2",
         "--gpus", "0,1", "--timeout-min", "0.3"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 120
    while not (killed / "progress.json").exists():  # the worker is past start-up and working
        assert launcher.poll() is None and time.monotonic() < deadline, "the second job never started"
        time.sleep(0.05)
    os.kill(json.loads((killed / "claim.json").read_text())["worker_pid"], signal.SIGSEGV)
    output, _ = launcher.communicate(timeout=300)

    assert launcher.returncode == 1, output
    assert "2 ran, 0 already done, 3 failed" in output
    errors = {name: json.loads((d / "error.json").read_text()) for name, d in
              (("hang", hang), ("killed", killed), ("crash", crash))}
    assert errors["hang"]["error_type"] == "TimeoutError"
    assert "time limit of 0.3 min" in errors["hang"]["message"]
    assert errors["killed"]["error_type"] == "WorkerDied" and "SIGSEGV" in errors["killed"]["message"]
    assert errors["crash"]["error_type"] == "ResultsError"
    assert "checkpoint.pt is unreadable" in errors["crash"]["message"]
    for mapping in ("blm", "blmpp"):
        assert json.loads((runs / jobs[mapping].run_id / "result.json").read_text())["epochs"] == 2

    # Each job ran on its slot's GPU and cores, as the launcher recorded and as the worker saw them.
    seen = {}
    for mapping in jobs:
        directory = runs / jobs[mapping].run_id
        placement = json.loads((directory / "config.json").read_text())["runtime"]["placement"]
        line = next(ln for ln in (directory / "worker.log").read_text().splitlines()
                    if ln.startswith("worker placement:"))
        assert f"CUDA_VISIBLE_DEVICES={placement['cuda_visible_devices']}" in line
        assert placement["cuda_visible_devices"] == ["0", "1"][placement["slot"]]
        if placement["cpus"] is not None:
            assert f"VRBENCH_CPUS={','.join(map(str, placement['cpus']))}" in line
        seen[placement["slot"]] = placement["cpus"]
    assert seen[0] != seen[1] or seen[0] is None

    status = run_cli("status", str(suite), "--results", str(results), cwd=tmp_path, env={"COLUMNS": "250"})
    for reason in ("TimeoutError", "SIGSEGV", "checkpoint.pt is unreadable"):
        assert reason in status.stdout
    assert "done: 2" in status.stdout and "failed: 3" in status.stdout
    with duckdb.connect(str(results / "vrbench.duckdb"), read_only=True) as con:
        assert con.execute("select status, count(*) from runs group by status order by status").fetchall() == [
            ("done", 2), ("failed", 3)]


@pytest.mark.slow
def test_forked_workers_compute_exactly_what_fresh_interpreters_compute(tmp_path: Path) -> None:
    suite = tmp_path / "suite.yaml"
    suite.write_text("""
name: fork
grid: {input: padding, mapping: ilm, backbone: efficientnet_lite0, dataset: digits, seed: 5}
defaults: {epochs: 2, batch_size: 16, subset: {train: 64, test: 40}, canvas: 48}
""")
    (job,) = load_suite(suite).jobs
    runs = {}
    for name, flags in (("forked", ["--preload"]), ("fresh", ["--no-preload"])):
        out = run_cli("run", str(suite), "--results", str(tmp_path / name), "--threads", "1", *flags, cwd=tmp_path)
        assert out.returncode == 0, out.stdout + out.stderr
        directory = tmp_path / name / "runs" / job.run_id
        env = json.loads((directory / "env.json").read_text())
        assert env["threads"] == 1 and env["argv"][-1] == str(directory.resolve())
        runs[name] = [{k: v for k, v in json.loads(line).items() if k != "seconds"}
                      for line in (directory / "metrics.jsonl").read_text().splitlines()]
    assert runs["forked"] == runs["fresh"]
