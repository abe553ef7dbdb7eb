"""Tests for vrbench.store.rundir: atomic files, O_EXCL claims with stale detection, job states, set_aside."""

from __future__ import annotations

import json
import multiprocessing
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from vrbench.errors import ResultsError
from vrbench.store.rundir import (
    CHECKPOINT,
    CLAIM,
    ERROR,
    PROGRESS,
    RESULT,
    STALE_AFTER_SECONDS,
    JobState,
    atomic_write_json,
    claim_is_stale,
    job_state,
    read_json,
    run_dir,
    set_aside,
    try_claim,
    write_config,
)
from vrbench.worker import record_failure

HOST = socket.gethostname()


@pytest.fixture(scope="module")
def dead_pid() -> int:
    """The pid of a process that has exited and been reaped."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def write_claim(directory: Path, **fields) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    data = {"token": "someone-else", "host": HOST, "launcher_pid": None, "worker_pid": None, **fields}
    (directory / CLAIM).write_text(json.dumps(data))


def age(path: Path, seconds: float) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then))


# ------------------------------------------------------------------------------------------------ files


def test_atomic_write_json_writes_the_data_and_leaves_no_temp_files(tmp_path: Path):
    path = tmp_path / RESULT
    atomic_write_json(path, {"b": 1, "a": [1.5, None]})
    atomic_write_json(path, {"final_acc": 45.0})  # overwrite
    assert read_json(path) == {"final_acc": 45.0}
    assert [p.name for p in tmp_path.iterdir()] == [RESULT]


def test_atomic_write_json_that_fails_keeps_the_old_file(tmp_path: Path):
    path = tmp_path / RESULT
    atomic_write_json(path, {"final_acc": 1.0})
    with pytest.raises(TypeError):
        atomic_write_json(path, {"bad": object()})
    assert read_json(path) == {"final_acc": 1.0}
    assert [p.name for p in tmp_path.iterdir()] == [RESULT]


def test_read_json_on_a_truncated_file_names_the_path(tmp_path: Path):
    path = tmp_path / RESULT
    path.write_text(json.dumps({"final_acc": 45.0, "best_test_acc": 46.0})[:17])
    with pytest.raises(ResultsError, match="result.json is unreadable or corrupted") as info:
        read_json(path)
    assert str(path) in str(info.value)


def test_read_json_on_invalid_utf8_is_a_results_error(tmp_path: Path):
    path = tmp_path / "env.json"
    path.write_bytes(b'{"a": "\xff\xfe"}')
    with pytest.raises(ResultsError, match="env.json"):
        read_json(path)


def test_read_json_on_a_missing_file_is_file_not_found(tmp_path: Path):
    with pytest.raises(FileNotFoundError):
        read_json(tmp_path / "nope.json")


def test_run_dir_accepts_hex_ids_under_the_runs_root(tmp_path: Path):
    assert run_dir(tmp_path, "7d64104a22fea310") == tmp_path / "runs" / "7d64104a22fea310"


@pytest.mark.parametrize("bad", ["../7d64104a22fea310", "7d64104a/22fea310", "..", "../../etc", "/abs0000000",
                                 "", "7D64104A22FEA310", "abc", "7d64104a22fea31g", "7d64104a 22fea310"])
def test_run_dir_rejects_ids_that_are_not_lowercase_hex(tmp_path: Path, bad: str):
    with pytest.raises(ResultsError, match="is not a run id"):
        run_dir(tmp_path, bad)


def test_write_config_accepts_the_same_config_and_refuses_a_different_one(tmp_path: Path):
    directory = tmp_path / "runs" / "7d64104a22fea310"
    write_config(directory, "7d64104a22fea310", "padding+ilm", {"epochs": 3}, {"device": "cpu"})
    write_config(directory, "7d64104a22fea310", "padding+ilm", {"epochs": 3}, {"device": "cuda"})
    assert read_json(directory / "config.json")["runtime"] == {"device": "cuda"}
    with pytest.raises(ResultsError, match="holds a different config"):
        write_config(directory, "7d64104a22fea310", "padding+ilm", {"epochs": 4}, {})
    assert read_json(directory / "config.json")["config"] == {"epochs": 3}


# ----------------------------------------------------------------------------------------------- claims


def test_a_second_claim_is_refused_while_the_first_is_held(tmp_path: Path):
    first = try_claim(tmp_path, note="first")
    assert first is not None
    data = read_json(tmp_path / CLAIM)
    assert data["token"] == first.token and data["launcher_pid"] == os.getpid() and data["host"] == HOST
    assert data["note"] == "first"
    assert not claim_is_stale(tmp_path)
    assert try_claim(tmp_path) is None
    first.release()
    assert not (tmp_path / CLAIM).exists()
    again = try_claim(tmp_path)
    assert again is not None and again.token != first.token


def test_a_claim_of_dead_processes_is_stale_and_taken_over(tmp_path: Path, dead_pid: int):
    write_claim(tmp_path, token="old", launcher_pid=dead_pid, worker_pid=dead_pid)
    assert claim_is_stale(tmp_path)
    assert job_state(tmp_path).status == "stale"
    claim = try_claim(tmp_path)
    assert claim is not None
    assert read_json(tmp_path / CLAIM)["token"] == claim.token
    # The stale claim is kept aside, not deleted.
    kept = [read_json(p)["token"] for p in tmp_path.glob("claim.stale-*.json")]
    assert kept == ["old"]


def test_a_claim_whose_pid_was_recycled_is_stale(tmp_path: Path):
    # Our own pid is alive, but the recorded start time is not this process's: the pid was reused.
    write_claim(tmp_path, launcher_pid=os.getpid(), launcher_start="1")
    assert claim_is_stale(tmp_path)


def test_a_claim_with_a_dead_launcher_but_a_live_worker_is_held(tmp_path: Path, dead_pid: int):
    worker = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        write_claim(tmp_path, launcher_pid=dead_pid, worker_pid=worker.pid)
        assert not claim_is_stale(tmp_path)
        assert try_claim(tmp_path) is None
        assert job_state(tmp_path).status == "running"
    finally:
        worker.kill()
        worker.wait()
    assert claim_is_stale(tmp_path)
    assert try_claim(tmp_path) is not None


def test_a_zombie_worker_counts_as_dead(tmp_path: Path, dead_pid: int):
    worker = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        stat = Path(f"/proc/{worker.pid}/stat")
        deadline = time.monotonic() + 10
        while stat.read_text().rsplit(")", 1)[1].split()[0] != "Z":  # exited, not yet reaped
            assert time.monotonic() < deadline
            time.sleep(0.01)
        write_claim(tmp_path, launcher_pid=dead_pid, worker_pid=worker.pid)
        assert claim_is_stale(tmp_path)
    finally:
        worker.wait()


def test_claim_set_worker_records_the_worker(tmp_path: Path):
    claim = try_claim(tmp_path)
    assert claim is not None
    claim.set_worker(os.getpid())
    data = read_json(tmp_path / CLAIM)
    assert data["worker_pid"] == os.getpid() and data["token"] == claim.token and data["worker_start"]


def test_release_only_removes_our_own_claim(tmp_path: Path):
    ours = try_claim(tmp_path)
    assert ours is not None
    write_claim(tmp_path, token="taken-over-by-someone-else", launcher_pid=os.getpid())
    ours.release()
    assert read_json(tmp_path / CLAIM)["token"] == "taken-over-by-someone-else"
    (tmp_path / CLAIM).unlink()
    ours.release()  # nothing there: no error


def test_a_claim_from_another_host_is_stale_only_after_its_heartbeat_stops(tmp_path: Path):
    write_claim(tmp_path, host="another-host.invalid", launcher_pid=1, worker_pid=1)
    assert not claim_is_stale(tmp_path)
    age(tmp_path / CLAIM, STALE_AFTER_SECONDS + 60)
    assert claim_is_stale(tmp_path)
    (tmp_path / PROGRESS).write_text(json.dumps({"epoch": 1, "epochs": 3}))  # a recent heartbeat
    assert not claim_is_stale(tmp_path)
    age(tmp_path / PROGRESS, STALE_AFTER_SECONDS + 60)
    assert claim_is_stale(tmp_path)


def test_an_empty_claim_file_is_given_time_to_be_written(tmp_path: Path):
    (tmp_path / CLAIM).write_text("")  # created with O_EXCL, not yet written
    assert not claim_is_stale(tmp_path)
    assert try_claim(tmp_path) is None
    age(tmp_path / CLAIM, 60)
    assert claim_is_stale(tmp_path)
    assert try_claim(tmp_path) is not None


def test_no_claim_is_not_stale(tmp_path: Path):
    assert not claim_is_stale(tmp_path)


def _take(directories: list[str], barrier, queue) -> None:
    tokens = []
    for directory in directories:
        barrier.wait()
        claim = try_claim(Path(directory))
        tokens.append(claim.token if claim else None)
    queue.put(tokens)


def _race(root: Path, rounds: int, offset: int) -> list[tuple[list[str], str]]:
    """Two processes try to take over the same stale claim, `rounds` times; returns (winners, final token)."""
    directories = []
    for index in range(offset, offset + rounds):
        directory = root / f"{index:05d}"
        # A recycled pid (alive, but not the process that claimed): stale, as after a reboot or pid wrap-around.
        write_claim(directory, token="old", launcher_pid=os.getpid(), launcher_start="1",
                    worker_pid=os.getpid(), worker_start="1")
        directories.append(str(directory))
    context = multiprocessing.get_context("fork")
    barrier, queue = context.Barrier(2), context.Queue()
    takers = [context.Process(target=_take, args=(directories, barrier, queue)) for _ in range(2)]
    for taker in takers:
        taker.start()
    results = [queue.get(timeout=60) for _ in takers]
    for taker in takers:
        taker.join(timeout=60)
    outcome = []
    for directory, tokens in zip(directories, zip(*results, strict=True), strict=True):
        outcome.append(([t for t in tokens if t], read_json(Path(directory) / CLAIM)["token"]))
    return outcome


def test_exactly_one_of_two_concurrent_takers_wins_a_stale_claim(tmp_path: Path):
    # The race window is narrow (about 1 round in 100 on 2 cores), so run up to 1500 rounds, stopping early.
    for batch in range(5):
        for winners, final in _race(tmp_path, 300, batch * 300):
            assert len(winners) == 1, f"{len(winners)} winners"
            assert winners == [final], "the winner's claim was replaced"


def test_concurrent_takers_never_both_miss_a_stale_claim(tmp_path: Path):
    # The half of the property that holds today: a stale claim is always taken by someone.
    for winners, final in _race(tmp_path, 40, 0):
        assert winners and final in winners


# ------------------------------------------------------------------------------------------------- state


def test_state_done(tmp_path: Path):
    atomic_write_json(tmp_path / RESULT, {"final_acc": 45.04, "best_test_acc": 46.1})
    assert job_state(tmp_path) == JobState("done", "final 45.0%")


def test_state_done_wins_over_a_leftover_claim_and_error(tmp_path: Path, dead_pid: int):
    atomic_write_json(tmp_path / RESULT, {"final_acc": 50.0})
    write_claim(tmp_path, launcher_pid=dead_pid)
    atomic_write_json(tmp_path / ERROR, {"error_type": "RuntimeError", "message": "old"})
    assert job_state(tmp_path).status == "done"


def test_state_corrupt_for_a_truncated_result(tmp_path: Path):
    (tmp_path / RESULT).write_text('{"final_acc": 45.0, "best_te')
    state = job_state(tmp_path)
    assert state.status == "corrupt"
    assert str(tmp_path / RESULT) in state.detail


def test_state_failed_shows_the_first_line_of_the_error(tmp_path: Path):
    try:
        raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB\nsecond line\nthird line")
    except RuntimeError as exc:
        record_failure(tmp_path, exc)
    state = job_state(tmp_path)
    assert state == JobState("failed", "RuntimeError: CUDA out of memory. Tried to allocate 2.00 GiB")
    assert "second line" in read_json(tmp_path / ERROR)["traceback"]


def test_state_failed_with_a_corrupt_error_file(tmp_path: Path):
    (tmp_path / ERROR).write_text('{"error_type": "Runt')
    state = job_state(tmp_path)
    assert state.status == "failed" and "error.json" in state.detail


def test_state_pending(tmp_path: Path):
    assert job_state(tmp_path) == JobState("pending")
    assert job_state(tmp_path / "does-not-exist") == JobState("pending")


def test_state_pending_with_a_checkpoint_resumes(tmp_path: Path):
    (tmp_path / CHECKPOINT).write_bytes(b"\x80\x02not really a checkpoint")
    assert job_state(tmp_path) == JobState("pending", "interrupted; resumes from its checkpoint")


def test_state_stale(tmp_path: Path, dead_pid: int):
    write_claim(tmp_path, launcher_pid=dead_pid, worker_pid=dead_pid)
    (tmp_path / CHECKPOINT).write_bytes(b"x")
    assert job_state(tmp_path) == JobState("stale", "its process is gone; a re-run resumes it")


def test_state_running_with_progress(tmp_path: Path):
    claim = try_claim(tmp_path)
    assert claim is not None
    assert job_state(tmp_path) == JobState("running")
    atomic_write_json(tmp_path / PROGRESS, {"epoch": 2, "epochs": 3})
    assert job_state(tmp_path) == JobState("running", "epoch 2/3")
    atomic_write_json(tmp_path / ERROR, {"error_type": "RuntimeError", "message": "previous attempt"})
    assert job_state(tmp_path).status == "running"  # the live attempt decides, not the last failure
    claim.release()
    assert job_state(tmp_path) == JobState("failed", "RuntimeError: previous attempt")


# --------------------------------------------------------------------------------------------- set_aside


def test_set_aside_renames_instead_of_deleting(tmp_path: Path):
    path = tmp_path / RESULT
    path.write_text('{"final_acc": 4')
    target = set_aside(path)
    assert not path.exists()
    assert target.parent == tmp_path and target.name.startswith("result.json.corrupt-")
    assert target.read_text() == '{"final_acc": 4'
    assert job_state(tmp_path).status == "pending"


def test_set_aside_twice_keeps_both_files(tmp_path: Path):
    while time.time() % 1 > 0.5:  # start early in a second, so both calls below share it
        time.sleep(0.05)
    path = tmp_path / RESULT
    path.write_text("first corrupt copy")
    set_aside(path)
    path.write_text("second corrupt copy")
    set_aside(path)
    kept = sorted(p.read_text() for p in tmp_path.iterdir())
    assert kept == ["first corrupt copy", "second corrupt copy"]


def test_run_dir_rejects_a_trailing_newline(tmp_path: Path):
    with pytest.raises(ResultsError):
        run_dir(tmp_path, "7d64104a22fea310\n")


def test_remove_temporaries_keeps_a_live_writers_file(tmp_path) -> None:
    """A worker clears leftovers of killed writes at start, but not the launcher's claim update in progress."""
    import os
    import subprocess

    from vrbench.store.rundir import remove_temporaries

    dead = subprocess.Popen(["true"])
    dead.wait()
    live = tmp_path / f".claim.json.{os.getppid()}.abcd1234.tmp"
    leftover = tmp_path / f".checkpoint.pt.{dead.pid}.abcd1234.tmp"
    live.write_text("{}")
    leftover.write_text("x")
    assert remove_temporaries(tmp_path) == [leftover]
    assert live.exists() and not leftover.exists()
