"""vrbench's training loop against a plain loop of the official ILM-VP script's shape, side by side in one run.

Usage:  python benchmarks/engine_throughput.py [--repeats 3] [--epochs 3] [--levers] [--canvas 96] [--train 600]
                                              [--test 360]

Both loops run the same task on the same data: EfficientNet-Lite0 with its packaged ImageNet weights, sklearn's
digits at 32 px centred on a 96-px canvas (padding VR), the suite's fixed 600 train / 360 test subset, batch 32,
Adam lr 0.01, the same seed and therefore the same shuffled batches. They alternate, run by run, so a machine that
other processes load slows both alike; the figures are medians over the repetitions. Each run gets a fresh Python
process (spawned by this one), as each run of the original script does: glibc's allocator adapts its thresholds to
the process's history, and once vrbench has tuned them (engine/speed.py's keep_freed_memory) nothing restores the
adaptive defaults, which left a plain loop run after it about 3x slower than a fresh one (measured).

- plain: written here after OPTML-Group/ILM-VP experiments/cnn/ilm_vp.py (lines 75-143) and
  algorithms/flm_calculation.py: a DataLoader over in-memory float tensors, the NCHW eager model with
  requires_grad_(False) and eval() (ilm_vp.py l.58-59), the padding prompt applied per batch (pad, add
  sigmoid(program) * mask, normalise; models/visual_prompt.py), and each epoch a separate no-grad label-mapping
  pass over the training set (the greedy frequency mapping), then training, then the test. CPU runs are fp32 (the
  original's CUDA autocast and GradScaler do nothing on a CPU). Its TensorBoard logging and mapping plot are left
  out, which only flatters it.
- vrbench: the real engine, `vrbench.engine.loop.Job.run()` on a run directory written as the workers get it, with
  timers around its three phases (a subclass that calls the engine's own methods). BLM's fast edition
  (`mapping_mode: fast`) runs beside faithful ILM.
- with --levers, vrbench ILM with one lever taken away: glibc's allocator as it comes (no keep_freed_memory),
  BatchNorm not folded (VRBENCH_FOLD_BN=0), neither activations fused into the convolutions nor straight runs
  of layers trained as one autograd node (VRBENCH_FUSE_ACTIVATIONS=0, vrbench/engine/fusion.py), and the whole
  canvas through the first layers for every image instead of the border once per batch (VRBENCH_SHARE_BORDER=0,
  vrbench/engine/border.py).

It prints images/s per phase (label-mapping pass, training, test) and seconds per epoch, with the ratios to the
plain loop. Then it checks that the engine computes what the plain loop computes: the plain loop runs one epoch
again with the engine's kernels (the model in channels_last, BatchNorm folded or not; the loop itself unchanged),
and the engine's label mapping before epoch 1 and pattern after it must equal that run's bit for bit (the shared
border is part of the engine's kernels: its model is the loop's network there too). What is
left between the engine and the original is the kernels, whose effect is printed: the first batch's logits under
both (within 1e-4). A run that fails a check stops the benchmark with an error.
All figures leave out each run's first epoch, and the rates each phase's first pass (they pay warm-up).
"""

from __future__ import annotations

import argparse
import io
import multiprocessing
import os
import statistics
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from vrbench import mapping as lm
from vrbench.backbones import BACKBONES
from vrbench.engine.border import SHARE_ENV, share_border
from vrbench.engine.data import load_split
from vrbench.engine.fusion import FUSE_ENV, fuse_activations
from vrbench.engine.loop import Job, set_seed
from vrbench.engine.speed import FOLD_ENV, fold_batchnorm
from vrbench.store.rundir import write_config
from vrbench.suite import parse_suite

PHASES = ("mapping pass", "training", "test")


