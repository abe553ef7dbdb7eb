"""The static leaderboard site (`vrbench site`): a page per table, method, dataset, cell and run, built from the
index with the report's model, figures and templates; opens from file:// and any static host. Never torch."""

from __future__ import annotations

from vrbench.site.build import build_site

__all__ = ["build_site"]
