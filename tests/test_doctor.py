"""`vrbench doctor` on this machine and with simulated failures (a full disk through the free-space threshold, a
dataset a suite needs that is not here, an incomplete dataset), and the GPU self-check's code path on the CPU."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import torch
from rich.console import Console

from tests.conftest import run_cli
from vrbench.doctor import diagnose, run_doctor
from vrbench.gpu_check import TINY, check_device, run_gpu_check

CIFAR_SUITE = """
name: needs-cifar
grid: {input: padding, mapping: ilm, backbone: efficientnet_lite0, dataset: cifar10, seed: 0}
defaults: {epochs: 1}
"""


def screen(tmp_path: Path, **options) -> tuple[int, str]:
    console = Console(record=True, width=300)
    options = {"results": tmp_path / "results", "data_root": tmp_path / "data", "suite": None, "min_free_gb": None,
               "gpu_check": False, **options}
    code = run_doctor(console, **options)
    return code, console.export_text()


def test_doctor_says_what_this_machine_can_run(tmp_path: Path) -> None:
    done = run_cli("doctor", "--results", str(tmp_path / "results"), cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert torch.__version__.split("+")[0] in out
    for item in ("python", "torchvision", "open_clip", "results directory", "decoded-image cache", "shared border",
                 "slurm", "tensorboard", "ok: vrbench can run here"):
        assert item in out, item
    if not torch.cuda.is_available():
        assert "none: CPU jobs only" in out
    ready = next(line for line in out.splitlines() if line.split()[:1] == ["ready"])
    assert "digits" in ready and "efficientnet_lite0" in out  # ready offline: a dataset and packaged weights


def test_a_full_results_disk_is_one_problem_line_with_its_fix(tmp_path: Path) -> None:
    code, out = screen(tmp_path, min_free_gb=1e9)  # every real filesystem has less free than 1e9 GiB
    assert code == 1
    problems = out.split("problem(s):", 1)[1].strip().splitlines()
    assert len(problems) == 2, problems  # the results directory and the decoded-image cache, one line each
    assert "results directory" in problems[0] and "free some space there or choose another one with --results" \
        in problems[0]
    assert "decoded-image cache" in problems[1] and "VRBENCH_CACHE_DIR" in problems[1]


def test_a_results_directory_on_a_really_full_filesystem_is_a_problem(tmp_path: Path) -> None:
    small = tmp_path / "small"
    small.mkdir()
    mount = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(small)], capture_output=True)
    if mount.returncode != 0:
        pytest.skip(f"this test may not mount a tmpfs: {mount.stderr.decode().strip()}")
    try:  # 1 MiB free, below the default 2 GiB
        code, out = screen(tmp_path, results=small / "results")
    finally:
        subprocess.run(["umount", "-l", str(small)], capture_output=True, timeout=60)
    assert code == 1
    (problem,) = out.split("problem(s):", 1)[1].strip().splitlines()
    assert f"results directory {small}/results has" in problem and "free some space there" in problem


def test_a_dataset_the_suite_needs_is_a_problem_and_an_incomplete_one_too(tmp_path: Path) -> None:
    suite = tmp_path / "suite.yaml"
    suite.write_text(CIFAR_SUITE)
    code, out = screen(tmp_path, suite=suite)
    assert code == 1
    (problem,) = out.split("problem(s):", 1)[1].strip().splitlines()
    assert "the suite needs dataset cifar10" in problem and "vrbench data prepare cifar10" in problem
    (tmp_path / "data" / "cifar-10-batches-py").mkdir(parents=True)  # one file of six: an interrupted download
    (tmp_path / "data" / "cifar-10-batches-py" / "data_batch_1").write_bytes(b"x")
    diagnosis = diagnose(tmp_path / "results", tmp_path / "data")
    (incomplete,) = diagnosis.problems
    assert incomplete.startswith("dataset cifar10 is incomplete") and "vrbench data prepare cifar10" in incomplete


def test_without_a_gpu_the_gpu_check_says_so_and_succeeds(tmp_path: Path) -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    console = Console(record=True, width=200)
    assert run_gpu_check(console) == 0
    assert "no CUDA device is visible" in console.export_text()


@pytest.mark.slow  # four real (tiny) jobs on ResNet-18: 10 s on 2 idle cores, 45 s on busy ones
def test_the_gpu_checks_code_path_runs_and_judges_on_the_cpu() -> None:
    report = check_device("cpu", TINY)
    assert [run.name for run in report.runs] == ["ILM bf16-amp", "ILM fp32", "ILM fp32 no border", "SMM bf16-amp"]
    for run in report.runs:
        assert set(run.images_per_s) == {"train", "mapping", "test"} and min(run.images_per_s.values()) > 0
        assert run.estimate_bytes > 0 and run.peak_bytes is None  # no CUDA allocator to ask on a CPU
        assert run.result["epochs"] == TINY.epochs
    checks = {what: passed for what, passed, _ in report.checks}
    assert checks == {"logits bf16-amp vs fp32": True, "epoch-1 loss bf16-amp vs fp32": True,
                      "epoch-1 train_acc bf16-amp vs fp32": True, "epoch-1 test_acc bf16-amp vs fp32": True,
                      "shared border and fusion change no number": True, "SMM trains in bf16-amp": True}
    assert report.runs[1].shared_border and not report.runs[2].shared_border  # the switch was honoured
    assert report.ok
