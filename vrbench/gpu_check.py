"""`vrbench doctor --gpu-check`: on each visible GPU, short real jobs that tell whether vrbench's GPU paths work.

Per device, through the one training loop (vrbench.engine.loop.Job), on a CIFAR-10 the check writes itself in the
real on-disk format (random images and labels) and ResNet-18 with random weights (none ship offline; speed and
agreement do not depend on the values), at ILM-VP's CIFAR geometry (32-px images on a 224-px canvas, batch 128):

1. padding + ILM in the GPU's precision (fp16 autocast with gradient scaling) and in float32: the two precisions'
   logits on one test batch before training, and their first-epoch loss and accuracies, must agree;
2. the float32 job again with the CPU-only rewrites' switches off (VRBENCH_SHARE_BORDER=0,
   VRBENCH_FUSE_ACTIVATIONS=0): on CUDA the shared border must give the same numbers as without it;
3. SMM + ILM in the GPU's precision: it must train (finite loss) and test.

Each job reports images/s of its training, mapping and test passes and its peak GPU memory (torch's allocator)
against `vrbench run --dry-run`'s estimate (vrbench/footprint.py; the estimate also counts the CUDA context).
Without a GPU it says so and succeeds. The device and the sizes are parameters, so the same code runs on a CPU with
a tiny configuration (tests/test_doctor.py), where the low precision is bfloat16 autocast.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import os
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table


@dataclass(frozen=True)
class CheckConfig:
    """The jobs' sizes: ILM-VP's CIFAR setting by default, smaller for a CPU test."""

    train: int = 1024
    test: int = 512
    batch_size: int = 128
    epochs: int = 2
    canvas: int = 224  # padding's canvas = ResNet-18's input size
    smm_resolution: int = 224
    smm_margin: int = 32
    logit_tolerance: float = 2e-2  # relative to the logits' largest magnitude (fp16 rounding through 18 layers)
    loss_tolerance: float = 0.05  # relative, first-epoch training loss
    accuracy_points: float = 3.0  # first-epoch accuracies may differ by this (plus two images' worth)
    same_tolerance: float = 1e-4  # relative: the shared border against none, both in float32


TINY = CheckConfig(train=32, test=16, batch_size=16, epochs=1, canvas=48, smm_resolution=48, smm_margin=8)


@dataclass
class JobRun:
    name: str
    precision: str
    switches: str
    result: dict[str, Any]
    first_epoch: dict[str, Any]
    probe: Any  # the logits of one test batch before training (float32, CPU)
    images_per_s: dict[str, float]
    peak_bytes: int | None
    estimate_bytes: int
    shared_border: bool


@dataclass
class DeviceReport:
    device: str
    runs: list[JobRun] = field(default_factory=list)
    checks: list[tuple[str, bool, str]] = field(default_factory=list)  # (what, passed, the measured numbers)

    @property
    def ok(self) -> bool:
        return all(passed for _, passed, _ in self.checks)


def random_resnet18(name: str):
    """ResNet-18 with seed-0 random weights, in eval mode, leaving the caller's RNG as it was."""
    import torch
    import torchvision

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return torchvision.models.resnet18(weights=None).eval()


def _check_job_class():
    from vrbench.engine.loop import Job

    class CheckJob(Job):
        """A real job with two things fixed from outside: the precision (the engine picks fp16 autocast on every
        GPU; the check also wants float32 there) and random backbone weights; it times its passes."""

        precision = "fp32"

        @property
        def plan(self):
            return self._plan

        @plan.setter
        def plan(self, plan) -> None:
            self._plan = dataclasses.replace(plan, precision=self.precision)

        @property
        def backbone_info(self):
            return self._backbone_info

        @backbone_info.setter
        def backbone_info(self, info) -> None:
            self._backbone_info = dataclasses.replace(info, loader="vrbench.gpu_check:random_resnet18", offline=True)

        def _timed(self, phase: str, images: int, action):
            import torch

            if self.plan.device.type == "cuda":
                torch.cuda.synchronize(self.plan.device)
            tick = time.perf_counter()
            value = action()
            if self.plan.device.type == "cuda":
                torch.cuda.synchronize(self.plan.device)
            spent = self.timings.setdefault(phase, [0, 0.0])
            spent[0] += images
            spent[1] += time.perf_counter() - tick
            return value

        def first_start(self) -> None:
            import torch

            x, _ = next(self._batches(self.splits.test, train=False))
            self.set_mode(False)
            with torch.no_grad(), self._autocast():
                self.probe = self.logits(x).float().cpu()
            super().first_start()

        def collect_train_logits(self):
            return self._timed("mapping", len(self.splits.train), super().collect_train_logits)

        def train_epoch(self, epoch: int):
            return self._timed("train", len(self.splits.train), lambda: super(CheckJob, self).train_epoch(epoch))

        def evaluate(self, images):
            return self._timed("test", len(images), lambda: super(CheckJob, self).evaluate(images))

    return CheckJob


