"""Names a user can type are shown as typed, everywhere (issue 25, items 1 and 2).

Every string of the shared corpus (vrbench.testing.hostile) goes through each report format (Markdown, HTML with its
matplotlib figures, LaTeX), the live run display, and the CLI tables of `run --dry-run`, `status` and `ls suites`.
"""

from __future__ import annotations

import io
import random
import re
from pathlib import Path

import pytest
import yaml
from markupsafe import escape
from rich.console import Console
from typer.testing import CliRunner

from vrbench.cli import app
from vrbench.jobs import make_job
from vrbench.report import build_report
from vrbench.report.figures import MANIFEST
from vrbench.report.latex import tex
from vrbench.report.markdown import md
from vrbench.runner.display import RunDisplay
from vrbench.store.db import DB_NAME, ingest
from vrbench.terminal import literal, one_line
from vrbench.testing.hostile import HOSTILE_STRINGS, ONE_LINE
from vrbench.testing.runs import index_mapping, learning_curve, write_finished_run

NAMES = sorted(HOSTILE_STRINGS)
CONFIG = {"protocol": "vr", "input": "padding", "mapping": "ilm", "backbone": "efficientnet_lite0",
          "dataset": "digits", "seed": 0, "epochs": 3}


def _results(root: Path, methods: list[str], dataset: str = "digits") -> Path:
    """One finished run (with a label mapping, so the heatmap figures are drawn too) per method name."""
    rng = random.Random(0)
    for i, method in enumerate(methods):
        config = {**CONFIG, "seed": i, "dataset": dataset}
        run_id = f"{i:016x}"
        write_finished_run(root, run_id, method, config, learning_curve(3, 40.0 + i, rng),
                           index_mapping(20, [str(c) for c in range(10)], rng))
    ingest(root, root / DB_NAME)
    return root


@pytest.mark.parametrize("name", NAMES)
def test_html_report_with_figures_shows_the_name(tmp_path: Path, name: str) -> None:
    text = HOSTILE_STRINGS[name]
    results = _results(tmp_path / "results", [text, "padding+ilm"])
    path = build_report(results / DB_NAME, tmp_path / "out", fmt="html")
    page = path.read_bytes().decode("utf-8")  # not read_text: it would turn a "\r" into "\n"
    figures = sorted(p.name for p in (tmp_path / "out" / "figures").glob("*.png"))
    assert {"comparison.png", "learning-curves.png"} <= set(figures)
    assert len([f for f in figures if f.startswith("mapping-")]) == 2  # both methods' heatmaps drawn
    assert (tmp_path / "out" / "figures" / MANIFEST).exists()
    if "<" in text:
        assert text not in page  # escaped, never raw HTML
    assert str(escape(text[:40])) in page  # shown, escaped as jinja2 escapes


def test_every_format_survives_the_whole_corpus(tmp_path: Path) -> None:
    results = _results(tmp_path / "results", list(HOSTILE_STRINGS.values()))
    escapes = {"md": md, "latex": tex, "html": lambda text: str(escape(text))}
    for fmt, escaped in escapes.items():
        path = build_report(results / DB_NAME, tmp_path / fmt, fmt=fmt)
        text = path.read_bytes().decode("utf-8")
        raw = {"md": "<script>", "latex": "\\input{/etc/passwd}", "html": "<script>alert"}[fmt]
        assert raw not in text
        for name, hostile in HOSTILE_STRINGS.items():
            assert escaped(hostile) in text, (fmt, name)
        if fmt == "latex":
            assert "\\end{document}" not in text  # a fragment to \\input: the label's is escaped
        if fmt == "md":  # in every table, each row has as many cell separators as its header
            tables = re.findall(r"(?m)(?:^\|.*\n)+", text)
            assert tables
            for table in tables:
                assert len({line.replace("\\|", "").count("|") for line in table.splitlines()}) == 1, table


