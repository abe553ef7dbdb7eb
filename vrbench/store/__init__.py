"""Run directories -> DuckDB: the rebuildable results index (schema in :mod:`vrbench.store.schema`).

Imports only duckdb and the standard library, so `vrbench report` and `vrbench status` stay fast.
"""

from __future__ import annotations

from vrbench.store.db import IngestStats, connect, ingest, is_current, query, refresh
from vrbench.store.scan import Problem

__all__ = ["IngestStats", "Problem", "connect", "ingest", "is_current", "query", "refresh"]
