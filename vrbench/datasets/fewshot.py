"""Prompt-learning protocol pieces: CoOp's few-shot sampling and the base-to-novel class split.

Few-shot (docs/methods.md CLIP §2.4; Dassl ``generate_fewshot_dataset``): after ``set_random_seed(seed)`` CoOp
groups the train items by label in first-appearance order and draws ``random.sample(items, K)`` per label (all items
when a class has fewer than K), then does the same on val with ``min(K, 4)`` shots, continuing the same RNG.
``random.sample`` depends only on the population size and K, so drawing positions with ``random.Random(seed)``
selects exactly the items CoOp selects from the same split file. ImageNet has no val split (val is the test set): only
train is sampled.

The draw is materialised as JSON (never a pickle) at ``<dataset folder>/split_fewshot_vrbench/shot_K-seed_S.json``:
positions into the split file's train/val lists, fingerprints of those lists, and a sha256 over the content, so a
file that was edited or belongs to another split file is refused.

Base-to-novel (§2.5): m = ceil(n/2) over the sorted labels; base = the first m labels, new = the rest; items of the
other half are dropped and labels renumbered to 0..|selection|-1 (new: old label - m).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
from collections.abc import Sequence
from pathlib import Path

from vrbench.errors import ConfigError, MissingResourceError

FORMAT = "vrbench-fewshot-v1"
FOLDER = "split_fewshot_vrbench"
SHOTS = (1, 2, 4, 8, 16)
SEEDS = (1, 2, 3)
SUBSAMPLE = ("all", "base", "new")


def fewshot_positions(labels: Sequence[int], shots: int, rng: random.Random) -> list[int]:
    """Dassl's per-label ``random.sample`` over one data source, as positions into ``labels``."""
    if isinstance(shots, bool) or not isinstance(shots, int) or shots < 1:
        raise ConfigError(f"shots must be a positive integer, got {shots!r}")
    by_label: dict[int, list[int]] = {}
    for position, label in enumerate(labels):
        by_label.setdefault(int(label), []).append(position)
    chosen: list[int] = []
    for items in by_label.values():  # first-appearance order, as Dassl's defaultdict
        chosen.extend(rng.sample(items, shots) if len(items) >= shots else items)
    return chosen


def sample_fewshot(
    train_labels: Sequence[int], val_labels: Sequence[int] | None, shots: int, seed: int
) -> tuple[list[int], list[int]]:
    """(train positions, val positions) CoOp draws for ``shots`` and ``seed`` (val: min(shots, 4) per class)."""
    rng = random.Random(seed)
    train = fewshot_positions(train_labels, shots, rng)
    val = fewshot_positions(val_labels, min(shots, 4), rng) if val_labels else []
    return train, val


def _digest(payload: dict) -> str:
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def fewshot_path(name: str, data_root: Path, shots: int, seed: int) -> Path:
    from vrbench.datasets import DATASETS

    return Path(data_root) / DATASETS.get(name).folder / FOLDER / f"shot_{shots}-seed_{seed}.json"


def _sources(name: str, data_root: Path):
    from vrbench.datasets import DATASETS
    from vrbench.datasets.coop import file_list

    info = DATASETS.get(name)
    if "prompt" not in info.protocols or "train" not in info.splits:
        raise ConfigError(f"dataset {name!r} has no few-shot protocol (it has no train split or is not a "
                          "prompt-learning dataset)")
    train = file_list(name, "train", data_root)
    val = file_list(name, "val", data_root) if "val" in info.splits else None
    return train, val


def make_fewshot_record(name: str, data_root: Path, shots: int, seed: int) -> dict:
    """The JSON record of one few-shot draw (content plus its sha256)."""
    train, val = _sources(name, data_root)
    train_pos, val_pos = sample_fewshot(list(train.labels), list(val.labels) if val else None, shots, seed)
    payload = {
        "format": FORMAT, "dataset": name, "shots": shots, "seed": seed,
        "source": {"train": train.fingerprint(), "val": val.fingerprint() if val else None},
        "train": train_pos, "val": val_pos,
    }
    return {**payload, "sha256": _digest(payload)}


