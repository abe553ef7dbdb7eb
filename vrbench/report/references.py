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
    "vit_l16": "vit_l_384_imagenet",  # SMM Table 13's ViT-L at 384 px
}

# Our dataset name -> the CSVs' name, where they differ (identical names need no entry).
DATASET_ALIASES: dict[str, str] = {"oxfordpets": "oxford_pets", "stanfordcars": "stanford_cars",
                                   "imagenetv2": "imagenet_v2"}


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


_PSRC = "promptsrc_iccv23"
PSRC_B2N = "Table 1 base-to-novel (16-shot base classes)"
PSRC_ABLATION = "Suppl. per-dataset component ablation (base-to-novel)"  # the only base-to-novel IVLP row
PSRC_FEWSHOT = "Suppl. few-shot per-dataset table"
PSRC_XD = "Table: cross-dataset (train ImageNet 16-shot all classes, zero-shot transfer)"
PSRC_DG = "Table: domain generalization (source ImageNet)"

# Which published tables can hold a prompt-learning protocol's numbers: a method's row in the few-shot table must
# never answer for its base-to-novel cell, and ImageNet appears in both the cross-dataset and the DG table.
PROTOCOL_TABLES: dict[str, tuple[str, ...]] = {
    "base2novel": (PSRC_B2N, PSRC_ABLATION),
    "fewshot": (PSRC_FEWSHOT,),
    "cross_dataset": (PSRC_XD,),
    "domain_generalization": (PSRC_DG,),
}


def _psrc(row: str, *tables: str) -> tuple[RefSource, ...]:
    return tuple(RefSource(_PSRC, table, row) for table in tables)


_PSRC_ALL = (PSRC_B2N, PSRC_FEWSHOT, PSRC_XD, PSRC_DG)

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
    # CLIP prompt learning (PromptSRC's tables, which reprint CLIP, CoOp, CoCoOp and MaPLe)
    "zeroshot": _psrc("CLIP (zero-shot)", PSRC_B2N, PSRC_DG),
    "linear_probe_clip": _psrc("Linear probe CLIP", PSRC_FEWSHOT),
    "coop": _psrc("CoOp", *_PSRC_ALL),
    "cocoop": _psrc("CoCoOp", *_PSRC_ALL),
    "ivlp": _psrc("IVLP", PSRC_ABLATION),
    "maple": _psrc("MaPLe", *_PSRC_ALL),
    "promptsrc": _psrc("PromptSRC", *_PSRC_ALL),
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


def _sources(method: str, paper: str | None, rows: dict[str, tuple[RefSource, ...]] | None,
             tables: tuple[str, ...] | None) -> tuple[RefSource, ...]:
    """The published rows that may report ``method``, most preferred first."""
    check_paper(paper)
    # A suite's own `reference.rows` name the rows its methods reproduce; they come before the built-in aliases.
    sources = (*(rows or {}).get(method, ()), *METHOD_ALIASES.get(method, ()))
    if tables is not None:
        sources = tuple(s for s in sources if s.table in tables)
    if paper is not None:
        return tuple(s for s in sources if s.paper == paper)
    order = {stem: i for i, stem in enumerate(DEFAULT_PAPER_ORDER)}
    return tuple(sorted(sources, key=lambda s: order.get(s.paper, len(order))))


def ref_dataset(dataset: str) -> str:
    """Our dataset name as the reference CSVs spell it."""
    return DATASET_ALIASES.get(dataset, dataset)


def match(method: str, backbone: str, dataset: str, paper: str | None = None,
          metric: str = METRIC, rows: dict[str, tuple[RefSource, ...]] | None = None,
          tables: tuple[str, ...] | None = None) -> Reference | None:
    """The published value for our (method, backbone, dataset), or None when no paper reports it.

    With ``paper`` (a CSV stem) only that paper is consulted, so a report compares with the paper its suite
    reproduces; without it, papers are tried in DEFAULT_PAPER_ORDER. ``tables`` restricts the search to those
    published tables (a protocol's, see PROTOCOL_TABLES). The backbone must be the published one: a cell from
    another backbone has no reference, however similar the method.
    """
    found = matches(method, backbone, dataset, paper=paper, metric=metric, rows=rows, tables=tables)
    return found[0] if found else None


def matches(method: str, backbone: str, dataset: str, paper: str | None = None,
            metric: str = METRIC, rows: dict[str, tuple[RefSource, ...]] | None = None,
            tables: tuple[str, ...] | None = None) -> list[Reference]:
    """Every published value our (method, backbone, dataset) reproduces, most preferred first (``match`` shows
    the first; a cell can sit in several tables, e.g. SMM's ResNet-18 CIFAR10 in Tables 1, 3 and 10)."""
    index = _index()
    found = []
    for key in cell_keys(method, backbone, dataset, paper=paper, metric=metric, rows=rows, tables=tables):
        ref = index.get(key)
        if ref is not None and ref not in found:
            found.append(ref)
    return found


CellKey = tuple[str, str, str, str, str, str]  # (paper stem, table, method, backbone, dataset, metric) as the CSVs


def cell_key(ref: Reference) -> CellKey:
    return ref.paper_stem, ref.table, ref.method, ref.backbone, ref.dataset, ref.metric


def cell_keys(method: str, backbone: str, dataset: str, paper: str | None = None, metric: str = METRIC,
              rows: dict[str, tuple[RefSource, ...]] | None = None,
              tables: tuple[str, ...] | None = None) -> list[CellKey]:
    """The published cells (in the CSVs' names) our (method, backbone, dataset) would be compared with, whether or
    not the paper printed a value there: the one lookup behind ``match``, ``matches`` and the coverage check."""
    ref_backbone = BACKBONE_ALIASES.get(backbone, backbone)
    return [(s.paper, s.table, s.method, ref_backbone, ref_dataset(dataset), metric)
            for s in _sources(method, paper, rows, tables)]


def published_backbones(method: str, paper: str | None = None, metric: str = METRIC,
                        rows: dict[str, tuple[RefSource, ...]] | None = None,
                        tables: tuple[str, ...] | None = None) -> set[str]:
    """The backbones (CSV names) for which some paper reports ``method`` under ``metric``; lets a report say why
    a row of another backbone shows no published value."""
    wanted = {(s.paper, s.table, s.method) for s in _sources(method, paper, rows, tables)}
    return {r.backbone for refs in load_references().values() for r in refs
            if (r.paper_stem, r.table, r.method) in wanted and r.metric == metric}


def datasets_of(ref: Reference) -> set[str]:
    """The per-dataset rows (CSV names, printed averages excluded) of ``ref``'s table, row, backbone and metric:
    what a printed average such as ``avg_11_datasets`` is the mean of."""
    return {r.dataset for r in load_references().get(ref.paper_stem, ())
            if (r.table, r.method, r.backbone, r.metric) == (ref.table, ref.method, ref.backbone, ref.metric)
            and not r.dataset.startswith("avg_")}
