"""Where `vrbench report` writes and what it leaves there: a folder per results directory, no files of an older
report beside a newer one (the user's own files untouched), and the tables' top rows on the terminal."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from tests.test_report import write_run
from vrbench.cli import app
from vrbench.report import write_report
from vrbench.report.output import MANIFEST, record_report
from vrbench.store import ingest

runner = CliRunner()


def results_dir(root: Path, accs: list[tuple[str, float]]) -> Path:
    """A results directory with one finished run per (method, final accuracy) on digits, indexed."""
    for i, (method, acc) in enumerate(accs):
        write_run(root, f"r{i:03d}", method=method, dataset="digits", accs=(acc, acc + 1.0, None))
    stats = ingest(root, root / "vrbench.duckdb")
    assert stats.problems == [] and stats.done == len(accs)
    return root


def report(*args: str) -> str:
    result = runner.invoke(app, ["report", *args])
    assert result.exit_code == 0, result.output
    return result.output


def test_default_folder_belongs_to_the_results_directory(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)  # a stray ./reports would be the old default
    mine = results_dir(tmp_path / "mine", [("padding+ilm", 40.0)])
    theirs = results_dir(tmp_path / "theirs", [("padding+blm", 70.0)])
    out_mine = report("--results", str(mine))
    out_theirs = report("--results", str(theirs))
    assert f"wrote {mine / 'reports' / 'index.md'} (and cells.csv)" in out_mine
    assert f"wrote {theirs / 'reports' / 'index.md'}" in out_theirs
    assert "padding+ilm" in (mine / "reports" / "index.md").read_text()
    assert "padding+blm" not in (mine / "reports" / "index.md").read_text()
    assert "padding+blm" in (theirs / "reports" / "cells.csv").read_text()
    assert not (tmp_path / "reports").exists()


def test_a_new_report_removes_the_older_reports_files_but_not_the_users(tmp_path: Path) -> None:
    first = results_dir(tmp_path / "first", [("padding+ilm", 40.0), ("padding+rlm", 30.0)])
    second = results_dir(tmp_path / "second", [("padding+blm", 70.0)])
    out = tmp_path / "shared"
    html = write_report(first / "vrbench.duckdb", out, "html")
    assert (out / "index.html").is_file() and any(name.endswith(".png") for name in html.written)
    (out / "notes.txt").write_text("mine")
    (out / "figures" / "my-plot.png").write_bytes(b"mine")

    md = write_report(second / "vrbench.duckdb", out, "md")
    assert not (out / "index.html").exists()  # the other experiment's page is gone ...
    assert not any((out / name).exists() for name in html.written if name.endswith(".png"))
    assert set(md.removed) == set(html.written) - {"cells.csv"}
    assert "padding+blm" in (out / "cells.csv").read_text() and "padding+ilm" not in (out / "cells.csv").read_text()
    assert (out / "notes.txt").read_text() == "mine"  # ... the user's files stay
    assert (out / "figures" / "my-plot.png").read_bytes() == b"mine"
    manifest = json.loads((out / MANIFEST).read_text())
    assert manifest["formats"] == {"md": ["cells.csv", "index.md"]}


def test_formats_of_the_same_report_sit_side_by_side_until_the_numbers_change(tmp_path: Path) -> None:
    results = results_dir(tmp_path / "results", [("padding+ilm", 40.0)])
    out = tmp_path / "out"
    write_report(results / "vrbench.duckdb", out, "md")
    latex = write_report(results / "vrbench.duckdb", out, "latex")
    assert latex.removed == [] and (out / "index.md").is_file() and (out / "index.tex").is_file()

    write_run(results, "late", method="padding+blm", dataset="digits", accs=(70.0, 71.0, None))
    ingest(results, results / "vrbench.duckdb")
    again = write_report(results / "vrbench.duckdb", out, "md")
    assert again.removed == ["index.tex"]  # it showed the numbers before the new run
    assert "padding+blm" in (out / "index.md").read_text()


def test_a_manifest_never_points_a_removal_outside_its_folder(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    victim = tmp_path / "victim.txt"
    victim.write_text("keep")
    (out / "keep.txt").write_text("keep")
    (out / MANIFEST).write_text(json.dumps({"key": "old", "formats": {
        "md": ["../victim.txt", str(victim), "a/b/c/d.txt", "..", "keep.txt/..", "index.md"]}}))
    (out / "index.md").write_text("old page")
    assert record_report(out, "html", "new", ["index.html"]) == ["index.md"]
    assert victim.read_text() == "keep" and (out / "keep.txt").read_text() == "keep"


def test_a_damaged_manifest_removes_nothing(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "index.md").write_text("from before")
    (out / MANIFEST).write_text("{not json")
    assert record_report(out, "latex", "k", ["index.tex"]) == []
    assert (out / "index.md").read_text() == "from before"


def test_unrecorded_report_files_are_kept_and_named(tmp_path: Path) -> None:
    results = results_dir(tmp_path / "results", [("padding+ilm", 40.0)])
    out = tmp_path / "legacy"
    out.mkdir()
    (out / "index.html").write_text("written by an older vrbench")
    text = report("--results", str(results), "--out", str(out))
    assert "note: index.html in" in text and "left in place" in text
    assert (out / "index.html").read_text() == "written by an older vrbench"


def test_the_terminal_shows_the_leaderboard(tmp_path: Path) -> None:
    results = results_dir(tmp_path / "results", [("padding+ilm", 40.0), ("padding+blm", 70.0)])
    text = report("--results", str(results))
    lines = text.splitlines()
    assert "Leaderboard: final (test accuracy %, mean ± std over seeds)" in lines
    table = lines[lines.index("Leaderboard: final (test accuracy %, mean ± std over seeds)") + 1:][:4]
    assert table[0].startswith("| Method · backbone | digits |")
    assert table[2].startswith("| padding+blm · resnet18 | **70.0 (n=1)** |")  # best first, bold, as in the report
    assert table[3].startswith("| padding+ilm · resnet18 | 40.0 (n=1) |")
    assert "Leaderboard: best_test" in text and "| padding+blm · resnet18 | **71.0 (n=1)** |" in text


def test_a_long_leaderboard_prints_its_top_rows(tmp_path: Path) -> None:
    results = results_dir(tmp_path / "results", [(f"padding+m{i:02d}", 10.0 + i) for i in range(25)])
    text = report("--results", str(results), "--format", "latex")
    final = text.split("Leaderboard: final")[1].split("Leaderboard: best_test")[0]
    rows = [line for line in final.splitlines() if line.startswith("| padding+")]
    assert [row.split(" · ")[0] for row in rows] == [f"| padding+m{i:02d}" for i in range(24, 14, -1)]
    assert f"... 15 more row(s) in {results / 'reports' / 'index.tex'}" in final


def test_the_terminal_shows_prompt_learning_tables_too(tmp_path: Path) -> None:
    from tests.test_report_prompt import b2n_pair

    root = tmp_path / "results"
    for seed in (1, 2):
        b2n_pair(root, "coop", "dtd", seed, base=80.0, novel=60.0)
    ingest(root, root / "vrbench.duckdb")
    text = report("--results", str(root))
    lines = text.splitlines()
    table = [line for line in lines if line.startswith("|")]
    assert table and "Base" in table[0] and "Novel" in table[0] and "HM" in table[0]
    assert any(line.startswith("| coop · clip_vit_b16 |") and "80.0" in line and "60.0" in line for line in table)
