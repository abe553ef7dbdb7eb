"""The final label mapping of one run as an HTML heatmap: source classes by target classes, names on both axes.

One-to-one mappings (RLM/FLM/ILM) show the C chosen source classes against the C targets; probabilistic and
learned mappings (BLM, BLM++, FC heads) show the sources with the largest weights (only sources with some weight:
a BLM mapping leaves most of them at zero), each column scaled to its own maximum so every target's strongest
sources stand out.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from jinja2 import Environment

from vrbench.errors import ResultsError
from vrbench.store.rundir import MAPPING, read_json, run_dir

MAX_MATRIX_ROWS = 40

_TEMPLATE = """
<section class="heatmap">
<h2>Label mapping of run {{ run_id }}</h2>
<p>{{ method }} · {{ backbone }} · {{ dataset }} · seed {{ seed }}: {{ description }}</p>
<table class="heat">
<tr><th>source \\ target</th>{% for t in targets %}<th class="rot"><span>{{ t }}</span></th>{% endfor %}</tr>
{% for row in rows %}<tr><th>{{ row.name }}</th>
{% for v in row.cells %}<td style="background: rgba(31, 119, 180, {{ '%.3f' % v.alpha }})" title="{{ v.title }}"></td>
{% endfor %}</tr>
{% endfor %}</table>
</section>
<style>
table.heat { border-collapse: collapse; font-size: 11px; }
table.heat td { width: 14px; height: 14px; border: 1px solid #eee; padding: 0; }
table.heat th { font-weight: normal; text-align: right; padding: 0 4px; white-space: nowrap; }
table.heat th.rot { height: 90px; vertical-align: bottom; }
table.heat th.rot span { writing-mode: vertical-rl; transform: rotate(180deg); }
</style>
"""


def _names(names: list[str] | None, count: int, prefix: str) -> list[str]:
    return list(names) if names and len(names) == count else [f"{prefix}{i}" for i in range(count)]


@dataclass(frozen=True)
class MappingMatrix:
    """A run's final label mapping as rows of source classes by target classes, values in [0, 1]."""

    run_id: str
    method: str
    backbone: str
    dataset: str
    seed: Any
    targets: list[str]
    sources: list[str]  # row names, "name (index)"
    values: list[list[float]]  # rows x targets
    titles: list[list[str]]  # hover text per cell ("" where nothing is mapped)
    description: str
    one_to_one: bool


def mapping_matrix(results: Path, run_id: str) -> MappingMatrix:
    """Read ``mapping.json`` of one run: one-to-one mappings as C chosen sources x C targets, matrices as their
    strongest sources, each column scaled to its maximum."""
    directory = run_dir(results, run_id)
    try:
        exported = read_json(directory / MAPPING)
        config = read_json(directory / "config.json")["config"]
    except FileNotFoundError:
        raise ResultsError(f"run {run_id} has no {MAPPING} in {directory}: is it finished? "
                           "(`vrbench status SUITE`)") from None
    targets = _names(exported.get("classes"), exported["num_classes"], "class ")
    sources = _names(exported.get("source_classes"), exported["num_source"], "source ")
    mapping = exported["mapping"]
    names: list[str] = []
    values: list[list[float]] = []
    titles: list[list[str]] = []
    one_to_one = exported["kind"] == "index"
    if one_to_one:
        for target_index, source in enumerate(mapping):
            names.append(f"{sources[source]} ({source})")
            values.append([1.0 if c == target_index else 0.0 for c in range(len(targets))])
            titles.append([f"{sources[source]} -> {targets[c]}" if c == target_index else ""
                           for c in range(len(targets))])
        description = "one-to-one: each target is read from one source class"
    else:
        column_max = [max(abs(row[c]) for row in mapping) or 1.0 for c in range(len(targets))]
        # Only sources with some weight: a BLM mapping gives most of the 1000 ImageNet classes none, and padding the
        # rows with them would list classes 0, 1, 2, ... in index order as if they mattered.
        weighted = [k for k, row in enumerate(mapping) if any(v != 0 for v in row)]
        strength = sorted(weighted, key=lambda k: -max(abs(v) / m for v, m in zip(mapping[k], column_max,
                                                                                  strict=True)))
        for source in strength[:MAX_MATRIX_ROWS]:
            names.append(f"{sources[source]} ({source})")
            values.append([abs(mapping[source][c]) / column_max[c] for c in range(len(targets))])
            titles.append([f"{sources[source]} -> {targets[c]}: {mapping[source][c]:.4g}"
                           for c in range(len(targets))])
        description = _matrix_description(len(names), len(weighted), len(mapping))
    return MappingMatrix(run_id, f"{config['input']}+{config['mapping']}", config["backbone"], config["dataset"],
                         config["seed"], targets, names, values, titles, description, one_to_one)


def _matrix_description(shown: int, weighted: int, total: int) -> str:
    """Say how many sources carry weight and how many of them the rows show."""
    scope = (f"all {weighted} sources with weight" if shown == weighted
             else f"the {shown} strongest of the {weighted} sources with weight")
    return f"{scope} (of {total}; the others have none), each column scaled to its maximum"


def heatmap_view(results: Path, run_id: str) -> dict[str, Any]:
    m = mapping_matrix(results, run_id)
    rows = [{"name": name, "cells": [{"alpha": v, "title": t} for v, t in zip(vals, tits, strict=True)]}
            for name, vals, tits in zip(m.sources, m.values, m.titles, strict=True)]
    return {"run_id": run_id, "method": m.method, "backbone": m.backbone, "dataset": m.dataset, "seed": m.seed,
            "targets": m.targets, "rows": rows, "description": m.description}


@lru_cache(maxsize=1)
def _template() -> Any:
    """Compiled once per process: the site draws a heatmap on each of thousands of run pages."""
    return Environment(autoescape=True).from_string(_TEMPLATE)


def render_heatmap(results: Path, run_id: str) -> str:
    return _template().render(**heatmap_view(results, run_id))


def insert_heatmaps(html: str, sections: list[str]) -> str:
    """Place the heatmap sections at the end of the page body."""
    marker = "</body>"
    joined = "\n".join(sections)
    return html.replace(marker, joined + "\n" + marker) if marker in html else html + joined

