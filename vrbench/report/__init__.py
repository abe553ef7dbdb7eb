"""Reports: leaderboards per selection rule, paper-vs-ours comparisons, failed runs (Markdown, HTML, LaTeX, CSV).

Imports only duckdb and the standard library up front; jinja2 and matplotlib (figures) are imported when an HTML
report is rendered, so `--help` and the Markdown report answer quickly. Never torch.
"""

from __future__ import annotations

from vrbench.report.build import build_report, load_model, write_report
from vrbench.report.references import match

__all__ = ["build_report", "load_model", "match", "write_report"]
