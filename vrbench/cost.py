"""A rough compute estimate per job, so users can plan GPU hours before submitting a suite.

cost = epochs × (3 · train images [forward + backward to the input] + test images + train images again when
the mapping is re-estimated with an extra pass) × the backbone's multiply-accumulates per image at the
resolution the job feeds it. It ignores data loading and the small VR modules; it is meant for planning and
comparing jobs, not for billing.
"""

from __future__ import annotations

from typing import Any

from vrbench.backbones import BACKBONES
from vrbench.datasets import DATASETS

# Effective throughput assumed for the GPU-hour estimate (fp16 on a recent data-centre GPU, realistic use).
ASSUMED_TMACS_PER_SECOND = 20.0


def job_tmacs(config: dict[str, Any]) -> float:
    backbone = BACKBONES.get(config["backbone"])
    dataset = DATASETS.get(config["dataset"])
    subset = config.get("subset") or {}
    train = subset.get("train") or dataset.train_size
    test = subset.get("test") or dataset.test_size
    if "method" in config:  # CLIP prompt learning: K shots per class (the text tower is not counted)
        test = test // 2 if config.get("subsample") in ("base", "new") else test
        if config.get("stage") != "train" or not config.get("epochs"):
            return test * backbone.gmacs / 1000.0
        shots = config.get("shots")
        train = min(train, shots * dataset.num_classes) if shots else train
        return (config["epochs"] * 3 * train + test) * backbone.gmacs / 1000.0
    side = config.get("canvas") or config.get("resolution") or backbone.input_size
    per_image = backbone.gmacs * (side / backbone.input_size) ** 2
    # mappings re-estimated every epoch (ILM, BLM, BLM++ and plugins built like them) read `mapping_interval`
    extra_pass = "mapping_interval" in config and config.get("mapping_mode", "faithful") == "faithful"
    images = 3 * train + test + (train if extra_pass else 0)
    return config["epochs"] * images * per_image / 1000.0


def gpu_hours(tmacs: float) -> float:
    return tmacs / ASSUMED_TMACS_PER_SECOND / 3600.0
