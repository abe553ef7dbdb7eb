"""Worker entry point: `python -m vrbench.worker RUN_DIR` runs one job from its config.json.

Every job runs in its own process through this module, so an OOM or a crash ends one job, not the
suite, and any job can be re-run by hand. On failure it writes error.json (with the traceback) and exits 1.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from pathlib import Path

from vrbench.errors import VrbenchError
from vrbench.store.rundir import ERROR, RESULT, atomic_write_json, now_iso


def record_failure(directory: Path, exc: BaseException, exit_code: int = 1) -> None:
    lines = str(exc).strip().splitlines()
    atomic_write_json(directory / ERROR, {
        "run_id": directory.name,
        "error_type": type(exc).__name__,
        "message": lines[0] if lines else type(exc).__name__,
        "traceback": "".join(traceback.format_exception(exc)),
        "exit_code": exit_code,
        "failed_at": now_iso(),
    })


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vrbench.worker", description=__doc__)
    parser.add_argument("run_dir", type=Path, help="a run directory holding config.json")
    args = parser.parse_args(argv)
    directory: Path = args.run_dir.resolve()
    if (directory / RESULT).exists():
        print(f"{directory.name}: already done ({RESULT} exists)")
        return 0
    previous = directory / ERROR
    if previous.exists():  # keep the last failure for reference; the fresh attempt decides the state
        os.replace(previous, directory / "error.previous.json")
    try:
        from vrbench.engine.loop import run_job

        result = run_job(directory)
    except KeyboardInterrupt:  # interrupted, not failed: the checkpoint stays and a re-run resumes
        return 130
    except VrbenchError as exc:
        record_failure(directory, exc)
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except BaseException as exc:  # noqa: BLE001 - the worker must record every failure
        record_failure(directory, exc)
        traceback.print_exc()
        return 1
    print(f"{directory.name}: done, final {result['final_acc']:.2f}%, best_test {result['best_test_acc']:.2f}%")
    return 0


if __name__ == "__main__":
    sys.exit(main())
