"""Finished run directories written by the store's own writers, without training: for report tests and benchmarks.

The files are the ones a worker writes (config.json through ``write_config``, then env.json, metrics.jsonl,
mapping.json and, last, result.json through the atomic writers), with the result summarised from the epoch history
the way the training loop summarises it, so the index and the reports read them exactly as real runs.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

from vrbench.store.rundir import (
    ENV,
    MAPPING,
    METRICS,
    RESULT,
    atomic_write_json,
    atomic_write_text,
    now_iso,
    run_dir,
    write_config,
)


def learning_curve(epochs: int, final: float, rng: random.Random, start: float = 10.0) -> list[dict[str, Any]]:
    """A plausible metrics.jsonl history: test accuracy rising from ``start`` towards ``final`` with noise."""
    history = []
    for epoch in range(1, epochs + 1):
        progress = 1.0 - (1.0 - epoch / epochs) ** 2
        test = max(0.0, min(100.0, start + (final - start) * progress + rng.gauss(0.0, 1.0)))
        history.append({"epoch": epoch, "train_loss": round(2.3 * (1.0 - 0.8 * progress), 4),
                        "train_acc": round(min(100.0, test + 5.0), 2), "val_acc": None,
                        "test_acc": round(test, 2), "lr": 0.01, "seconds": 1.0})
    return history


def summarize(run_id: str, history: list[dict[str, Any]]) -> dict[str, Any]:
    """result.json for ``history``, with the training loop's rules (final = last epoch; best_test = first max)."""
    tested = [row for row in history if row["test_acc"] is not None]
    best = max(tested, key=lambda row: row["test_acc"]) if tested else None
    result: dict[str, Any] = {
        "run_id": run_id, "status": "done", "epochs": len(history),
        "final_acc": history[-1]["test_acc"] if history else None,
        "best_test_acc": best["test_acc"] if best else None, "best_test_epoch": best["epoch"] if best else None,
        "best_val_acc": None, "best_val_epoch": None, "val_size": 0, "trainable_params": 1000,
        "train_seconds": round(sum(row["seconds"] for row in history), 3), "finished_at": now_iso(),
    }
    validated = [row for row in history if row.get("val_acc") is not None]
    if validated:
        best_val = max(validated, key=lambda row: row["val_acc"])
        result.update(best_val_acc=best_val["test_acc"], best_val_epoch=best_val["epoch"])
    return result


def index_mapping(num_source: int, targets: list[str], rng: random.Random,
                  source_classes: list[str] | None = None) -> dict[str, Any]:
    """A one-to-one mapping.json (RLM/FLM/ILM): distinct source classes, one per target."""
    return {"kind": "index", "num_source": num_source, "num_classes": len(targets), "updates": 1,
            "mapping": rng.sample(range(num_source), len(targets)), "classes": targets,
            "source_classes": source_classes}


def matrix_mapping(num_source: int, targets: list[str], rng: random.Random,
                   source_classes: list[str] | None = None) -> dict[str, Any]:
    """A probabilistic mapping.json (BLM, BLM++): a num_source x C matrix of non-negative weights."""
    matrix = [[round(rng.random() ** 8, 5) for _ in targets] for _ in range(num_source)]
    return {"kind": "matrix", "num_source": num_source, "num_classes": len(targets), "updates": 1,
            "mapping": matrix, "classes": targets, "source_classes": source_classes}


def write_finished_run(results: Path, run_id: str, method: str, config: dict[str, Any],
                       history: list[dict[str, Any]], mapping: dict[str, Any] | None = None,
                       env: dict[str, Any] | None = None) -> Path:
    """Write one finished run under ``results/runs/<run_id>/``; return its directory."""
    directory = run_dir(results, run_id)
    write_config(directory, run_id, method, config, runtime={})
    atomic_write_json(directory / ENV, env or {"device": "cpu", "precision": "fp32", "threads": 2})
    atomic_write_text(directory / METRICS, "".join(json.dumps(row) + "\n" for row in history))
    if mapping is not None:
        atomic_write_json(directory / MAPPING, mapping)
    atomic_write_json(directory / RESULT, summarize(run_id, history))
    return directory


ONE_TO_ONE = ("rlm", "flm", "ilm", "identity")


def write_suite_results(suite: Path | str, results: Path, rng_seed: int = 0, num_source: int = 1000,
                        select: Callable[[Any], bool] | None = None) -> list[str]:
    """A finished run for every VR job of a suite (or those ``select`` accepts: it gets each JobSpec), with real run ids
    and configs from the suite file, learning curves whose level depends on the method, and a mapping.json of the
    mapping's kind; return the run ids."""
    from vrbench.suite import load_suite

    rng = random.Random(rng_seed)
    run_ids = []
    for job in load_suite(suite).jobs:
        if select is not None and not select(job):
            continue
        config = job.config
        level = 30.0 + 8.0 * (sum(map(ord, job.method)) % 7) + rng.uniform(-3.0, 3.0)
        history = learning_curve(int(config.get("epochs", 5)), level, rng)
        targets = [str(c) for c in range(10)]
        kind = index_mapping if config.get("mapping") in ONE_TO_ONE else matrix_mapping
        write_finished_run(results, job.run_id, job.method, config, history, kind(num_source, targets, rng))
        run_ids.append(job.run_id)
    return run_ids
