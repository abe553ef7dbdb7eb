"""A local run's processes end with it, a run that cannot work never starts, and a full disk is an ordinary error.

The slow tests start real runs of a small digits suite and end the launcher alone (never its process group) the
ways a launcher ends in practice: Ctrl-C, `kill` (SIGTERM), a closed terminal (SIGHUP), `kill -9` or the OOM killer
(SIGKILL), with workers forked from the fork server and started as fresh interpreters. Every process of a run
carries a marker in its environment, so the test finds them all by walking /proc, whoever their parent is now.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

from tests.conftest import REPO
from vrbench.errors import DiskSpaceError
from vrbench.runner.lifetime import stop_signals
from vrbench.store.rundir import CLAIM, atomic_write_text, try_claim
from vrbench.suite import load_suite

MARKER = "VRBENCH_TEST_RUN"
SUITE = """
name: lifetime
grid: {input: padding, mapping: [ilm, flm], backbone: efficientnet_lite0, dataset: digits, seed: 0}
defaults: {epochs: 3, batch_size: 16, subset: {train: 96, test: 40}, canvas: 48, milestones: [0.5]}
"""


def processes_marked(tag: str) -> list[int]:
    """Pids of live processes whose environment carries ``MARKER=tag`` (zombies excluded)."""
    wanted = f"{MARKER}={tag}".encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            if wanted not in Path(f"/proc/{entry}/environ").read_bytes().split(b"\0"):
                continue
            state = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            found.append(int(entry))
    return found


@pytest.fixture
def marked() -> Iterator[dict[str, str]]:
    """An environment marking every process of the run; afterwards nothing marked may remain (it is killed and
    the test fails if something did)."""
    tag = uuid.uuid4().hex
    yield {**os.environ, MARKER: tag}
    leftovers = processes_marked(tag)
    for pid in leftovers:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    assert not leftovers, f"processes of the run outlived the test: {leftovers}"


def launch(suite: Path, results: Path, env: dict[str, str], *flags: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "vrbench.cli", "run", str(suite), "--results", str(results),
                             "--threads", "1", *flags], cwd=suite.parent, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def finish(process: subprocess.Popen, timeout: float = 600) -> str:
    output, _ = process.communicate(timeout=timeout)
    return output


def temporaries(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.name.endswith((".tmp", ".wal")) or p.name.startswith(".")]


def logs(results: Path, run_ids: list[str]) -> str:
    """The jobs' own account, for a failure message."""
    files = [results / "runs" / run_id / name for run_id in run_ids for name in ("worker.log", "error.json")]
    return "".join(f"\n--- {path}\n{path.read_text()}" for path in files if path.exists())


def final_numbers(results: Path, run_ids: list[str]) -> dict[str, tuple]:
    numbers = {}
    for run_id in run_ids:
        result = json.loads((results / "runs" / run_id / "result.json").read_text())
        numbers[run_id] = (result["final_acc"], result["best_test_acc"], result["epochs"])
    return numbers


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, tuple]]:
    """The suite and the final numbers of an uninterrupted run of it."""
    root = tmp_path_factory.mktemp("lifetime")
    suite = root / "suite.yaml"
    suite.write_text(SUITE)
    results = root / "uninterrupted"
    output = finish(launch(suite, results, dict(os.environ)))
    run_ids = [job.run_id for job in load_suite(suite).jobs]
    assert "2 ran" in output, output
    return suite, final_numbers(results, run_ids)


# (signal to the launcher alone, extra flags, the launcher's exit code)
ENDINGS = [
    pytest.param(signal.SIGINT, [], 130, id="ctrl-c"),
    pytest.param(signal.SIGTERM, [], 143, id="sigterm"),
    pytest.param(signal.SIGHUP, [], 129, id="sighup"),
    pytest.param(signal.SIGKILL, [], -signal.SIGKILL, id="sigkill-forked-workers"),
    pytest.param(signal.SIGKILL, ["--no-preload"], -signal.SIGKILL, id="sigkill-fresh-workers"),
]


