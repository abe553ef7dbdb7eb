"""`vrbench run --dry-run`: large tables summarised, csv/json streamed one job at a time (work counted, not
timed; benchmarks/dry_run.py times 200,000 jobs), and the memory refusal before any job starts (issue 25, items
10 and 12)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from rich.console import Console

from tests.conftest import run_cli
from vrbench.errors import ConfigError
from vrbench.runner.dryrun import EDGE_ROWS, FULL_TABLE_JOBS, print_dry_run
from vrbench.runner.memcheck import check_memory
from vrbench.suite import parse_suite


def grid(seeds: int, extra: str = "") -> str:
    return f"""name: wide
grid:
  input: [padding]
  mapping: [rlm, ilm]
  backbone: [efficientnet_lite0, efficientnet_lite1]
  dataset: [digits, animal_shapes]
  seed: {list(range(seeds))}
defaults: {{epochs: 2, subset: {{train: 100, test: 50}}{extra}}}
"""


class CountingStream(io.StringIO):
    """Counts the writes and keeps the longest: streaming writes one row at a time, never the whole listing."""

    def __init__(self) -> None:
        super().__init__()
        self.writes, self.longest = 0, 0

    def write(self, text: str) -> int:
        self.writes += 1
        self.longest = max(self.longest, len(text))
        return super().write(text)


def _consoles() -> tuple[Console, Console]:
    return Console(file=io.StringIO(), width=250), Console(file=io.StringIO(), width=250)


def test_a_large_table_draws_its_first_and_last_rows_and_counts_per_axis() -> None:
    jobs = parse_suite(grid(250)).jobs  # 2,000 jobs
    out, err = _consoles()
    totals = print_dry_run(jobs, "wide: 2000 jobs", "table", out, err)
    text = out.file.getvalue()
    assert totals.jobs == 2000 and totals.rows_rendered == 2 * EDGE_ROWS  # the work: 20 rows, not 2,000
    assert jobs[0].run_id in text and jobs[-1].run_id in text and jobs[EDGE_ROWS].run_id not in text
    assert "1,980 more" in text and "--format csv" in text
    assert "backbone: efficientnet_lite0 1,000, efficientnet_lite1 1,000" in text
    assert "seed: 250 values (0..249), 8 to 8 jobs each" in text
    assert "2,000 jobs, estimated" in text and "per job at most" in text


def test_a_small_table_shows_every_job() -> None:
    jobs = parse_suite(grid(FULL_TABLE_JOBS // 8)).jobs
    out, err = _consoles()
    totals = print_dry_run(jobs, "small", "table", out, err)
    assert totals.rows_rendered == len(jobs) == FULL_TABLE_JOBS
    assert all(job.run_id in out.file.getvalue() for job in jobs) and "more" not in out.file.getvalue()


@pytest.mark.parametrize("fmt", ["csv", "json"])
def test_csv_and_json_stream_every_job_one_row_at_a_time(fmt: str) -> None:
    jobs = parse_suite(grid(250)).jobs
    out, err = _consoles()
    stream = CountingStream()
    totals = print_dry_run(jobs, "wide", fmt, out, err, out=stream)
    text = stream.getvalue()
    if fmt == "csv":
        rows = list(csv.DictReader(io.StringIO(text)))
        assert stream.writes == len(jobs) + 1  # the header, then one write per job
    else:
        rows = [json.loads(line) for line in text.splitlines()]
        assert stream.writes == len(jobs)
    assert stream.longest < 400  # one row per write
    assert [row["run_id"] for row in rows] == [job.run_id for job in jobs]
    assert int(rows[0]["host_bytes"]) > 0 and float(rows[0]["tmac"]) > 0
    assert totals.rows_rendered == len(jobs) and out.file.getvalue() == ""  # stdout: the rows only
    assert "2,000 jobs, estimated" in err.file.getvalue()  # the totals: stderr


def test_the_table_and_the_stream_sum_to_the_same_totals() -> None:
    jobs = parse_suite(grid(30)).jobs
    out, err = _consoles()
    table = print_dry_run(jobs, "t", "table", out, err)
    streamed = print_dry_run(jobs, "t", "csv", out, err, out=io.StringIO())
    assert (table.jobs, table.tmac, table.peak_host, table.peak_gpu, table.cache_bytes) == (
        streamed.jobs, streamed.tmac, streamed.peak_host, streamed.peak_gpu, streamed.cache_bytes)


def test_cli_dry_run_formats_and_their_misuse(tmp_path: Path) -> None:
    suite = tmp_path / "suite.yaml"
    suite.write_text(grid(3))
    out = run_cli("run", str(suite), "--dry-run", "--format", "json", "--results", str(tmp_path / "r"))
    assert out.returncode == 0, out.stderr
    assert len([json.loads(line) for line in out.stdout.splitlines()]) == 24
    assert "24 jobs, estimated" in out.stderr
    wrong = run_cli("run", str(suite), "--format", "csv", "--results", str(tmp_path / "r"))
    assert wrong.returncode == 2 and "--format csv|json goes with --dry-run" in wrong.stderr


# ------------------------------------------------------------------------------------------ the memory check
HUGE = """name: huge
grid: {input: padding, mapping: ilm, backbone: efficientnet_lite0, dataset: DATASET, seed: [0, 1]}
defaults: {epochs: 1, image_size: 32, canvas: 100000}
"""


def test_a_job_larger_than_the_machine_is_refused_with_its_estimate() -> None:
    jobs = parse_suite(HUGE.replace("DATASET", "digits")).jobs
    with pytest.raises(ConfigError) as info:
        check_memory(jobs, Path("/nonexistent"), "cpu", host=16 * 2**30)
    message = str(info.value)
    assert "\n" not in message and jobs[0].run_id in message and "(and 1 more job(s) do)" in message
    assert "needs an estimated 41.9 TiB of host memory, more than this machine's 16.0 GiB" in message
    assert "--ignore-memory-check" in message
    check_memory(jobs, Path("/nonexistent"), "cpu", host=2**60)  # a machine it fits: no error
    small = parse_suite(HUGE.replace("DATASET", "digits").replace("canvas: 100000", "canvas: 64")).jobs
    with pytest.raises(ConfigError, match="GB|GiB of GPU memory"):
        check_memory(small, Path("/nonexistent"), "cuda", host=2**40, gpu=2**20)  # a 1-MiB GPU
    check_memory(small, Path("/nonexistent"), "cpu", host=2**40, gpu=2**20)  # on the CPU the GPU does not count


def test_run_refuses_before_any_job_starts_and_the_flag_overrides(tmp_path: Path) -> None:
    suite = tmp_path / "suite.yaml"
    suite.write_text(HUGE.replace("DATASET", "cifar10"))  # no CIFAR-10 data here: the next check refuses too
    results = tmp_path / "results"
    out = run_cli("run", str(suite), "--results", str(results), "--device", "cpu", cwd=tmp_path)
    assert out.returncode == 2 and "needs an estimated 41.9 TiB of host memory" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1 and not (results / "runs").exists()
    forced = run_cli("run", str(suite), "--results", str(results), "--device", "cpu", "--ignore-memory-check",
                     cwd=tmp_path)
    assert forced.returncode == 2 and "host memory" not in forced.stderr
    assert "datasets are not ready" in forced.stderr  # past the memory check, stopped by the data check
