"""The body of `vrbench site` (cli.py registers it): load the suites, build, say what was written."""

from __future__ import annotations

from pathlib import Path

from vrbench.site.build import build_site


def site_command(results: Path, out: Path, suites: list[Path]) -> str:
    from vrbench.suite import load_suite

    loaded = [load_suite(path) for path in suites]
    stats = build_site(results, out, loaded)
    removed = f", {len(stats.removed)} removed" if stats.removed else ""
    return (f"wrote {out / 'index.html'}: {len(stats.pages_written)} pages and files written, "
            f"{stats.pages_kept} unchanged{removed}")