@pytest.mark.slow
@pytest.mark.parametrize("number, flags, code", ENDINGS)
def test_a_launcher_that_ends_takes_its_workers_with_it_and_the_rerun_resumes(
        number: int, flags: list[str], code: int, reference: tuple[Path, dict[str, tuple]],
        marked: dict[str, str], tmp_path: Path) -> None:
    suite, expected = reference
    run_ids = list(expected)
    results = tmp_path / "results"
    first = results / "runs" / run_ids[0]
    launcher = launch(suite, results, marked, *flags)
    deadline = time.monotonic() + 300
    while not (first / "checkpoint.pt").exists():  # the first job is mid-way: one of its 3 epochs is saved
        if launcher.poll() is not None or time.monotonic() > deadline:
            launcher.kill()
            pytest.fail("the first job never saved a checkpoint:\n" + finish(launcher) + logs(results, run_ids))
        time.sleep(0.02)
    assert len(processes_marked(marked[MARKER])) >= 2  # the launcher and at least one worker
    os.kill(launcher.pid, number)  # the launcher alone, not its process group
    output = finish(launcher, timeout=60)
    assert launcher.returncode == code, output
    if number != signal.SIGKILL:
        assert "interrupted: re-run the same command" in output and "Traceback" not in output

    stopped_by = time.monotonic() + 10
    while processes_marked(marked[MARKER]) and time.monotonic() < stopped_by:
        time.sleep(0.1)
    assert processes_marked(marked[MARKER]) == [], "a fork server or worker outlived its launcher by 10 s"
    assert temporaries(results) == []
    assert not (first / "result.json").exists() and not (first / "error.json").exists()

    rerun = launch(suite, results, marked, *flags)
    output = finish(rerun)
    assert rerun.returncode == 0, output + logs(results, run_ids)
    assert "2 ran, 0 already done, 0 failed" in output, output  # each job finished once, by the re-run
    assert final_numbers(results, run_ids) == expected
    resumed = json.loads((first / "result.json").read_text())["resumed_at_epochs"]
    assert resumed and 1 <= resumed[0] < 3, "the interrupted job should resume from its checkpoint"


# ------------------------------------------------------------------------------------ a run that cannot work