# ------------------------------------------------------------------------------------------------ the plain loop
class PlainPrompt(nn.Module):
    """The original's expansive prompt: pad the image with zeros, add sigmoid(program) on the border, normalise."""

    def __init__(self, image_size: int, canvas: int, mean: tuple[float, ...], std: tuple[float, ...]) -> None:
        super().__init__()
        self.before, self.after = int((canvas - image_size + 1) / 2), int((canvas - image_size) / 2)
        pad = (self.before, self.after, self.before, self.after)
        self.program = nn.Parameter(torch.zeros(3, canvas, canvas))
        self.register_buffer("mask", F.pad(torch.zeros(3, image_size, image_size), pad, value=1.0))
        self.register_buffer("mean", torch.tensor(mean).view(3, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.pad(x, (self.before, self.after, self.before, self.after), value=0)
        x = x + torch.sigmoid(self.program) * self.mask
        return (x - self.mean) / self.std


def plain_ilm(logits: torch.Tensor, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """The greedy one-to-one frequency mapping, written from flm_calculation.py (target c reads source pi[c])."""
    counts = F.one_hot(logits.argmax(-1), logits.shape[1])
    dist = torch.stack([counts[labels == c].sum(0) for c in range(num_classes)], dim=1)
    pi = torch.zeros(num_classes, dtype=torch.int64)
    for _ in range(num_classes):
        where = int(dist.flatten().argmax())
        source, target = divmod(where, num_classes)
        pi[target] = source
        dist[source, :] = -1
        dist[:, target] = -1
    return pi


def _applier(mapping: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
    return (lambda z: z[:, mapping]) if mapping.dim() == 1 else (lambda z: z @ mapping)


# (BatchNorm folded, activations fused, shared border) of the engine's numerics and its variants with a lever off.
# Fusion changes no number, but the shared border's head ends at another node in a fused graph (another sum order).
ENGINE_KERNELS = {"engine": (True, True, True), "engine-unfused": (True, False, True),
                  "engine-unshared": (True, True, False), "engine-unfolded": (False, False, False)}


def plain_run(data: dict[str, Any], setting: dict[str, Any], estimate: Callable, epochs: int,
              times: dict[str, list[float]], record: dict[str, Any], kernels: str = "original") -> None:
    """The original loop shape; appends per-phase rates and epoch seconds to `times`, the checks to `record`.

    kernels="engine" (for the checks only, never timed): the same loop with the engine's numerics, i.e. the model in
    channels_last with its BatchNorm folded, activations fused and the shared border; or with one lever taken away
    (ENGINE_KERNELS), so that its pattern can be compared bit for bit with the engine's.
    """
    set_seed(setting["seed"])
    info = BACKBONES.get("efficientnet_lite0")
    network = info.load()  # built after the seed, as the engine does, so the shuffles draw from the same RNG state
    network.requires_grad_(False)
    network.eval()
    if kernels != "original":
        fold, fuse, share = ENGINE_KERNELS[kernels]
        if fold:
            network = fold_batchnorm(network)[0]
        network = network.to(memory_format=torch.channels_last).requires_grad_(False)
        if fuse:
            fuse_activations(network)
        if share:
            network = share_border(network)
        model = network
        network = lambda x: model(x.contiguous(memory_format=torch.channels_last))  # noqa: E731
    prompt = PlainPrompt(setting["image_size"], setting["canvas"], info.mean, info.std)
    optimizer = torch.optim.Adam(prompt.parameters(), lr=setting["lr"])
    train = TensorDataset(data["train"].images.float() / 255, data["train"].labels)
    test = TensorDataset(data["test"].images.float() / 255, data["test"].labels)
    batch = setting["batch_size"]
    classes = data["train"].num_classes
    # Every DataLoader iteration draws a worker base seed; from a private generator, so the global RNG's next
    # draw is the epoch's shuffle, as in the engine (which has no loaders).
    private = torch.Generator().manual_seed(setting["seed"])
    for epoch in range(epochs):
        tick = time.perf_counter()
        outputs, labels = [], []
        for x, y in DataLoader(train, batch_size=batch, generator=private):  # the mapping pass
            with torch.no_grad():
                outputs.append(network(prompt(x)))
            labels.append(y)
        mapping = estimate(torch.cat(outputs).float(), torch.cat(labels), classes)
        mapped = _applier(mapping)
        middle = time.perf_counter()
        prompt.train()
        order = torch.randperm(len(train))  # the engine's shuffle, drawn from the global RNG
        for x, y in DataLoader(train, batch_size=batch, sampler=order.tolist(), generator=private):
            optimizer.zero_grad()
            loss = F.cross_entropy(mapped(network(prompt(x))), y)
            loss.backward()
            optimizer.step()
            loss.item()
        trained = time.perf_counter()
        prompt.eval()
        correct = 0
        for x, y in DataLoader(test, batch_size=batch, generator=private):
            with torch.no_grad():
                correct += int((mapped(network(prompt(x))).argmax(1) == y).sum())
        done = time.perf_counter()
        times["mapping pass"].append(len(train) / (middle - tick))
        times["training"].append(len(train) / (trained - middle))
        times["test"].append(len(test) / (done - trained))
        if epoch > 0:
            times["epoch seconds"].append(done - tick)
        if epoch == 0:
            record["mapping"] = mapping.clone()
            record["pattern"] = torch.sigmoid(prompt.program.detach()).clone()
            record["first logits"] = torch.cat(outputs)[:32].float()
    record["accuracy"] = 100.0 * correct / len(test)


# ------------------------------------------------------------------------------------------------ vrbench's loop
class TimedJob(Job):
    """The engine's Job with timers around its phases; every call goes to the engine's own method."""

    def __init__(self, directory: Path, times: dict[str, list[float]], record: dict[str, Any]) -> None:
        super().__init__(directory)
        self.times, self.record = times, record

    def collect_train_logits(self):
        tick = time.perf_counter()
        out = super().collect_train_logits()
        self.times["mapping pass"].append(len(self.splits.train) / (time.perf_counter() - tick))
        return out

    def epoch_start(self, epoch: int) -> None:
        super().epoch_start(epoch)
        if epoch == 0:
            self.record["mapping"] = self.mapping.mapping.clone()

    def train_epoch(self, epoch: int):
        tick = time.perf_counter()
        out = super().train_epoch(epoch)
        self.times["training"].append(len(self.splits.train) / (time.perf_counter() - tick))
        if epoch == 0:
            self.record["pattern"] = torch.sigmoid(self.input.program.detach()).clone()
        return out

    def evaluate(self, images):
        tick = time.perf_counter()
        out = super().evaluate(images)
        self.times["test"].append(len(images) / (time.perf_counter() - tick))
        return out


def vrbench_run(directory: Path, setting: dict[str, Any], mapping: str, mode: str, epochs: int,
                threads: int, times: dict[str, list[float]], record: dict[str, Any],
                switches: dict[str, str] | None = None) -> None:
    suite = parse_suite(f"""
name: bench
grid: {{input: padding, mapping: {mapping}, backbone: efficientnet_lite0, dataset: digits, seed: {setting['seed']}}}
defaults: {{epochs: {epochs}, batch_size: {setting['batch_size']}, lr: {setting['lr']}, milestones: [],
           subset: {{train: {setting['train']}, test: {setting['test']}}}, mapping_mode: {mode}}}
overrides: [{{match: {{dataset: digits}}, set: {{image_size: {setting['image_size']}, canvas: {setting['canvas']}}}}}]
""")
    spec = suite.jobs[0]
    run = directory / f"{spec.run_id}-{time.monotonic_ns()}"
    write_config(run, spec.run_id, spec.method, spec.config, {"device": "cpu", "threads": threads})
    job = TimedJob(run, times, record)
    os.environ.update(switches or {})  # this process runs this one job, so the switches need no undoing
    result = job.run()
    times["epoch seconds"].extend(row["seconds"] for row in job.history[1:])
    record["accuracy"] = result["final_acc"]


# ------------------------------------------------------------------------------------------------------- driver
def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


LOOPS: dict[str, Callable[..., None]] = {
    "plain ILM": lambda data, setting, args, d, t, r: plain_run(data, setting, plain_ilm, args.epochs, t, r),
    "vrbench ILM": lambda data, setting, args, d, t, r: vrbench_run(d, setting, "ilm", "faithful", args.epochs,
                                                                    args.threads, t, r),
    "vrbench BLM fast": lambda data, setting, args, d, t, r: vrbench_run(d, setting, "blm", "fast", args.epochs,
                                                                         args.threads, t, r),
}
def default_malloc_ilm(data: dict[str, Any], setting: dict[str, Any], args: argparse.Namespace, directory: Path,
                       times: dict[str, list[float]], record: dict[str, Any]) -> None:
    """vrbench ILM without keep_freed_memory: this process is fresh, so glibc's allocator is as it comes."""
    import vrbench.engine.loop as engine_loop

    engine_loop.keep_freed_memory = lambda keep=True: False
    vrbench_run(directory, setting, "ilm", "faithful", args.epochs, args.threads, times, record)


LEVERS: dict[str, Callable[..., None]] = {  # vrbench ILM with one lever taken away
    "ILM default malloc": default_malloc_ilm,
    "ILM unfolded BN": lambda data, setting, args, d, t, r: vrbench_run(d, setting, "ilm", "faithful", args.epochs,
                                                                        args.threads, t, r, {FOLD_ENV: "0"}),
    "ILM unfused act.": lambda data, setting, args, d, t, r: vrbench_run(d, setting, "ilm", "faithful", args.epochs,
                                                                         args.threads, t, r, {FUSE_ENV: "0"}),
    "ILM unshared border": lambda data, setting, args, d, t, r: vrbench_run(d, setting, "ilm", "faithful",
                                                                            args.epochs, args.threads, t, r,
                                                                            {SHARE_ENV: "0"}),
}


def task_data(args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, Any]]:
    setting = {"seed": 0, "lr": 0.01, "batch_size": 32, "image_size": 32, "canvas": args.canvas,
               "train": args.train, "test": args.test}
    config = {"dataset": "digits", "subset": {"train": args.train, "test": args.test}}
    data = {split: load_split(config, split, 32, None) for split in ("train", "test")}
    return setting, data


def one_run(name: str, args: argparse.Namespace, connection: Any) -> None:
    """A child process: one run of one loop; sends back (times, record)."""
    torch.set_num_threads(args.threads)
    setting, data = task_data(args)
    times: dict[str, list[float]] = defaultdict(list)
    record: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        {**LOOPS, **LEVERS}[name](data, setting, args, Path(tmp), times, record)
    for phase in PHASES:  # each phase's first pass in the process pays warm-up, as the first epoch does
        times[phase] = times[phase][1:]
    buffer = io.BytesIO()  # torch.save, not pickle: pickled tensors would point at this process's shared memory
    torch.save((dict(times), record), buffer)
    connection.send_bytes(buffer.getvalue())
    connection.close()


def in_fresh_process(name: str, args: argparse.Namespace) -> tuple[dict[str, list[float]], dict[str, Any]]:
    """Run one loop in a new interpreter: glibc's allocator state is per process, and once vrbench has tuned it
    (keep_freed_memory) nothing restores glibc's adaptive defaults, so each run starts as a script would."""
    context = multiprocessing.get_context("spawn")
    receiver, sender = context.Pipe(duplex=False)
    process = context.Process(target=one_run, args=(name, args, sender))
    process.start()
    sender.close()
    try:
        result = torch.load(io.BytesIO(receiver.recv_bytes()), weights_only=True)
    except EOFError:
        result = None
    process.join()
    if result is None or process.exitcode:
        raise SystemExit(f"the {name} run failed (exit code {process.exitcode})")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--canvas", type=int, default=96)
    parser.add_argument("--train", type=int, default=600)
    parser.add_argument("--test", type=int, default=360)
    parser.add_argument("--epochs", type=int, default=3, help="epochs per run (the first is left out per epoch)")
    parser.add_argument("--levers", action="store_true", help="also time vrbench with each lever taken away")
    parser.add_argument("--repeats", type=int, default=3, help="alternating rounds of all loops")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    names = list(LOOPS) + (list(LEVERS) if args.levers else [])
    times: dict[str, dict[str, list[float]]] = {name: defaultdict(list) for name in names}
    records: dict[str, dict[str, Any]] = {}
    per_round: dict[str, list[float]] = defaultdict(list)  # each run's median epoch, in round order
    load = os.getloadavg()
    for round_ in range(args.repeats):
        for name in names if round_ % 2 == 0 else list(reversed(names)):
            run_times, records[name] = in_fresh_process(name, args)
            for key, values in run_times.items():
                times[name][key].extend(values)
            per_round[name].append(median(run_times["epoch seconds"]))
            print(f"round {round_ + 1}/{args.repeats} {name}: {median(times[name]['epoch seconds']):.2f} s/epoch "
                  f"so far", flush=True)
    # The checks: the plain loop once more for one epoch with the engine's kernels (channels_last, BatchNorm folded
    # or not), for ILM and for BLM's estimate (BLM's fast edition's first epoch is the faithful one).
    setting, data = task_data(args)
    blm = lambda z, y, c: lm.blm(z, y, c, lap=1.0)  # noqa: E731
    references: dict[str, dict[str, Any]] = {}
    for name, estimate, kernels in (("ILM", plain_ilm, "engine"), ("BLM", blm, "engine"),
                                    ("ILM unfolded", plain_ilm, "engine-unfolded"),
                                    ("ILM unshared", plain_ilm, "engine-unshared"),
                                    ("ILM unfused", plain_ilm, "engine-unfused")):
        references[name] = {}
        plain_run(data, setting, estimate, 1, defaultdict(list), references[name], kernels=kernels)
    load = (*load, *os.getloadavg())

    print(f"\nEfficientNet-Lite0, digits 32 px on a {args.canvas}-px canvas, {args.train} train / {args.test} test, "
          f"batch 32, {args.threads} threads, torch {torch.__version__}; {args.repeats} alternating rounds of "
          f"{args.epochs} epochs, each run in a fresh process; load average before {load[0]:.2f}, after "
          f"{load[3]:.2f} (1 min)")
    plain = {key: median(values) for key, values in times["plain ILM"].items()}
    header = f"{'loop':<21}" + "".join(f"{phase + ' img/s':>20}" for phase in PHASES) + f"{'s/epoch':>10}"
    print(header)
    for name in names:
        row = {key: median(values) for key, values in times[name].items()}
        cells = "".join(f"{row.get(phase, float('nan')):>20.1f}" for phase in PHASES)
        print(f"{name:<21}{cells}{row['epoch seconds']:>10.2f}")
        if name != "plain ILM":
            ratios = "".join(f"{row.get(phase, float('nan')) / plain[phase]:>19.2f}x" for phase in PHASES)
            print(f"{'  ratio to plain':<21}{ratios}{plain['epoch seconds'] / row['epoch seconds']:>9.2f}x")
    spread = sorted(times["plain ILM"]["epoch seconds"])
    print(f"(plain ILM's epochs ranged over {spread[0]:.2f}-{spread[-1]:.2f} s)")
    # A machine whose speed drifts moves both runs of a round alike: the ratio within each round is steadier.
    print("per-epoch ratio to plain within each round (the runs next to each other in time):")
    for name in names[1:]:
        paired = [p / o for p, o in zip(per_round["plain ILM"], per_round[name], strict=True)]
        print(f"  {name:<21}" + "  ".join(f"{r:.2f}x" for r in paired) + f"   median {median(paired):.2f}x")
    print("\nchecks after one epoch (same seed, same batches; the plain loop run again with the engine's kernels):")
    check("vrbench ILM", records["vrbench ILM"], references["ILM"], records["plain ILM"])
    check("vrbench BLM fast", records["vrbench BLM fast"], references["BLM"])
    if args.levers:
        check("ILM unfolded BN", records["ILM unfolded BN"], references["ILM unfolded"], records["plain ILM"])
        check("ILM default malloc", records["ILM default malloc"], references["ILM"])
        check("ILM unfused act.", records["ILM unfused act."], references["ILM unfused"])
        check("ILM unshared border", records["ILM unshared border"], references["ILM unshared"], records["plain ILM"])


def check(name: str, ours: dict[str, Any], plain: dict[str, Any], original: dict[str, Any] | None = None) -> None:
    """Same mapping and bitwise the same pattern as the plain loop computed with the same kernels; against the plain
    loop's own kernels (NCHW, BatchNorm as is), the first batch's logits differ by float rounding only."""
    same_mapping = (torch.equal(ours["mapping"], plain["mapping"]) if ours["mapping"].dim() == 1
                    else torch.allclose(ours["mapping"], plain["mapping"], rtol=1e-5, atol=1e-7))
    same_pattern = torch.equal(ours["pattern"], plain["pattern"])
    gap = (ours["pattern"] - plain["pattern"]).abs().max().item()
    print(f"  {name} vs the plain loop with its kernels: same mapping {same_mapping}, same pattern "
          f"{'bit for bit' if same_pattern else f'NO (max pixel difference {gap:.1e})'}")
    if original is not None:
        logits = (plain["first logits"] - original["first logits"]).abs().max().item()
        print(f"    the kernels against the original's (NCHW, BatchNorm as is): first batch's logits within "
              f"{logits:.1e} ({'within' if logits <= 1e-4 else 'OUTSIDE'} 1e-4); the same mapping "
              f"{torch.equal(plain['mapping'], original['mapping'])}")
    if not (same_mapping and same_pattern):
        raise SystemExit(f"{name}: the engine did not compute what the plain loop computes")


if __name__ == "__main__":
    main()
