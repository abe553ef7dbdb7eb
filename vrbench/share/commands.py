"""The bodies of `vrbench export` and `vrbench import` (registered in vrbench/cli.py)."""

from __future__ import annotations

from pathlib import Path

from vrbench.errors import ResultsError


def export_runs(out: Path, results: Path, suite: Path | None, run_ids: list[str] | None,
                with_checkpoints: bool) -> str:
    """Export the selected done runs; return the one-line summary."""
    from vrbench.share.bundle import export_bundle

    selected: set[str] | None = set(run_ids) if run_ids else None
    if suite is not None:
        from vrbench.store.rundir import RESULT, run_dir
        from vrbench.suite import load_suite

        in_suite = {job.run_id for job in load_suite(suite).jobs}
        in_suite = {r for r in in_suite if (run_dir(results, r) / RESULT).is_file()}  # a suite's done jobs
        selected = in_suite if selected is None else selected & in_suite
        if not selected:
            raise ResultsError(f"no done run of {suite} in {results}: nothing to export")
    return export_bundle(out, results, selected, with_checkpoints).summary()


def import_bundles(bundles: list[Path], results: Path) -> tuple[list[str], list[str], list[str]]:
    """Import each bundle; return (summary lines, warnings, refusals: one per refused bundle). The index is brought
    up to date afterwards (provenance and conflicts are in it)."""
    from vrbench.share.importer import BundleRefused, import_bundle
    from vrbench.store.db import DB_NAME, refresh

    lines: list[str] = []
    warnings: list[str] = []
    refused: list[str] = []
    changed = False
    for bundle in bundles:
        try:
            stats = import_bundle(bundle, results)
        except BundleRefused as exc:
            refused.append(str(exc))
            continue
        lines.append(stats.summary())
        changed = changed or bool(stats.added or stats.conflicts)
        warnings += [f"{run_id}: {why}" for run_id, why in stats.deferred]
    if changed:  # and only when stale: re-importing a bundle writes nothing, not even the index
        stats = refresh(results, results / DB_NAME)
        if stats is not None:
            lines.append(f"indexed in {results / DB_NAME}: {stats.summary()}")
    return lines, warnings, refused
