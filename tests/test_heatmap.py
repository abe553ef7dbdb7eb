"""The label-mapping heatmap drawn into HTML reports."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vrbench.errors import ConfigError, ResultsError
from vrbench.report.heatmap import heatmap_view, render_heatmap

RUN = "0123456789abcdef"


def write_run(results: Path, exported: dict) -> None:
    directory = results / "runs" / RUN
    directory.mkdir(parents=True)
    config = {"input": "padding", "mapping": "ilm", "backbone": "efficientnet_lite0", "dataset": "digits", "seed": 0}
    (directory / "config.json").write_text(json.dumps({"run_id": RUN, "config": config}))
    (directory / "mapping.json").write_text(json.dumps(exported))


def test_one_to_one_mapping_marks_exactly_one_source_per_target(tmp_path: Path) -> None:
    sources = [f"src<{i}>" for i in range(6)]
    write_run(tmp_path, {"kind": "index", "num_source": 6, "num_classes": 3, "mapping": [4, 0, 2],
                         "classes": ["a", "b", "c"], "source_classes": sources})
    view = heatmap_view(tmp_path, RUN)
    assert [row["name"] for row in view["rows"]] == ["src<4> (4)", "src<0> (0)", "src<2> (2)"]
    marks = [[cell["alpha"] for cell in row["cells"]] for row in view["rows"]]
    assert marks == [[1, 0, 0], [0, 1, 0], [0, 0, 1]]
    html = render_heatmap(tmp_path, RUN)
    assert "src&lt;4&gt;" in html and "src<4>" not in html  # names are escaped


def test_matrix_mapping_keeps_the_strongest_sources_scaled_per_column(tmp_path: Path) -> None:
    matrix = [[0.0, 0.0], [0.5, 0.0], [0.0, 0.2], [0.1, 0.1]]
    write_run(tmp_path, {"kind": "matrix", "num_source": 4, "num_classes": 2, "mapping": matrix,
                         "classes": ["x", "y"], "source_classes": None})
    view = heatmap_view(tmp_path, RUN)
    assert view["rows"][0]["name"].startswith("source 1") and view["rows"][1]["name"].startswith("source 2")
    assert view["rows"][0]["cells"][0]["alpha"] == 1.0 and view["rows"][1]["cells"][1]["alpha"] == 1.0
    assert view["rows"][2]["cells"][1]["alpha"] == pytest.approx(0.5)


def test_missing_mapping_and_markdown_heatmaps_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(ResultsError, match="has no mapping.json"):
        heatmap_view(tmp_path, RUN)
    from vrbench.report import build_report

    with pytest.raises(ConfigError, match="HTML"):
        build_report(tmp_path / "vrbench.duckdb", tmp_path / "out", fmt="md", heatmaps=(RUN,))


def test_blm_mapping_shows_only_the_sources_with_weight(tmp_path: Path) -> None:
    # A BLM mapping of 1000 sources onto 10 targets where only 15 sources carry weight (the rest are exactly 0):
    # the rows are those 15, strongest first, never classes 0, 1, 2, ... padded in index order.
    weighted = {900 + k: (k % 10, 0.1 + k / 100) for k in range(15)}
    matrix = [[0.0] * 10 for _ in range(1000)]
    for source, (target, weight) in weighted.items():
        matrix[source][target] = weight
    write_run(tmp_path, {"kind": "matrix", "num_source": 1000, "num_classes": 10, "mapping": matrix,
                         "classes": None, "source_classes": None})
    view = heatmap_view(tmp_path, RUN)
    shown = [int(row["name"].rsplit("(", 1)[1].rstrip(")")) for row in view["rows"]]
    assert sorted(shown) == sorted(weighted)
    assert view["description"].startswith("all 15 sources with weight (of 1000")


def test_more_weighted_sources_than_rows_says_how_many(tmp_path: Path) -> None:
    matrix = [[0.0, 0.0] for _ in range(200)]
    for k in range(60):  # 60 weighted sources, more than the 40 rows drawn
        matrix[k * 3][k % 2] = 1.0 + k
    write_run(tmp_path, {"kind": "matrix", "num_source": 200, "num_classes": 2, "mapping": matrix,
                         "classes": ["x", "y"], "source_classes": None})
    view = heatmap_view(tmp_path, RUN)
    assert len(view["rows"]) == 40
    assert all(any(cell["alpha"] > 0 for cell in row["cells"]) for row in view["rows"])
    assert "the 40 strongest of the 60 sources with weight (of 200" in view["description"]