@contextlib.contextmanager
def _environment(**values: str) -> Iterator[None]:
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _suite(config: CheckConfig, input_name: str) -> str:
    shape = (f"canvas: {config.canvas}" if input_name == "padding"
             else f"resolution: {config.smm_resolution}, crop_margin: {config.smm_margin}")
    return f"""
name: gpu-check
grid: {{input: {input_name}, mapping: ilm, backbone: resnet18, dataset: cifar10, seed: 0}}
defaults: {{epochs: {config.epochs}, batch_size: {config.batch_size}, subset: {{train: {config.train},
            test: {config.test}}}, image_size: 32, {shape}, milestones: [0.5]}}
"""


def _run(device: str, precision: str, input_name: str, config: CheckConfig, root: Path, switches: dict[str, str],
         name: str) -> JobRun:
    import torch

    from vrbench.footprint import job_footprint
    from vrbench.store.rundir import run_dir, write_config
    from vrbench.suite import parse_suite

    (spec,) = parse_suite(_suite(config, input_name)).jobs
    directory = run_dir(root / name.replace(" ", "_"), spec.run_id)
    write_config(directory, spec.run_id, spec.method, spec.config,
                 {"device": device, "data_root": str(root / "data"), "trackers": []})
    job = _check_job_class()(directory)
    job.precision = precision
    job.timings = {}
    cuda = torch.device(device).type == "cuda"
    if cuda:
        gc.collect()  # the previous job's tensors, so that this peak is this job's own
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    with _environment(**switches):
        result = job.run()
    peak = torch.cuda.max_memory_allocated(device) if cuda else None
    rates = {phase: images / seconds for phase, (images, seconds) in job.timings.items() if seconds > 0}
    described = ", ".join(f"{key}={value}" for key, value in switches.items()) or "defaults"
    return JobRun(name, precision, described, result, job.history[0], job.probe, rates, peak,
                  job_footprint(spec.config).gpu, job.shared_border)


def _relative(a, b) -> float:
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-12))


