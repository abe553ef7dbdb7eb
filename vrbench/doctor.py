"""`vrbench doctor`: one screen that says what this machine can run, and what to fix when it cannot.

It reports the Python, torch, torchvision and open_clip versions, the CUDA devices (name, memory, compute
capability), the CPU cores and threads, the free disk of the results directory and of the decoded-image cache,
which datasets are ready (the data layer's own `vrbench data ls` states) and which weights are on disk, whether
Slurm answers, the engine switches in force and the trackers installed. Every finding that stops vrbench from
running is one line with its fix and makes the exit code 1; notes (no GPU, no Slurm, missing datasets that no
suite asked for) do not. With ``--suite`` the suite's own datasets and weights must be ready, as `vrbench run`'s
pre-flight check wants them.

doctor imports torch (it reports torch and CUDA), which is most of its ~4 s on a 2-core machine; nothing else it
does reads more than directory entries and a few small files.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import platform
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.table import Table
from rich.text import Text

DEFAULT_MIN_FREE_GB = 2.0  # below this a results directory or cache is "full": a few checkpoints and caches
SLURM_TIMEOUT_S = 10.0


@dataclass
class Finding:
    section: str
    item: str
    value: str
    problem: str | None = None  # one line with the fix; any problem makes the exit code 1
    note: str | None = None  # worth knowing, not blocking


@dataclass
class Diagnosis:
    findings: list[Finding] = field(default_factory=list)

    def add(self, section: str, item: str, value: str, problem: str | None = None, note: str | None = None) -> None:
        self.findings.append(Finding(section, item, value, problem, note))

    @property
    def problems(self) -> list[str]:
        return [f.problem for f in self.findings if f.problem]

    @property
    def ok(self) -> bool:
        return not self.problems


def _version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


# ------------------------------------------------------------------------------------------------ sections
def software(d: Diagnosis) -> None:
    d.add("software", "python", f"{platform.python_version()} ({platform.python_implementation()})")
    for item, distribution, fix in (("vrbench", "vrbench", "pip install -e ."),
                                    ("torch", "torch", "pip install torch"),
                                    ("torchvision", "torchvision", "pip install torchvision"),
                                    ("open_clip", "open_clip_torch", "pip install open_clip_torch")):
        version = _version(distribution)
        d.add("software", item, version or "not installed",
              problem=None if version else f"{item} is not installed: {fix}")


def devices(d: Diagnosis) -> None:
    import torch

    from vrbench.runner.placement import usable_cores

    if torch.cuda.is_available():
        for index in range(torch.cuda.device_count()):
            p = torch.cuda.get_device_properties(index)
            d.add("devices", f"cuda:{index}", f"{p.name}, {p.total_memory / 2**30:.1f} GiB, compute capability "
                  f"{p.major}.{p.minor}")
    else:
        built = torch.version.cuda
        why = f"torch {torch.__version__} is a CPU build" if built is None else "no CUDA device is visible"
        d.add("devices", "cuda", "none: CPU jobs only", note=why)
    cores = usable_cores()
    d.add("devices", "cpu", f"{os.cpu_count()} logical cores, {len(cores)} usable by this process, torch uses "
          f"{torch.get_num_threads()} threads")


def disk(d: Diagnosis, results: Path, min_free_bytes: int) -> None:
    from vrbench.datasets.roots import CACHE_DIR_ENV, cache_dir, cache_enabled
    from vrbench.datasets.space import free_bytes, human_bytes, writable

    def check(item: str, path: Path, move: str) -> None:
        free = free_bytes(path)
        value = f"{path.absolute()}: {human_bytes(free)} free"
        if not writable(path):
            d.add("disk", item, value, problem=f"{item} {path.absolute()} is not writable: {move}")
        elif free < min_free_bytes:
            d.add("disk", item, value, problem=f"{item} {path.absolute()} has {human_bytes(free)} free, less than "
                  f"{human_bytes(min_free_bytes)}: free some space there or {move}")
        else:
            d.add("disk", item, value)

    check("results directory", results, "choose another one with --results")
    if cache_enabled():
        check("decoded-image cache", cache_dir(), f"move it with {CACHE_DIR_ENV}=/a/bigger/disk")
    else:
        d.add("disk", "decoded-image cache", "off (VRBENCH_CACHE=0)")


def datasets(d: Diagnosis, data_root: Path | None, suite_datasets: list[str]) -> None:
    from vrbench.datasets import DATASETS
    from vrbench.datasets.roots import resolve_data_root
    from vrbench.datasets.verify import dataset_state, verify_for_suite

    root = resolve_data_root(data_root)
    d.add("data", "data root", f"{root.path.absolute()} (from {root.source})")
    states: dict[str, list[str]] = {"ready": [], "partial": [], "missing": []}
    for info in DATASETS:
        state, detail = dataset_state(info, root.path.absolute())
        states[state].append(info.name)
        if state == "partial":
            d.add("data", info.name, f"partial: {detail}",
                  problem=f"dataset {info.name} is incomplete ({detail}): vrbench data prepare {info.name}")
    d.add("data", "ready", ", ".join(states["ready"]) or "none")
    if states["missing"]:
        d.add("data", "not here", f"{len(states['missing'])}: {', '.join(states['missing'])}",
              note="vrbench data prepare NAME fetches one (`vrbench data ls` says where each goes)")
    errors = [p for p in verify_for_suite(suite_datasets, root.path.absolute()) if p.severity == "error"]
    for name in dict.fromkeys(p.dataset for p in errors):  # one line per dataset, however many files it lacks
        mine = [p for p in errors if p.dataset == name]
        more = f" (and {len(mine) - 1} more)" if len(mine) > 1 else ""
        d.add("data", name, "not ready", problem=f"the suite needs dataset {name}: {mine[0].path}: {mine[0].message}"
              f"{more}; fix: {mine[0].fix}")


def _torch_hub_file(url: str) -> Path:
    from vrbench.backbones.checkpoints import checkpoint_path

    return Path(checkpoint_path(url))


def _torchvision_weights(name: str) -> Path | None:
    from vrbench.backbones.torchvision_models import _MODELS, weights_file

    return Path(weights_file(_MODELS[name][1]))


def _paper_weights(name: str) -> Path | None:
    from vrbench.backbones.paper_models import URLS

    return _torch_hub_file(URLS[name]) if name in URLS else None  # vit_tiny: random weights, nothing to fetch


# a backbone loader -> the weights file it reads (None: nothing to fetch)
WEIGHT_FILES: dict[str, Callable[[str], Path | None]] = {
    "vrbench.backbones.torchvision_models:load_torchvision": _torchvision_weights,
    "vrbench.backbones.paper_models:load_paper_model": _paper_weights,
}


def weight_state(info) -> tuple[bool, str]:
    """(on disk, where) for one backbone's weights: packaged, torch hub's checkpoints, or the CLIP caches."""
    if info.offline:
        return True, "ships in a package"
    if info.is_clip:
        from vrbench.clip.models import weights_on_disk

        return weights_on_disk(info.name), "Hugging Face cache or $VRBENCH_CLIP_WEIGHTS"
    locate = WEIGHT_FILES.get(info.loader)
    path = locate(info.name) if locate else None
    if path is None:
        return True, "random weights (tests)" if locate else "loaded by its plugin"
    return path.is_file(), str(path)


def weights(d: Diagnosis, suite_backbones: list[str]) -> None:
    import torch

    from vrbench.backbones import BACKBONES

    d.add("weights", "torch hub", str(Path(torch.hub.get_dir()) / "checkpoints") + " ($TORCH_HOME moves it)")
    cached, absent = [], []
    for info in BACKBONES:
        on_disk, where = weight_state(info)
        (cached if on_disk else absent).append(info.name)
        if not on_disk and info.name in suite_backbones:  # as `vrbench run`'s pre-flight check judges them
            offline = info.is_clip and os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes")
            advice = f"the suite needs the weights of {info.name}, which are not in {where}"
            if offline:
                d.add("weights", info.name, "not on disk", problem=f"{advice} and HF_HUB_OFFLINE is set: see "
                      "docs/clip.md (offline machines)")
            else:
                d.add("weights", info.name, "not on disk", note=f"{advice}: its first job downloads them (an offline "
                      "machine needs them put there first)")
    d.add("weights", "on disk", ", ".join(cached) or "none")
    if absent:
        d.add("weights", "not on disk", ", ".join(absent), note="downloaded by the first job that needs them, where "
              "a network allows")


def slurm(d: Diagnosis) -> None:
    sbatch = shutil.which("sbatch")
    if sbatch is None:
        d.add("cluster", "slurm", "sbatch not on PATH: --executor slurm is unavailable here")
        return
    try:
        answer = subprocess.run(["squeue", "--me", "--noheader"], capture_output=True, text=True,
                                timeout=SLURM_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired) as exc:
        d.add("cluster", "slurm", f"{sbatch}, controller not answering ({type(exc).__name__})",
              note="--executor slurm needs squeue to answer; ask your cluster's admins")
        return
    if answer.returncode != 0:
        d.add("cluster", "slurm", f"{sbatch}, squeue failed: {answer.stderr.strip().splitlines()[:1]}",
              note="--executor slurm needs squeue to answer")
        return
    d.add("cluster", "slurm", f"{sbatch}, controller answers ({len(answer.stdout.splitlines())} job(s) of yours)")


def switches(d: Diagnosis) -> None:
    from vrbench.datasets.cifar import VERIFY_ENV
    from vrbench.datasets.roots import CACHE_ENV
    from vrbench.engine.border import SHARE_ENV
    from vrbench.engine.fusion import FUSE_ENV
    from vrbench.engine.speed import FOLD_ENV
    from vrbench.switches import switch_on

    for variable, what in ((CACHE_ENV, "decoded-image cache"), (VERIFY_ENV, "dataset checksums"),
                           (FOLD_ENV, "BatchNorm folding"), (FUSE_ENV, "activation fusion (CPU)"),
                           (SHARE_ENV, "shared border")):
        state = "on" if switch_on(variable) else "off"
        given = f" ({variable}={os.environ[variable]})" if variable in os.environ else " (default)"
        d.add("switches", what, state + given)
    for variable in ("CUDA_VISIBLE_DEVICES", "OMP_NUM_THREADS", "TORCH_HOME", "HF_HUB_OFFLINE"):
        if variable in os.environ:
            d.add("switches", variable, os.environ[variable])


def trackers(d: Diagnosis) -> None:
    from vrbench.tracking import TRACKERS

    distributions = importlib.metadata.packages_distributions()  # import name -> distributions (mlflow-skinny)
    for info in TRACKERS:
        installed = importlib.util.find_spec(info.package) is not None
        names = distributions.get(info.package, [info.package]) if installed else []
        version = next((v for v in map(_version, names) if v), "installed" if installed else None)
        if info.name == "tensorboard" and version is None:
            d.add("trackers", info.name, "not installed", problem=f"TensorBoard logs need it: {info.install}")
        else:
            d.add("trackers", info.name, version or f"not installed ({info.install})")


def diagnose(results: Path, data_root: Path | None = None, min_free_bytes: int = int(DEFAULT_MIN_FREE_GB * 2**30),
             suite: Path | None = None) -> Diagnosis:
    """Every finding; ``suite`` adds its datasets and weights to what must be ready."""
    d = Diagnosis()
    suite_datasets: list[str] = []
    suite_backbones: list[str] = []
    if suite is not None:
        from vrbench.suite import load_suite

        jobs = load_suite(suite).jobs
        suite_datasets = sorted({job.config["dataset"] for job in jobs})
        suite_backbones = sorted({job.config["backbone"] for job in jobs})
    software(d)
    if any(f.item == "torch" and f.problem for f in d.findings):
        return d  # nothing below works without torch
    devices(d)
    disk(d, results, min_free_bytes)
    datasets(d, data_root, suite_datasets)
    weights(d, suite_backbones)
    slurm(d)
    switches(d)
    trackers(d)
    return d


def render(d: Diagnosis, console: Console) -> None:
    table = Table(show_header=False, box=None, pad_edge=False, padding=(0, 1))
    table.add_column(style="bold cyan", no_wrap=True)
    table.add_column(no_wrap=True)
    table.add_column(overflow="fold")
    section = None
    for f in d.findings:
        value = Text(f.value, style="red" if f.problem else "")
        if f.note:
            value.append(f"  ({f.note})", style="yellow")
        table.add_row(f.section if f.section != section else "", f.item, value)
        section = f.section
    console.print(table)
    if d.ok:
        console.print("[bold green]ok:[/] vrbench can run here", highlight=False)
        return
    console.print(f"[bold red]{len(d.problems)} problem(s):[/]", highlight=False)
    for problem in d.problems:
        console.print(f"  - {problem}", highlight=False, soft_wrap=True)


def run_doctor(console: Console, results: Path, data_root: Path | None, suite: Path | None,
               min_free_gb: float | None, gpu_check: bool) -> int:
    """`vrbench doctor`: print the screen (and the GPU self-check when asked); the exit code."""
    from vrbench.errors import VrbenchError

    minimum = int((DEFAULT_MIN_FREE_GB if min_free_gb is None else min_free_gb) * 2**30)
    try:
        diagnosis = diagnose(results, data_root, minimum, suite)
    except VrbenchError as exc:
        console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        return 2
    render(diagnosis, console)
    code = 0 if diagnosis.ok else 1
    if gpu_check:
        from vrbench.gpu_check import run_gpu_check

        code = max(code, run_gpu_check(console))
    return code
