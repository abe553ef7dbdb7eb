"""Published numbers (``vrbench/references/*.csv``) and how our cells line up with them.

The alias tables below are data: to compare a new method with a paper, add its name and the (paper, table, row
name) it corresponds to. A cell without a matching row gets no reference; a value is never invented.
"""

from __future__ import annotations

import csv
import difflib
import io
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

from vrbench.errors import ConfigError

METRIC = "top1_acc"

# Our backbone name -> the reference CSVs' backbone name. (ILM-VP's ResNet-50 is torchvision IMAGENET1K_V2, but
# the CSV still calls it resnet50_imagenet1k.)
BACKBONE_ALIASES: dict[str, str] = {
    "resnet18": "resnet18_imagenet1k",
    "resnet50": "resnet50_imagenet1k",
    "resnext101_32x8d_wsl": "resnext101_32x8d_instagram_wsl",
    "vit_b32": "vit_b32_imagenet1k",
}

# Our dataset name -> the CSVs' name, where they differ (identical names need no entry).
DATASET_ALIASES: dict[str, str] = {"oxfordpets": "oxford_pets", "stanfordcars": "stanford_cars"}


@dataclass(frozen=True)
class RefSource:
    """Where one of our methods appears in a paper: the CSV stem, its ``table`` value and its ``method`` value."""

    paper: str
    table: str
    method: str


_ILM = "ilm_vp_cvpr23"
_SMM = "smm_icml24"
_ILM_TABLE = "main_cnn_table"
_SMM_T1 = "Table 1 (ILM output mapping)"  # ResNet-18 / ResNet-50
_SMM_T2 = "Table 2 (ILM output mapping, unified lr=0.001)"  # ViT-B/32
_SMM_T10 = "Table 10 (output label mapping variants)"  # ResNet-18, other output mappings
_SMM_T12 = "Table 12 (StanfordCars, ILM output mapping)"  # StanfordCars, left out of Tables 1 and 2


def _smm_ilm(row: str) -> tuple[RefSource, ...]:
    return tuple(RefSource(_SMM, table, row) for table in (_SMM_T1, _SMM_T2, _SMM_T12))


# Our method name -> the rows that report it, in order of preference within a paper.
METHOD_ALIASES: dict[str, tuple[RefSource, ...]] = {
    "padding+ilm": (RefSource(_ILM, _ILM_TABLE, "ILM-VP"), *_smm_ilm("Pad")),
    "padding+flm": (RefSource(_ILM, _ILM_TABLE, "FLM-VP"),),
    "padding+rlm": (RefSource(_ILM, _ILM_TABLE, "RLM-VP"),),
    "resize+linear_probe": (RefSource(_ILM, _ILM_TABLE, "LP"),),
    "finetune+imagenet_head": (RefSource(_ILM, _ILM_TABLE, "FF"),),
    "narrow+ilm": _smm_ilm("Narrow"),
    "medium+ilm": _smm_ilm("Medium"),
    "smm+ilm": (*_smm_ilm("SMM"), RefSource(_SMM, _SMM_T10, "SMM+ILM")),
    "full+ilm": (*_smm_ilm("Full"), RefSource(_SMM, _SMM_T10, "Full+ILM")),
    "smm+flm": (RefSource(_SMM, _SMM_T10, "SMM+FLM"),),
    "smm+rlm": (RefSource(_SMM, _SMM_T10, "SMM+RLM"),),
    "full+flm": (RefSource(_SMM, _SMM_T10, "Full+FLM"),),
    "full+rlm": (RefSource(_SMM, _SMM_T10, "Full+RLM"),),
}

# Which paper to prefer when a suite names none.
DEFAULT_PAPER_ORDER: tuple[str, ...] = (_ILM, _SMM, "blm_neurips24", "ilm_vp_cvpr23_clip", "promptsrc_iccv23")

# The selection rule behind the published numbers: the VR papers keep the best test accuracy over epochs.
PAPER_RULE = "best_test"


@dataclass(frozen=True)
class Reference:
    """One published value, as printed (``value_text``) and as a number."""

    paper_stem: str
    paper: str
    table: str
    method: str
    backbone: str
    dataset: str
    metric: str
    value: float
    value_text: str
    std: float | None
    n_seeds: int | None
    source: str
    confidence: str


def _parse(stem: str, text: str) -> list[Reference]:
    rows = []
    for row in csv.DictReader(io.StringIO(text)):
        value = (row.get("value") or "").strip()
        if not value:
            continue
        std, n_seeds = (row.get("std") or "").strip(), (row.get("n_seeds") or "").strip()
        rows.append(Reference(
            paper_stem=stem, paper=row["paper"], table=row["table"], method=row["method"], backbone=row["backbone"],
            dataset=row["dataset"], metric=row["metric"], value=float(value), value_text=value,
            std=float(std) if std else None, n_seeds=int(n_seeds) if n_seeds else None,
            source=row.get("source_url_or_file", ""), confidence=row.get("confidence", ""),
        ))
    return rows


@lru_cache(maxsize=1)
def load_references() -> dict[str, tuple[Reference, ...]]:
    """All reference CSVs shipped in ``vrbench.references``, keyed by file stem (e.g. ``ilm_vp_cvpr23``)."""
    tables: dict[str, tuple[Reference, ...]] = {}
    for entry in sorted(resources.files("vrbench.references").iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".csv"):
            stem = entry.name[: -len(".csv")]
            tables[stem] = tuple(_parse(stem, entry.read_text(encoding="utf-8")))
    return tables


@lru_cache(maxsize=1)
def _index() -> dict[tuple[str, str, str, str, str, str], Reference]:
    return {(r.paper_stem, r.table, r.method, r.backbone, r.dataset, r.metric): r
            for rows in load_references().values() for r in rows}


def known_papers() -> list[str]:
    return sorted(load_references())


def check_paper(paper: str | None) -> None:
    """Raise a ConfigError naming the known papers (and the closest) when ``paper`` is not a reference CSV."""
    if paper is None or paper in load_references():
        return
    close = difflib.get_close_matches(paper, known_papers(), n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise ConfigError(f"Unknown reference paper {paper!r}.{hint} Known papers: {', '.join(known_papers())}.")


def match(method: str, backbone: str, dataset: str, paper: str | None = None,
          metric: str = METRIC, rows: dict[str, tuple[RefSource, ...]] | None = None) -> Reference | None:
    """The published value for our (method, backbone, dataset), or None when no paper reports it.

    With ``paper`` (a CSV stem) only that paper is consulted, so a report compares with the paper its suite
    reproduces; without it, papers are tried in DEFAULT_PAPER_ORDER.
    """
    check_paper(paper)
    ref_backbone = BACKBONE_ALIASES.get(backbone, backbone)
    ref_dataset = DATASET_ALIASES.get(dataset, dataset)
    # A suite's own `reference.rows` name the rows its methods reproduce; they come before the built-in aliases.
    sources = (*(rows or {}).get(method, ()), *METHOD_ALIASES.get(method, ()))
    if paper is not None:
        sources = tuple(s for s in sources if s.paper == paper)
    else:
        order = {stem: i for i, stem in enumerate(DEFAULT_PAPER_ORDER)}
        sources = tuple(sorted(sources, key=lambda s: order.get(s.paper, len(order))))
    index = _index()
    for source in sources:
        found = index.get((source.paper, source.table, source.method, ref_backbone, ref_dataset, metric))
        if found is not None:
            return found
    return None
