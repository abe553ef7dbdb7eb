"""Run the README's notebook snippet on a results directory and check its printed numbers, so they cannot drift.

    python .ci/readme_snippet.py RESULTS [--readme README.md]

RESULTS holds the smoke suite's runs (and nothing else: the report it compares with covers the whole directory).

The snippet is the ```python block after the `<!-- readme-snippet ... -->` marker; that marker records the machine
its outputs came from (env.json's CPU, torch version, threads and engine switches). Each top-level expression
followed by `# ` comment lines is evaluated as a notebook would show it, and:

- on the recorded machine (every run's env.json matches the marker), its printed numbers must equal the README's,
  digit for digit, and so must the tables of `vrbench report` that the README shows after a `readme-report`
  marker ("exact" mode);
- elsewhere (CPU kernels round differently, so the numbers differ legitimately) they must equal what vrbench's own
  report and index say for the same results ("consistency" mode): the cell means of `cells.csv` from
  `vrbench report`, and the per-epoch means straight from DuckDB.

It prints the mode it ran in, and exits 1 with one line per difference.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import csv
import io
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

MARKER = re.compile(r"<!--\s*readme-snippet\b(.*?)-->", re.DOTALL)
REPORT_MARKER = re.compile(r"<!--\s*readme-report:\s*vrbench report((?: --suite \S+)?)[^>]*-->\s*```\n(.*?)\n```",
                           re.DOTALL)
MACHINE_FIELD = re.compile(r'([\w.]+)="([^"]*)"')  # a dotted key reads a nested field: levers.shared_border
NUMBER = re.compile(r"(?<![\w.])-?\d+(?:\.\d+)?(?![\w.])")
RESULTS_LITERAL = 'Results("results")'


def extract(readme: str) -> tuple[dict[str, str], str]:
    """The marker's machine fields and the code of the ```python block right after it."""
    match = MARKER.search(readme)
    if match is None:
        raise SystemExit("README has no <!-- readme-snippet ... --> marker")
    rest = readme[match.end():].lstrip()
    block = re.match(r"```python\n(.*?)\n```", rest, re.DOTALL)
    if block is None:
        raise SystemExit("the readme-snippet marker is not followed by a ```python block")
    return dict(MACHINE_FIELD.findall(match.group(1))), block.group(1)


def shown_outputs(code: str) -> list[tuple[str, str]]:
    """(expression, the README's printed output) for each top-level expression followed by `# ` comment lines."""
    lines = code.splitlines()
    out = []
    for node in ast.parse(code).body:
        if not isinstance(node, ast.Expr):
            continue
        comments = []
        for following in lines[node.end_lineno:]:
            if not following.startswith("#"):
                break
            comments.append(following[2:] if following.startswith("# ") else following[1:])
        if comments:
            out.append(((ast.get_source_segment(code, node) or "").strip(), "\n".join(comments)))
    return out


def report_problems(readme: str, results: Path) -> list[str]:
    """The README's copy of `vrbench report`'s terminal tables against what it prints for ``results`` now."""
    match = REPORT_MARKER.search(readme)
    if match is None:
        return []
    suite = match.group(1).split()[1:]  # relative to the repository, as the README's command is
    suite_args = ["--suite", str(Path(__file__).resolve().parents[1] / suite[0])] if suite else []
    with tempfile.TemporaryDirectory() as out:
        printed = subprocess.run([sys.executable, "-c", "from vrbench.cli import main; main()", "report", "--results",
                                  str(results), *suite_args, "--out", out], check=True, capture_output=True,
                                 text=True, env={**os.environ, "COLUMNS": "200"}).stdout
    want, got = _table_lines(match.group(2)), _table_lines(printed)
    if want == got:
        return []
    first = next((w, g) for w, g in zip([*want, ""], [*got, ""], strict=False) if w != g)
    return [f"the README's `vrbench report` tables differ from what it prints now ({len(want)} table lines in the "
            f"README, {len(got)} now); first difference: README {first[0]!r}, now {first[1]!r}"]


def _table_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("|")]


def run_snippet(code: str, results: Path) -> dict[str, str]:
    """Execute the snippet on ``results`` statement by statement; the printed value of each top-level expression."""
    if RESULTS_LITERAL not in code:
        raise SystemExit(f"the snippet does not open {RESULTS_LITERAL}: cannot point it at {results}")
    code = code.replace(RESULTS_LITERAL, f"Results({str(results)!r})")
    namespace: dict = {}
    printed: dict[str, str] = {}
    for node in ast.parse(code).body:
        source = ast.get_source_segment(code, node) or ""
        if isinstance(node, ast.Expr):
            with contextlib.redirect_stdout(io.StringIO()):
                value = eval(compile(ast.Expression(node.value), "<readme>", "eval"), namespace)  # noqa: S307
            printed[source.strip()] = str(value)
        else:
            exec(compile(ast.Module([node], []), "<readme>", "exec"), namespace)  # noqa: S102
    return printed


def numbers(text: str) -> list[str]:
    return NUMBER.findall(text)


