"""provenance.json: where an imported run came from (written by ``vrbench import``, read into the index).

Lives in the store (not in vrbench.share) because ingestion reads it; the format is in docs/leaderboard.md.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

PROVENANCE = "provenance.json"


def parse_time(value: Any) -> datetime | None:
    """ISO-8601 text -> naive UTC datetime (the index's TIMESTAMP); None when absent or unreadable."""
    if not isinstance(value, str):
        return None
    try:
        stamp = datetime.fromisoformat(value[:-1] + "+00:00" if value.endswith("Z") else value)
    except ValueError:
        return None
    return stamp.astimezone(timezone.utc).replace(tzinfo=None) if stamp.tzinfo else stamp


def provenance_row(run_id: str, raw: bytes | None) -> tuple[Any, ...] | None:
    """The index's ``provenance`` row from provenance.json bytes (None: not imported, or unreadable)."""
    if raw is None:
        return None
    try:
        data = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    text = {key: (None if data.get(key) is None else str(data.get(key)))
            for key in ("bundle", "bundle_sha256", "source_host")}
    return (run_id, text["bundle"], text["bundle_sha256"], text["source_host"], parse_time(data.get("exported_at")),
            parse_time(data.get("imported_at")))