def check_device(device: str, config: CheckConfig = CheckConfig()) -> DeviceReport:
    """Run the check's four jobs on ``device`` ("cuda:0", or "cpu" for the tests) and judge them."""
    import torch

    from vrbench.testing import write_cifar10

    low = "fp16-amp" if torch.device(device).type == "cuda" else "bf16-amp"
    report = DeviceReport(device)
    off = {"VRBENCH_SHARE_BORDER": "0", "VRBENCH_FUSE_ACTIVATIONS": "0"}
    with tempfile.TemporaryDirectory(prefix="vrbench-gpu-check-") as folder, \
            _environment(VRBENCH_VERIFY_CHECKSUMS="0", VRBENCH_CACHE="0"):
        root = Path(folder)
        write_cifar10(root / "data", n_train=config.train, n_test=config.test)
        fast = _run(device, low, "padding", config, root, {}, f"ILM {low}")
        full = _run(device, "fp32", "padding", config, root, {}, "ILM fp32")
        plain = _run(device, "fp32", "padding", config, root, off, "ILM fp32 no border")
        smm = _run(device, low, "smm", config, root, {}, f"SMM {low}")
    report.runs = [fast, full, plain, smm]

    logits = _relative(fast.probe, full.probe)
    report.checks.append((f"logits {low} vs fp32", logits <= config.logit_tolerance,
                          f"max difference {logits:.2e} of the largest logit (<= {config.logit_tolerance:g})"))
    loss_a, loss_b = fast.first_epoch["train_loss"], full.first_epoch["train_loss"]
    loss_gap = abs(loss_a - loss_b) / max(abs(loss_b), 1e-12)
    report.checks.append((f"epoch-1 loss {low} vs fp32", loss_gap <= config.loss_tolerance,
                          f"{loss_a:.4f} vs {loss_b:.4f} ({loss_gap:.1%}, <= {config.loss_tolerance:.0%})"))
    for key, size in (("train_acc", config.train), ("test_acc", config.test)):
        allowed = config.accuracy_points + 200.0 / size
        gap = abs(fast.first_epoch[key] - full.first_epoch[key])
        report.checks.append((f"epoch-1 {key} {low} vs fp32", gap <= allowed,
                              f"{fast.first_epoch[key]:.2f} vs {full.first_epoch[key]:.2f} (<= {allowed:.1f} points)"))
    same = _relative(full.probe, plain.probe)
    same_epoch = all(abs(full.first_epoch[k] - plain.first_epoch[k]) <= config.same_tolerance * max(
        1.0, abs(plain.first_epoch[k])) for k in ("train_loss", "train_acc", "test_acc"))
    report.checks.append(("shared border and fusion change no number", same <= config.same_tolerance and same_epoch,
                          f"shared border {'on' if full.shared_border else 'off'} vs off: logits {same:.1e}, "
                          f"epoch 1 {'equal' if same_epoch else 'different'}"))
    finite = all(run.first_epoch["train_loss"] == run.first_epoch["train_loss"] for run in report.runs)
    report.checks.append((f"SMM trains in {low}", finite and smm.result["final_acc"] is not None,
                          f"epoch-1 loss {smm.first_epoch['train_loss']:.4f}, test {smm.result['final_acc']:.2f} %"))
    for run in report.runs:
        if run.peak_bytes is not None:
            report.checks.append((f"{run.name}: peak memory within the dry-run estimate",
                                  run.peak_bytes <= run.estimate_bytes,
                                  f"{run.peak_bytes / 2**20:.0f} MiB of {run.estimate_bytes / 2**20:.0f} MiB"))
    return report


def visible_cuda_devices() -> list[str]:
    import torch

    return [f"cuda:{i}" for i in range(torch.cuda.device_count())] if torch.cuda.is_available() else []


def render(report: DeviceReport, console: Console) -> None:
    table = Table(title=f"GPU self-check on {report.device}", title_justify="left")
    for column in ("job", "switches", "train img/s", "mapping img/s", "test img/s", "peak MiB", "estimate MiB",
                   "epoch-1 loss", "epoch-1 test %"):
        table.add_column(column, justify="left" if column in ("job", "switches") else "right")
    for run in report.runs:
        rate = [f"{run.images_per_s[p]:.0f}" if p in run.images_per_s else "-" for p in ("train", "mapping", "test")]
        peak = f"{run.peak_bytes / 2**20:.0f}" if run.peak_bytes is not None else "-"
        table.add_row(run.name, run.switches, *rate, peak, f"{run.estimate_bytes / 2**20:.0f}",
                      f"{run.first_epoch['train_loss']:.4f}", f"{run.first_epoch['test_acc']:.2f}")
    console.print(table)
    for what, passed, numbers in report.checks:
        mark = "[green]pass[/]" if passed else "[bold red]FAIL[/]"
        console.print(f"  {mark} {what}: {numbers}", highlight=False)


def run_gpu_check(console: Console, devices: list[str] | None = None, config: CheckConfig = CheckConfig()) -> int:
    """Check every device (default: every visible GPU); 0 when all pass or there is no GPU, else 1."""
    devices = visible_cuda_devices() if devices is None else devices
    if not devices:
        console.print("GPU self-check: no CUDA device is visible, nothing to check (CPU jobs only)", highlight=False)
        return 0
    code = 0
    for device in devices:
        console.print(f"GPU self-check on {device}: 4 short jobs ...", highlight=False)
        report = check_device(device, config)
        render(report, console)
        code = max(code, 0 if report.ok else 1)
    return code
