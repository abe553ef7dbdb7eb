"""Display views of the site's pages (plain dicts of strings for the templates), built from SiteData.

Each view is also what a page's fingerprint is computed from (except run pages, whose fingerprint is the run's
row: their view reads files), so a page is rendered again exactly when something it shows changed.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from vrbench.report import formatting as f
from vrbench.report.model import RULES, Cell, _dataset_key
from vrbench.share.conflicts import Conflict
from vrbench.site import paths
from vrbench.site.data import CellKey, RunInfo, SiteData

NONE = f.NO_VALUE
# env.json keys that move a run's numbers (docs/results-format.md): highlighted on run pages. "levers" and
# "sessions" are the engine levers (vrbench/engine/levers.py); the top-level folded_batchnorm/shared_border keys are
# the format before them (not reliable, shown as recorded).
LEVERS: tuple[str, ...] = ("levers", "sessions", "cpu_capability", "precision", "device", "threads",
                           "torch_version", "folded_batchnorm", "fused_activations", "frozen_chains", "shared_border")
# A session's columns in the run page's sessions table, after the levers themselves.
SESSION_COUNTS: tuple[str, ...] = ("folded_batchnorm", "fused_activations", "frozen_chains",
                                   "shared_border_wrapped", "shared_border_batches")


def levers_view(env: dict[str, Any]) -> dict[str, Any] | None:
    """The engine levers of a run's env.json: per lever its state over the job ("on", "off", "mixed"), and one row
    per training session (its epochs, the levers that took effect, their counts, the switches requested)."""
    from vrbench.engine.levers import LEVERS as ENGINE_LEVERS  # torch-free

    summary, sessions = env.get("levers"), env.get("sessions")
    if not isinstance(summary, dict) and not isinstance(sessions, list):
        return None
    rows = []
    for session in sessions if isinstance(sessions, list) else ():
        if not isinstance(session, dict):
            continue
        epochs = session.get("epochs")
        requested = session.get("requested") if isinstance(session.get("requested"), dict) else {}
        rows.append({"session": str(session.get("session", NONE)), "started": str(session.get("started_at", NONE)),
                     "epochs": f"{epochs[0] + 1}–{epochs[1]}" if isinstance(epochs, list) and len(epochs) == 2
                     and all(isinstance(e, int) for e in epochs) and epochs[1] > epochs[0] else NONE,
                     "levers": [str(session.get(lever, NONE)) for lever in ENGINE_LEVERS],
                     "counts": [str(session.get(key, NONE)) for key in SESSION_COUNTS],
                     "requested": ", ".join(k for k, v in requested.items() if v) or NONE})
    summary = summary if isinstance(summary, dict) else {}
    return {"names": list(ENGINE_LEVERS), "counts": list(SESSION_COUNTS),
            "summary": [(lever, str(summary.get(lever, NONE))) for lever in ENGINE_LEVERS], "sessions": rows}


def acc_view(value: float | None) -> dict[str, str]:
    return {"text": NONE, "value": ""} if value is None else {"text": f.acc(value), "value": repr(value)}


def cell_text(cell: Cell | None) -> dict[str, str]:
    if cell is None:
        return {"text": NONE, "value": ""}
    spread = "" if cell.std is None else f" ± {f.acc(cell.std)}"
    return {"text": f"{f.acc(cell.mean)}{spread}", "value": repr(round(cell.mean, 6))}


def run_row(run: RunInfo, page: str, conflict: Conflict | None) -> dict[str, Any]:
    """One line of a runs table."""
    return {"run_id": run.run_id, "href": paths.href(paths.run_page(run.run_id), page),
            "seed": NONE if run.seed is None else run.seed, "setting": run.setting, "status": run.status,
            "accs": [acc_view(run.final_acc), acc_view(run.best_test_acc), acc_view(run.best_val_acc)],
            "host": run.hostname or NONE, "finished": _time(run.finished_at),
            "conflict": conflict.note if conflict else ""}


def _time(value: Any) -> str:
    return NONE if value is None else f"{value:%Y-%m-%d %H:%M}"


def cell_view(key: CellKey, data: SiteData, page: str) -> dict[str, Any]:
    method, backbone, dataset = key
    runs = sorted(data.by_cell[key], key=lambda r: (r.setting, r.seed if r.seed is not None else -1, r.run_id))
    rules = []
    for rule in RULES:
        cell = data.cells.get(key, {}).get(rule)
        if cell is not None:
            rules.append({"rule": rule, "n": cell.n, "mean": f.ours(cell).rsplit(" (", 1)[0], "min": f.acc(cell.min),
                          "max": f.acc(cell.max)})
    return {"method": method, "backbone": backbone, "dataset": dataset, "rules": rules,
            "method_href": paths.href(paths.method_page(method), page),
            "dataset_href": paths.href(paths.dataset_page(dataset), page),
            "runs": [run_row(r, page, data.conflicts.get(r.run_id)) for r in runs]}


def cells_rows(keys: list[CellKey], data: SiteData, page: str, name: Callable[[CellKey], str]) -> list[dict]:
    rows = []
    for key in keys:
        rules = data.cells.get(key, {})
        rows.append({"name": name(key), "backbone": key[1], "n": len(data.by_cell[key]),
                     "href": paths.href(paths.cell_page(*key), page),
                     "rules": [cell_text(rules.get(rule)) for rule in RULES]})
    return rows


def _component(axis: str, name: str) -> dict[str, str]:
    """A method's input, mapping or CLIP method as this vrbench registers it (version, defaults, package)."""
    from vrbench.errors import ConfigError

    try:
        if axis == "method":
            from vrbench.methods.clip_catalog import CLIP_METHODS as registry
        else:
            from vrbench.methods import INPUTS, MAPPINGS

            registry = INPUTS if axis == "input" else MAPPINGS
        entry = registry.get(name)
        source = registry.source(name).describe()
    except (ConfigError, ImportError):
        return {"axis": axis, "name": name, "version": NONE, "package": "not installed here", "params": "",
                "description": ""}
    settings = {**entry.params, **getattr(entry, "late_params", {}), **getattr(entry, "defaults", {})}
    return {"axis": axis, "name": name, "version": str(entry.version), "package": source,
            "params": ", ".join(f"{k}={v!r}" for k, v in settings.items()), "description": entry.description}


