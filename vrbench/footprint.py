"""What a job needs besides compute, for `vrbench run --dry-run`: peak host memory, decoded-image cache disk and
GPU memory on CUDA. Estimates from metadata only (no torch import), meant for choosing ``--slots`` and where the
cache lives, not guarantees.

* Cache disk: the decoded arrays a job maps (uint8, N x 3 x S x S plus a small header), one per split it loads,
  for the file-backed datasets only (the others are small arrays held in memory). Few-shot and subset jobs decode
  only their chosen images. Entries are identified by what they hold (dataset, split, size, crop mode, chosen
  images), so the suite total counts an entry shared by several jobs once.
* Host memory: the Python/torch runtime (``RUNTIME_BYTES``), the weights in fp32, every image the job loads (the
  arrays are mapped and read whole each epoch) and a few float copies of one batch.
* GPU memory: the CUDA context (``CUDA_CONTEXT_BYTES``), the weights in fp32 (three times for full fine-tuning:
  weights, gradients, momentum) and the activations at the job's batch size. A pass that backpropagates through a
  tower keeps all its activations (``activation_mb`` per image, scaled by the pixel count for other resolutions);
  one that does not holds about three layer outputs at once (``layer_mb``). Prompt learners backpropagate through
  the text tower once per class (CoOp, IVLP, MaPLe, PromptSRC) or once per class and image (CoCoOp). Per-backbone
  figures come from ``benchmarks/backbone_memory.py``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from vrbench.backbones import BACKBONES, BackboneInfo
from vrbench.datasets import DATASETS, DatasetInfo

RUNTIME_BYTES = 600 * 2**20  # Python + torch + the worker's imports, measured RSS before data (rounded up)
CUDA_CONTEXT_BYTES = 500 * 2**20  # CUDA context and cuDNN workspace on a recent GPU (rounded)
NPY_HEADER = 128  # bytes of a cache entry's .npy header
BATCH_COPIES = 3  # float copies of a batch alive at once on the host (uint8 -> float, resized, normalised)
LIVE_LAYERS = 3  # layer outputs an inference pass holds at once
# Prompt learners whose gradient flows through the image tower (deep vision prompts), and CoCoOp's per-image
# prompts (the text tower runs once per image and class).
IMAGE_GRAD_METHODS = ("ivlp", "maple", "promptsrc")
PER_IMAGE_TEXT_METHODS = ("cocoop",)

CacheKey = tuple  # (dataset, split, size, resize, selection)


@dataclass
class Footprint:
    """One job's estimates in bytes; ``cache`` maps each decoded-array entry it uses to the entry's size."""

    host: int
    gpu: int
    cache: dict[CacheKey, int] = field(default_factory=dict)

    @property
    def cache_bytes(self) -> int:
        return sum(self.cache.values())


@dataclass(frozen=True)
class SuiteFootprint:
    jobs: list[Footprint]
    cache_bytes: int  # distinct entries, each counted once
    peak_host: int  # the largest job: what one slot needs
    peak_gpu: int


def entry_bytes(images: int, size: int) -> int:
    return images * 3 * size * size + NPY_HEADER


def _split_images(dataset: DatasetInfo, split: str, config: dict[str, Any]) -> int:
    subset = (config.get("subset") or {}).get(split)
    documented = dataset.size(split) or 0
    return min(subset, documented) if subset and documented else (subset or documented)


def _fewshot_images(dataset: DatasetInfo, train: int, shots: int) -> int:
    """K per class, or fewer for classes with fewer images (approximated with an even class balance)."""
    return min(train, shots * dataset.num_classes)


def _params_bytes(backbone: BackboneInfo) -> int:
    return int(backbone.params_m * 1e6 * 4)


def _activation(backbone: BackboneInfo, side: int, backward: bool) -> float:
    """Activation bytes per image at ``side`` pixels: all of them for a backward pass, a few layers otherwise."""
    scale = (side / backbone.input_size) ** 2
    per_image = backbone.activation_mb if backward else LIVE_LAYERS * backbone.layer_mb
    return per_image * 1e6 * scale


@dataclass(frozen=True)
class _Load:
    split: str
    images: int
    size: int
    selection: tuple


def _cache(dataset: DatasetInfo, loads: list[_Load], resize: str) -> dict[CacheKey, int]:
    if dataset.lister is None:  # arrays held in memory, nothing cached on disk
        return {}
    mode = resize if dataset.clip_resize else "squash"
    return {(dataset.name, load.split, load.size, mode, load.selection): entry_bytes(load.images, load.size)
            for load in loads}


def _host(backbone: BackboneInfo, loads: list[_Load], batch: int, side: int) -> int:
    images = sum(load.images * 3 * load.size * load.size for load in loads)
    return RUNTIME_BYTES + _params_bytes(backbone) + images + BATCH_COPIES * batch * 3 * side * side * 4


def vr_footprint(config: dict[str, Any]) -> Footprint:
    backbone, dataset = BACKBONES.get(config["backbone"]), DATASETS.get(config["dataset"])
    subset = config.get("subset") or {}
    if config["input"] == "padding":
        train_side = test_side = config.get("image_size") or dataset.vr_image_size
        model_side = config.get("canvas") or backbone.input_size
    else:
        model_side = config.get("resolution") or backbone.input_size
        margin = config.get("crop_margin") or 0
        train_side = model_side + margin
        test_side = train_side if config["input"] == "finetune" else model_side
    loads = [_Load("train", _split_images(dataset, "train", config), train_side, ("subset", subset.get("train"))),
             _Load("test", _split_images(dataset, "test", config), test_side, ("subset", subset.get("test")))]
    batch = config.get("batch_size") or 1
    weights = _params_bytes(backbone) * (3 if config["input"] == "finetune" else 1)
    gpu = CUDA_CONTEXT_BYTES + weights + batch * (_activation(backbone, model_side, True) + 2 * 3 * model_side**2 * 4)
    return Footprint(_host(backbone, loads, batch, max(train_side, model_side)), int(gpu),
                     _cache(dataset, loads, backbone.resize))


def prompt_footprint(config: dict[str, Any]) -> Footprint:
    from vrbench.methods.clip_catalog import CLIP_METHODS

    backbone, dataset = BACKBONES.get(config["backbone"]), DATASETS.get(config["dataset"])
    method = CLIP_METHODS.get(config["method"])
    side = backbone.input_size
    subset = config.get("subset") or {}
    loads = [_Load("test", _split_images(dataset, "test", config), side, ("subset", subset.get("test")))]
    training = config.get("stage") == "train" and method.kind != "zeroshot"
    batch = config.get("test_batch_size") or 100
    classes = dataset.num_classes // 2 if config.get("subsample") in ("base", "new") else dataset.num_classes
    gpu = CUDA_CONTEXT_BYTES + _params_bytes(backbone) + batch * _activation(backbone, side, False)
    if training:
        train = _split_images(dataset, "train", config)
        shots = config.get("shots")
        chosen = _fewshot_images(dataset, train, shots) if shots else train
        loads.append(_Load("train", chosen, side, ("fewshot", shots, config.get("seed"), subset.get("train"))
                           if shots else ("subset", subset.get("train"))))
        train_batch = config.get("batch_size") or 1
        if method.kind == "prompt":
            image_backward = method.name in IMAGE_GRAD_METHODS
            prompts = classes * (train_batch if method.name in PER_IMAGE_TEXT_METHODS else 1)
            gpu = max(gpu, CUDA_CONTEXT_BYTES + _params_bytes(backbone)
                      + train_batch * _activation(backbone, side, image_backward)
                      + prompts * backbone.text_activation_mb * 1e6)
        batch = max(batch, train_batch)
    return Footprint(_host(backbone, loads, batch, side), int(gpu), _cache(dataset, loads, "clip"))


def job_footprint(config: dict[str, Any]) -> Footprint:
    return prompt_footprint(config) if "method" in config else vr_footprint(config)


def suite_footprint(configs: list[dict[str, Any]]) -> SuiteFootprint:
    jobs = [job_footprint(config) for config in configs]
    entries: dict[CacheKey, int] = {}
    for job in jobs:
        entries.update(job.cache)
    return SuiteFootprint(jobs, sum(entries.values()), max((j.host for j in jobs), default=0),
                          max((j.gpu for j in jobs), default=0))