def test_device_cuda_without_a_usable_gpu_is_refused_before_anything_starts(tmp_path: Path,
                                                                           marked: dict[str, str]) -> None:
    """No GPU visible at all (cheap: no torch import), and a GPU named that torch cannot use (asked in a probe)."""
    for visible in ("", "GPU-00000000-0000-0000-0000-000000000000"):
        results = tmp_path / f"results{len(visible)}"
        env = {**marked, "CUDA_VISIBLE_DEVICES": visible}
        run = subprocess.run([sys.executable, "-m", "vrbench.cli", "run", str(REPO / "suites" / "smoke.yaml"),
                              "--results", str(results), "--device", "cuda"], cwd=tmp_path, env=env,
                             capture_output=True, text=True, timeout=300)
        assert run.returncode == 2, run.stdout + run.stderr
        lines = [line for line in run.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and "--device cuda" in lines[0] and "nothing was started" in lines[0], run.stderr
        assert "Traceback" not in run.stderr
        assert not results.exists()  # no claim, no run directory, no index


def test_sigterm_stops_the_launcher_like_ctrl_c_and_nohup_keeps_sighup_ignored() -> None:
    """In a real process: the handler raises a KeyboardInterrupt that names the signal; an ignored SIGHUP (as
    `nohup` leaves it) stays ignored, so the run survives the hang-up it asked to survive."""
    code = """
import os, signal, time
from vrbench.runner.lifetime import StopRequested, stop_signals
signal.signal(signal.SIGHUP, signal.SIG_IGN)
try:
    with stop_signals():
        os.kill(os.getpid(), signal.SIGHUP)
        time.sleep(0.2)
        print("survived SIGHUP")
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)
except KeyboardInterrupt as exc:
    print("stopped by", exc.number if isinstance(exc, StopRequested) else exc)
print("SIGTERM restored:", signal.getsignal(signal.SIGTERM) is signal.SIG_DFL)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.split("\n")[:3] == ["survived SIGHUP", f"stopped by {int(signal.SIGTERM)}",
                                          "SIGTERM restored: True"], out.stdout + out.stderr
    with stop_signals():  # not the main thread of a launcher: pytest's main thread works the same way
        pass


# --------------------------------------------------------------------------------------------- a full disk


def test_a_write_that_does_not_fit_is_one_error_and_leaves_nothing_behind(tmp_path: Path) -> None:
    """Real ENOSPC from a small filesystem: the temp file is removed, the previous file is intact, and a claim
    that could not be written is taken back (a half-written one would hold the job for 30 s)."""
    with mounted_small_filesystem(tmp_path / "small") as small:
        atomic_write_text(small / "result.json", "finished\n")
        with pytest.raises(DiskSpaceError, match=f"out of disk space in {small} while writing the big one"):
            atomic_write_text(small / "result.json", "x" * 2_000_000, "the big one")
        assert (small / "result.json").read_text() == "finished\n"
        assert sorted(p.name for p in small.iterdir() if p.name != "lost+found") == ["result.json"]
        run = small / "runs" / "0123456789abcdef"
        run.mkdir(parents=True)
        filler = small / "filler"
        with pytest.raises(OSError), open(filler, "wb") as handle:  # fill the disk to the last byte
            while True:
                handle.write(b"\0" * 4096)
                handle.flush()
        with pytest.raises(DiskSpaceError, match="claim"):
            try_claim(run, executor="local")
        assert not (run / CLAIM).exists()
        filler.unlink()
        assert try_claim(run, executor="local") is not None



FIVE_JOBS = """
name: full-disk
grid: {input: padding, mapping: [rlm, flm, ilm, blm, blmpp], backbone: efficientnet_lite0, dataset: digits, seed: 0}
defaults: {epochs: 2, batch_size: 32, subset: {train: 64, test: 40}, canvas: 64}
"""


@pytest.fixture
def small_filesystem(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB filesystem (tmpfs; else an ext4 image on a loop device), unmounted afterwards.

    A finished job of FIVE_JOBS takes about 250 KiB (its checkpoint is 210 KiB), so three fit and the fourth
    runs out of space while writing its checkpoint.
    """
    with mounted_small_filesystem(tmp_path / "small") as mountpoint:
        yield mountpoint


@contextlib.contextmanager
def mounted_small_filesystem(mountpoint: Path) -> Iterator[Path]:
    mountpoint.mkdir()
    tmp_path = mountpoint.parent
    attempts = [["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mountpoint)]]
    image = tmp_path / "small.ext4"
    if shutil.which("mkfs.ext4"):
        attempts.append(["sh", "-c", f"truncate -s 2m {image} && mkfs.ext4 -q -m 0 {image} && "
                         f"mount -o loop {image} {mountpoint}"])
    reasons = []
    for command in attempts:
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=60)
        except OSError as exc:
            reasons.append(f"{command[0]}: {exc}")
            continue
        if done.returncode == 0:
            break
        reasons.append(f"{' '.join(command[:3])}: {done.stderr.strip() or done.returncode}")
    else:
        pytest.skip("a small filesystem is needed and this test may not mount one (it needs root or "
                    "CAP_SYS_ADMIN): " + "; ".join(reasons))
    try:
        yield mountpoint
    finally:
        subprocess.run(["umount", "-l", str(mountpoint)], capture_output=True, timeout=60)


@pytest.mark.slow
def test_a_full_disk_stops_the_run_with_one_message_and_a_rerun_with_space_finishes(
        small_filesystem: Path, marked: dict[str, str], tmp_path: Path) -> None:
    suite = tmp_path / "suite.yaml"
    suite.write_text(FIVE_JOBS)
    run_ids = [job.run_id for job in load_suite(suite).jobs]
    results = small_filesystem

    first = launch(suite, results, marked)
    output = finish(first)
    assert first.returncode == 1, output
    assert "Traceback" not in output
    message = [line for line in output.splitlines() if line.startswith("error:")]
    assert len(message) == 1, output
    assert f"out of disk space in {results.resolve()}" in message[0] and "while writing" in message[0]
    assert "The run stopped" in message[0] and "re-run the same command" in message[0]
    assert temporaries(results) == []
    assert not list(results.rglob("claim.json"))  # nothing stays claimed
    finished = {run_id: (results / "runs" / run_id / "result.json").read_bytes() for run_id in run_ids
                if (results / "runs" / run_id / "result.json").exists()}
    assert 1 <= len(finished) < len(run_ids), output
    for data in finished.values():
        assert json.loads(data)["epochs"] == 2

    if small_filesystem.joinpath("lost+found").exists():  # ext4 cannot grow in place: move to a bigger directory
        results = tmp_path / "bigger"
        shutil.copytree(small_filesystem, results, ignore=shutil.ignore_patterns("lost+found"))
    else:
        subprocess.run(["mount", "-o", "remount,size=16m", str(small_filesystem)], check=True, timeout=60)
    second = launch(suite, results, marked)
    output = finish(second)
    assert second.returncode == 0, output
    assert f"{len(run_ids) - len(finished)} ran, {len(finished)} already done, 0 failed" in output
    for run_id, data in finished.items():  # finished results are kept byte for byte
        assert (results / "runs" / run_id / "result.json").read_bytes() == data
    assert temporaries(results) == []
    with duckdb.connect(str(results / "vrbench.duckdb"), read_only=True) as con:
        assert con.execute("select count(*) from runs where status = 'done'").fetchone()[0] == len(run_ids)