MAX_VALUES = 8  # distinct values listed for a setting that varies between a method's runs


def settings(configs: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """Each config key over a method's runs: its one value, or the values it takes (seeds, datasets, ...)."""
    values: dict[str, dict[str, None]] = {}
    for config in configs:
        for key, value in config.items():
            values.setdefault(key, {})[json.dumps(value, sort_keys=True)] = None
    out = []
    for key in sorted(values):
        seen = list(values[key])
        missing = sum(1 for c in configs if key not in c)
        text = seen[0] if len(seen) == 1 else ", ".join(sorted(seen)[:MAX_VALUES]) + (
            f", … ({len(seen)} values)" if len(seen) > MAX_VALUES else "")
        out.append((key, text + (f" (absent in {missing} runs)" if missing else "")))
    return out


def method_view(method: str, data: SiteData, page: str, tables: list[dict[str, str]]) -> dict[str, Any]:
    runs = [r for key, rs in data.by_cell.items() if key[0] == method for r in rs]
    configs = [r.config_dict() for r in runs]
    axes = {(axis, c[axis]) for c in configs for axis in ("input", "mapping", "method") if c.get(axis)}
    order = {"input": 0, "mapping": 1, "method": 2}
    keys = sorted({r.cell for r in runs}, key=lambda k: (_dataset_key(k[2]), k[1]))
    return {"name": method, "runs": len(runs), "sources": sorted({r.source for r in runs}),
            "components": [_component(axis, name) for axis, name in sorted(axes, key=lambda a: (order[a[0]], a[1]))],
            "settings": settings(configs), "cells": cells_rows(keys, data, page, lambda k: k[2]),
            "tables": [{"title": t["title"], "href": paths.href(t["path"], page)} for t in tables]}


def dataset_view(dataset: str, data: SiteData, page: str) -> dict[str, Any]:
    from vrbench.errors import ConfigError

    info: list[tuple[str, str]] = []
    try:
        from vrbench.datasets import DATASETS

        entry = DATASETS.get(dataset)
        info = [("classes", str(entry.num_classes)), ("train / test images", f"{entry.train_size} / "
                f"{entry.test_size}"), ("source", entry.source), ("split", entry.split_source),
                ("protocols", ", ".join(entry.protocols)), ("licence", entry.licence),
                ("homepage", entry.homepage), ("package", DATASETS.source(dataset).describe())]
    except (ConfigError, ImportError, AttributeError):
        pass
    keys = sorted((k for k in data.by_cell if k[2] == dataset), key=lambda k: (k[0], k[1]))
    return {"name": dataset, "runs": sum(len(data.by_cell[k]) for k in keys), "info": info,
            "cells": cells_rows(keys, data, page, lambda k: k[0])}


def _expand(key: str, values: list[Any]) -> list[tuple[str, list[Any]]]:
    """A differing env.json list of objects (the training ``sessions``) as the fields that differ, element by
    element ("sessions[1].shared_border"); any other value as it is."""
    from vrbench.share.conflicts import flatten

    if not all(v is None or (isinstance(v, list) and all(isinstance(x, dict) for x in v)) for v in values):
        return [(key, values)]
    out = []
    for index in range(max(len(v) for v in values if v is not None)):
        flats = [flatten(v[index]) if v is not None and index < len(v) else {} for v in values]
        for name in sorted({k for flat in flats for k in flat}):
            found = [flat.get(name) for flat in flats]
            if len({json.dumps(x, sort_keys=True) for x in found}) > 1:
                out.append((f"{key}[{index + 1}].{name}", found))
    return out or [(key, values)]


def conflict_view(conflict: Conflict, page: str) -> dict[str, Any]:
    """The results of one job side by side: which one counts, where each came from, and how they differ."""
    headers = [("counted" if r.counted else "other") + f" ({r.origin})" for r in conflict.results]
    differences = [{"key": key, "lever": False, "values": [NONE if v is None else f"{v:.2f}" for v in values]}
                   for key, values in conflict.scores.items()]
    differences += [{"key": key, "lever": key.split(".")[0].split("[")[0] in LEVERS,
                     "values": [NONE if v is None else v if isinstance(v, str) else json.dumps(v, sort_keys=True)
                                for v in values]}
                    for name, env_values in conflict.env.items() for key, values in _expand(name, env_values)]
    differences.append({"key": "finished_at", "lever": False,
                        "values": [_time(r.finished_at) for r in conflict.results]})
    others = [{"label": f"{r.result_key} ({r.origin})", "href": paths.href(f"{paths.run_files(r.run_id)}/"
                                                                           f"{r.result_key}/result.json", page)}
              for r in conflict.results if not r.counted]
    return {"count": len(conflict.results), "note": conflict.note, "headers": headers,
            "differences": differences, "others": others}