@pytest.mark.parametrize("name", NAMES)
def test_live_display_prints_each_event_on_one_line(name: str) -> None:
    text = HOSTILE_STRINGS[name]
    job = make_job(CONFIG, ["final"], label=text)
    out = io.StringIO()
    console = Console(file=out, force_terminal=False, width=400, color_system=None)
    with RunDisplay(1, console) as display:
        display("start", job, {})
        display("progress", job, {"phase": text, "epoch": 1, "loss": 1.0})
        console.print(display._render())  # the live table, as a terminal would show it
        display("failed", job, {"detail": f"RuntimeError: {text}"})
        display("corrupt", job, {"detail": text})
    lines = out.getvalue().splitlines()
    events = [line for line in lines if line.startswith(("start", "failed", "corrupt"))]
    assert len(events) == 3
    shown = one_line(text)
    assert all(shown in line for line in events)
    assert "\x1b" not in out.getvalue() and "\r" not in out.getvalue()


def _suite(directory: Path, name: str, label: str) -> Path:
    path = directory / "suites" / "hostile.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump({
        "name": name, "description": label, "protocol": "vr",
        "grid": {"input": ["padding"], "mapping": ["ilm"], "backbone": ["efficientnet_lite0"], "dataset": ["digits"],
                 "seed": [0]},
        "defaults": {"epochs": 1, "lr": 0.01, "batch_size": 32, "label": label, "image_size": 32, "canvas": 64,
                     "selection": ["final"]}}), encoding="utf-8")
    return path


@pytest.mark.parametrize("name", sorted(ONE_LINE))
def test_cli_tables_show_the_label_and_suite_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                  name: str) -> None:
    text = HOSTILE_STRINGS[name]
    suite = _suite(tmp_path, text, text)
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    for args in (["run", str(suite), "--dry-run"], ["status", str(suite), "--results", str(tmp_path / "r")],
                 ["ls", "suites"]):
        result = runner.invoke(app, args, env={"COLUMNS": "600"})
        assert result.exit_code == 0, (args, result.output, result.exception)
        flat = "".join(result.output.split())  # tables may fold (or cut) long cells
        assert "".join(one_line(text)[:40].split()) in flat, (args, result.output)


def test_label_with_a_newline_stays_on_one_line_in_tables(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    suite = _suite(tmp_path, "multi\nline", "first\nsecond")
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["status", str(suite), "--results", str(tmp_path / "r")],
                                env={"COLUMNS": "600"})
    assert result.exit_code == 0, result.output
    assert "first\\nsecond" in result.output and "multi\\nline" in result.output


def test_literal_is_plain_text_for_rich() -> None:
    console = Console(file=io.StringIO(), width=400, color_system=None)
    for text in HOSTILE_STRINGS.values():
        console.print(literal(text))
    printed = console.file.getvalue().splitlines()
    assert printed == [one_line(t) for t in HOSTILE_STRINGS.values()]


@pytest.mark.slow
def test_a_real_run_with_a_hostile_label_and_suite_name(tmp_path: Path) -> None:
    """`vrbench run` end to end (one tiny job): before, `a[/]b` killed the run after it had claimed its job."""
    import os
    import subprocess
    import sys

    label = HOSTILE_STRINGS["rich-close"] + " " + HOSTILE_STRINGS["mathtext-open"] + "\nsecond line"
    suite = _suite(tmp_path, HOSTILE_STRINGS["rich-style"], label)
    text = suite.read_text(encoding="utf-8").replace("epochs: 1", "epochs: 1\n  subset: {train: 64, test: 32}")
    suite.write_text(text, encoding="utf-8")
    env = {**os.environ, "COLUMNS": "300"}
    results = tmp_path / "results"
    for args in (["run", str(suite), "--threads", "1"], ["status", str(suite)],
                 ["report", "--format", "html", "--suite", str(suite), "--out", str(tmp_path / "out")]):
        out = subprocess.run([sys.executable, "-m", "vrbench.cli", *args, "--results", str(results)], cwd=tmp_path,
                             capture_output=True, text=True, env=env, timeout=600)
        assert out.returncode == 0, (args, out.stdout, out.stderr)
        if args[0] == "run":
            lines = [line for line in out.stdout.splitlines() if line.startswith(("start", "done"))]
            assert len(lines) == 2 and all(one_line(label) in line for line in lines)
    assert (tmp_path / "out" / "figures" / "comparison.png").exists()