def write_fewshot_files(name: str, data_root: Path, shots: Sequence[int] = SHOTS,
                        seeds: Sequence[int] = SEEDS) -> list[Path]:
    """Write one index file per shots x seed (atomically); return their paths."""
    written = []
    for k in shots:
        for seed in seeds:
            record = make_fewshot_record(name, data_root, k, seed)
            path = fewshot_path(name, data_root, k, seed)
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            tmp.write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
            os.replace(tmp, path)
            written.append(path)
    return written


def read_fewshot_file(name: str, data_root: Path, shots: int, seed: int) -> dict:
    """A stored draw, checked: its sha256 must match its content and its sources the split file on disk."""
    path = fewshot_path(name, data_root, shots, seed)
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise MissingResourceError(f"{path}: cannot read few-shot file ({exc}); run `vrbench data fewshot {name}`") \
            from None
    payload = {key: value for key, value in record.items() if key != "sha256"}
    if record.get("format") != FORMAT or record.get("sha256") != _digest(payload):
        raise MissingResourceError(f"{path}: checksum mismatch (edited or damaged); run `vrbench data fewshot {name}`")
    train, val = _sources(name, data_root)
    expected = {"train": train.fingerprint(), "val": val.fingerprint() if val else None}
    if record["source"] != expected:
        raise MissingResourceError(f"{path} was drawn from a different split file; run `vrbench data fewshot {name}`")
    return record


def fewshot_file_lists(name: str, data_root: Path, shots: int, seed: int):
    """(train, val) FileLists of the stored draw (val None when the dataset has none)."""
    record = read_fewshot_file(name, data_root, shots, seed)
    train, val = _sources(name, data_root)
    return train.select(record["train"]), (val.select(record["val"]) if val is not None else None)


# ---------------------------------------------------------------- base-to-novel


def base_novel_labels(labels: Sequence[int]) -> tuple[list[int], list[int]]:
    """(base, new) label lists: the sorted distinct labels split at ceil(n/2)."""
    distinct = sorted(set(int(label) for label in labels))
    m = math.ceil(len(distinct) / 2)
    return distinct[:m], distinct[m:]


def subsample_classes(labels: Sequence[int], which: str, reference: Sequence[int] | None = None
                      ) -> tuple[list[int], list[int], dict[int, int]]:
    """(kept positions, renumbered labels, old -> new label map) for ``which`` in all / base / new.

    ``reference`` is the label list that defines the split (CoOp: the train set); default ``labels`` itself.
    """
    if which not in SUBSAMPLE:
        raise ConfigError(f"subsample must be one of {', '.join(SUBSAMPLE)}, got {which!r}")
    if which == "all":
        return list(range(len(labels))), [int(x) for x in labels], {x: x for x in sorted(set(map(int, labels)))}
    base, new = base_novel_labels(reference if reference is not None else labels)
    selected = base if which == "base" else new
    relabel = {old: new_label for new_label, old in enumerate(selected)}
    kept = [i for i, label in enumerate(labels) if int(label) in relabel]
    return kept, [relabel[int(labels[i])] for i in kept], relabel


def subsample_file_list(files, which: str, reference: Sequence[int] | None = None):
    """A FileList restricted to base or new classes, labels renumbered and class names kept in the new order."""
    from vrbench.datasets.files import FileList

    if which == "all":
        return files
    kept, new_labels, relabel = subsample_classes(list(files.labels), which, reference)
    classes = tuple(files.classes[old] for old in sorted(relabel, key=relabel.get))
    return FileList(files.dataset, files.split, files.base, tuple(files.paths[i] for i in kept),
                    tuple(new_labels), classes)
