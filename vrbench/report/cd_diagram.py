"""The critical-difference diagram (Demšar, JMLR 2006) of one leaderboard: the methods' average ranks across
datasets on an axis, with a bar joining every group of methods whose ranks lie within the Nemenyi critical
difference (no significant difference among them). Drawn with matplotlib (Agg), like the report's other figures.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vrbench.report.figures import CHAR_SMALL, Figure, _new_figure, _png, cd_key
from vrbench.report.formatting import p_text
from vrbench.stats.ranks import RankSummary, cliques


@dataclass(frozen=True)
class CDData:
    rule: str
    ranks: RankSummary


def critical_difference(data: CDData) -> Figure:
    ranks = data.ranks
    order = np.argsort(ranks.average_ranks, kind="stable")
    labels = [ranks.labels[i] for i in order]
    values = np.array([ranks.average_ranks[i] for i in order])
    k = len(labels)
    left_half = (k + 1) // 2  # the better half is labelled on the left, the rest on the right
    step = 0.32
    bars = cliques(values, ranks.cd)
    drop = 0.15 * len(bars)  # room under the axis for the bars
    label_width = CHAR_SMALL * max(len(label) for label in labels) + 0.9
    width = 2 * label_width + max(3.0, 0.45 * k)
    height = 1.3 + step * (left_half + 1) + drop
    figure = _new_figure(width, height, layout=None)
    figure.subplots_adjust(left=label_width / width, right=1 - label_width / width, bottom=0.1 / height,
                           top=1 - 0.45 / height)
    axes = figure.add_subplot()
    axes.set_xlim(1, k)
    bottom = -step * (left_half + 1) - drop
    axes.set_ylim(bottom, 0.6)
    axes.axis("off")
    axes.plot([1, k], [0, 0], color="black", linewidth=1)
    for tick in range(1, k + 1):
        axes.plot([tick, tick], [0, 0.08], color="black", linewidth=1)
        axes.text(tick, 0.12, str(tick), ha="center", va="bottom", fontsize="small")
    if 1 + ranks.cd <= k:
        axes.plot([1, 1 + ranks.cd], [0.45, 0.45], color="black", linewidth=2)
        axes.text(1 + ranks.cd / 2, 0.5, f"CD = {ranks.cd:.2f}", ha="center", va="bottom", fontsize="small")
    for position, (label, value) in enumerate(zip(labels, values, strict=True)):
        on_left = position < left_half
        level = -step * ((position if on_left else k - 1 - position) + 1) - drop
        end = 1 if on_left else k
        axes.plot([value, value, end], [0, level, level], color="#444444", linewidth=1, clip_on=False)
        axes.text(end + (-0.08 if on_left else 0.08) * k / 5, level,
                  f"{label} ({value:.2f})" if on_left else f"({value:.2f}) {label}",
                  ha="right" if on_left else "left", va="center", fontsize="small", clip_on=False)
    for index, (start, end) in enumerate(bars):
        y = -0.1 - 0.15 * index
        axes.plot([values[start] - 0.03, values[end] + 0.03], [y, y], color="#d62728", linewidth=3,
                  solid_capstyle="round")
    friedman = ("Friedman test needs 3 or more methods" if ranks.friedman_p is None
                else f"Friedman {p_text(ranks.friedman_p)}")
    figure.suptitle(f"Average rank over {ranks.n_datasets} datasets ({data.rule}); {friedman}", fontsize="medium")
    caption = (f"Average rank of each method across the {ranks.n_datasets} datasets of the {data.rule} leaderboard "
               f"(1 = best on a dataset; methods with every dataset only). Red bars join methods whose average ranks "
               f"differ by less than the Nemenyi critical difference CD = {ranks.cd:.2f} (α = 0.05): the test cannot "
               "tell them apart. See docs/statistics.md.")
    return Figure(cd_key(data.rule), f"Critical difference ({data.rule})", caption,
                  f"Critical-difference diagram of {k} methods under the {data.rule} rule", _png(figure))