def rows(text: str) -> dict[str, list[float]]:
    """A printed DataFrame's data rows: first field -> its numbers. The first line is the column header (epochs are
    numbers too); the index-name line has no numbers."""
    table = {}
    for line in text.splitlines()[1:]:
        fields = line.split()
        values = [f for f in fields[1:] if NUMBER.fullmatch(f)]
        if len(fields) > 1 and len(values) == len(fields) - 1:
            table[fields[0]] = [float(v) for v in values]
    return table


def _field(env: dict, key: str) -> object:
    """env.json's value at a dotted key (``levers.fold_batchnorm``), None where a part is missing."""
    value: object = env
    for part in key.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def machine_matches(results: Path, machine: dict[str, str]) -> tuple[bool, str]:
    """Whether every run's env.json has the recorded values; the first difference otherwise."""
    envs = sorted((results / "runs").glob("*/env.json"))
    if not envs:
        return False, f"no env.json under {results / 'runs'}"
    for path in envs:
        env = json.loads(path.read_text(encoding="utf-8"))
        for key, value in machine.items():
            found = _field(env, key)
            if str(found) != value:
                return False, f"{path.parent.name}: {key} is {found!r}, the README's machine has {value!r}"
    return True, f"all {len(envs)} runs have the README's machine ({', '.join(f'{k}={v}' for k, v in machine.items())})"


def report_cells(results: Path) -> dict[tuple[str, str], dict[str, float]]:
    """(rule, method) -> {dataset: mean} from the cells.csv that `vrbench report` writes for these results."""
    cells: dict[tuple[str, str], dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as out:
        subprocess.run([sys.executable, "-c", "from vrbench.cli import main; main()", "report", "--results",
                        str(results), "--out", out], check=True, capture_output=True)
        with open(Path(out) / "cells.csv", encoding="utf-8", newline="") as handle:
            for row in csv.DictReader(handle):
                cells.setdefault((row["rule"], row["method"]), {})[row["dataset"]] = float(row["mean"])
    return cells


def epoch_means(results: Path) -> dict[str, list[float]]:
    """method -> mean test accuracy per epoch, straight from the DuckDB index (no pandas)."""
    import duckdb

    con = duckdb.connect(str(results / "vrbench.duckdb"), read_only=True)
    try:
        found = con.execute("SELECT r.method, e.epoch, avg(e.test_acc) FROM epochs e JOIN runs r USING (run_id) "
                            "WHERE r.status = 'done' GROUP BY ALL ORDER BY 1, 2").fetchall()
    finally:
        con.close()
    means: dict[str, list[float]] = {}
    for method, _, mean in found:
        means.setdefault(method, []).append(mean)
    return means


def consistency_problems(code: str, printed: dict[str, str], shown: list[tuple[str, str]],
                         results: Path) -> list[str]:
    """The snippet's outputs against the report's cells and the index's epochs, to the printed 0.1: a pivot of
    ``res.cells(rule=...)`` (one column per dataset) against that rule's cells, any other table (one column per
    epoch) against the index's per-epoch means."""
    rule = re.search(r'cells\(rule="(\w+)"', code)
    rule = rule.group(1) if rule else "best_test"
    cells = report_cells(results)
    epochs = epoch_means(results)
    problems = []
    for expression, _ in shown:
        table = rows(printed[expression])
        for label, values in table.items():
            if expression.startswith("cells."):  # the cells pivot: one column per dataset, in name order
                want = sorted(cells.get((rule, label), {}).items())
                expected = [mean for _, mean in want]
            else:  # the learning curves: one column per epoch
                expected = epochs.get(label, [])
            if len(expected) != len(values) or any(abs(a - b) > 0.051 for a, b in zip(values, expected, strict=True)):
                problems.append(f"{expression}: row {label} printed {values}, vrbench's own numbers are "
                                f"{[round(x, 2) for x in expected]}")
        if not table:
            problems.append(f"{expression}: printed no table rows")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path)
    parser.add_argument("--readme", type=Path, default=Path(__file__).resolve().parents[1] / "README.md")
    args = parser.parse_args(argv)
    machine, code = extract(args.readme.read_text(encoding="utf-8"))
    shown = shown_outputs(code)
    if not shown:
        print("the README's snippet shows no outputs to check", file=sys.stderr)
        return 1
    printed = run_snippet(code, args.results.resolve())
    same_machine, why = machine_matches(args.results, machine)
    if same_machine:
        print(f"readme snippet: exact mode: {why}")
        problems = [f"{expression}: printed numbers {numbers(printed[expression])}, the README shows "
                    f"{numbers(readme_output)}" for expression, readme_output in shown
                    if numbers(printed[expression]) != numbers(readme_output)]
        problems += report_problems(args.readme.read_text(encoding="utf-8"), args.results)
    else:
        print(f"readme snippet: consistency mode (another machine: {why}); checking the snippet's numbers against "
              "vrbench's report and index for the same results")
        problems = consistency_problems(code, printed, shown, args.results)
    for problem in problems:
        print(f"readme snippet: {problem}", file=sys.stderr)
    if not problems:
        what = " and the report's tables" if same_machine and REPORT_MARKER.search(args.readme.read_text()) else ""
        print(f"readme snippet: {len(shown)} printed output(s){what} checked, all equal")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
