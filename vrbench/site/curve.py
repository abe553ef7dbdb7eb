"""A run's learning curve as a small inline SVG: no matplotlib and no image file per run, so 100,000 run pages
cost a few kilobytes each and draw in microseconds. (The report's matplotlib figures, per table, stay PNGs.)"""

from __future__ import annotations

from dataclasses import dataclass

from vrbench.site.data import Epoch

WIDTH, HEIGHT = 560, 220
LEFT, RIGHT, TOP, BOTTOM = 40, 110, 12, 30  # margins: y ticks left, legend right, x ticks below


@dataclass(frozen=True)
class Series:
    name: str
    colour: str
    column: int  # index into an Epoch tuple


SERIES = (Series("test acc.", "#1f77b4", 4), Series("train acc.", "#8c959f", 2), Series("val acc.", "#ff7f0e", 3))


def curve_svg(epochs: list[Epoch]) -> str:
    """SVG markup (numbers and fixed names only, nothing from run files) of accuracy against epoch."""
    drawn = [(s, [(e[0], e[s.column]) for e in epochs if e[s.column] is not None]) for s in SERIES]
    drawn = [(s, points) for s, points in drawn if points]
    if not drawn:
        return ""
    first, last = epochs[0][0], epochs[-1][0]
    values = [v for _, points in drawn for _, v in points]
    low, high = min(values), max(values)
    low, high = max(0.0, low - 2.0), min(100.0, high + 2.0)
    if high - low < 1.0:
        low, high = low - 0.5, high + 0.5
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    x_scale = plot_w / (last - first) if last > first else 0.0
    x_origin = LEFT - first * x_scale if last > first else LEFT + plot_w / 2
    y_scale = plot_h / (high - low)
    y_origin = TOP + high * y_scale

    def x(epoch: float) -> float:
        return x_origin + epoch * x_scale

    def y(value: float) -> float:
        return y_origin - value * y_scale

    parts = [f'<svg class="curve" xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
             f'viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="learning curve">',
             f'<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#d0d7de"/>']
    for value in (low, (low + high) / 2, high):
        parts.append(f'<text x="{LEFT - 4}" y="{y(value) + 4:.1f}" text-anchor="end" font-size="11">'
                     f'{value:.0f}</text>')
    for epoch in sorted({first, last}):
        parts.append(f'<text x="{x(epoch):.1f}" y="{HEIGHT - BOTTOM + 14}" text-anchor="middle" font-size="11">'
                     f'{epoch}</text>')
    parts.append(f'<text x="{LEFT + plot_w / 2:.1f}" y="{HEIGHT - 4}" text-anchor="middle" font-size="11">'
                 'epoch</text>')
    for index, (series, points) in enumerate(drawn):
        path = " ".join([f"{x_origin + e * x_scale:.1f},{y_origin - v * y_scale:.1f}" for e, v in points])
        parts.append(f'<polyline fill="none" stroke="{series.colour}" stroke-width="1.6" points="{path}"/>')
        if len(points) == 1:
            parts.append(f'<circle cx="{x(points[0][0]):.1f}" cy="{y(points[0][1]):.1f}" r="3" '
                         f'fill="{series.colour}"/>')
        legend_y = TOP + 14 + 16 * index
        parts.append(f'<line x1="{WIDTH - RIGHT + 8}" x2="{WIDTH - RIGHT + 24}" y1="{legend_y - 4}" '
                     f'y2="{legend_y - 4}" stroke="{series.colour}" stroke-width="2"/>'
                     f'<text x="{WIDTH - RIGHT + 28}" y="{legend_y}" font-size="11">{series.name}</text>')
    parts.append("</svg>")
    return "".join(parts)
