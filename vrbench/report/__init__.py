"""Reports: leaderboards per selection rule, paper-vs-ours comparisons, failed runs (Markdown, HTML, CSV).

Imports only duckdb, jinja2 (lazily, for HTML) and the standard library, so `vrbench report` answers quickly.
"""

from __future__ import annotations

from vrbench.report.build import build_report, load_model
from vrbench.report.references import match

__all__ = ["build_report", "load_model", "match"]
