"""Write a site's files only when their inputs changed, and remove the files of pages that are gone.

Every page is written with a fingerprint of what it shows (a digest of its data, the templates and the site's
version). The manifest ``site.json`` at the site's root records, per page, that digest and the files the page
owns (its figures, downloads, a run's copied files). A page whose digest is unchanged is not rendered again and its
files are kept; files of pages that no longer exist are removed, and never a path the manifest did not list.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from vrbench.errors import ResultsError

MANIFEST = "site.json"
MANIFEST_FORMAT = 1

Content = str | bytes | Path  # text, bytes, or a file to link (or copy) into the site
Produce = Callable[[], tuple[Content, dict[str, Content]]]  # the page, and the files it owns by site path


@dataclass
class WriteStats:
    """What one build wrote: the work a rebuild must not repeat."""

    pages_written: list[str] = field(default_factory=list)
    pages_kept: int = 0
    files_written: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)

    @property
    def figures_written(self) -> list[str]:
        return [path for path in self.pages_written + self.files_written if path.endswith(".png")]


def _safe(path: str) -> bool:
    """A relative site path with no '..', absolute part or empty segment (the manifest could be edited)."""
    parts = PurePosixPath(path).parts
    return bool(parts) and not path.startswith("/") and all(p not in ("", ".", "..") for p in parts) \
        and "\\" not in path


class SiteWriter:
    """Writes into ``out``; ``finish`` removes what this build did not produce and saves the manifest."""

    def __init__(self, out: Path) -> None:
        self.out = Path(out)
        self.stats = WriteStats()
        self._old = self._read_manifest()
        self._new: dict[str, dict] = {}
        self._folders: set[Path] = set()  # made already (one mkdir per folder, not per file)

    def _read_manifest(self) -> dict[str, dict]:
        path = self.out / MANIFEST
        if not path.exists():
            if self.out.exists() and any(self.out.iterdir()):
                raise ResultsError(f"{self.out} is not empty and holds no {MANIFEST}: it is not a site vrbench "
                                   "built, and nothing in it will be overwritten. Choose a new or empty --out.")
            return {}
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            pages = data["pages"] if data.get("format") == MANIFEST_FORMAT else {}
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return {}  # damaged: every page is written again
        return {k: v for k, v in pages.items() if isinstance(v, dict) and _safe(k)}

    def unchanged(self, page: str, digest: str) -> bool:
        entry = self._old.get(page)
        return entry is not None and entry.get("digest") == digest and (self.out / page).exists()

    def page(self, page: str, digest: str, produce: Produce) -> bool:
        """Write ``page`` (and the files it owns) unless it was written before from the same digest; return
        whether it was written."""
        if self.unchanged(page, digest):
            self._new[page] = self._old[page]
            self.stats.pages_kept += 1
            return False
        content, files = produce()
        for path, data in files.items():
            self._put(path, data)
            self.stats.files_written.append(path)
        self._put(page, content)
        self._new[page] = {"digest": digest, "files": sorted(files)}
        self.stats.pages_written.append(page)
        return True

    def _put(self, path: str, data: Content) -> None:
        if not _safe(path):
            raise ValueError(f"not a site path: {path!r}")
        target = self.out / path
        if target.parent not in self._folders:
            target.parent.mkdir(parents=True, exist_ok=True)
            self._folders.add(target.parent)
        temporary = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.tmp")
        try:
            if isinstance(data, Path):
                try:
                    os.link(data, temporary)  # no copy where the site is on the results' file system
                except OSError:
                    shutil.copyfile(data, temporary)
            else:
                temporary.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
            os.replace(temporary, target)  # readers (a web server) never see half a page
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise

    def finish(self) -> WriteStats:
        """Remove the pages and files of the last build that this one did not produce; save the manifest."""
        keep = set(self._new) | {f for entry in self._new.values() for f in entry.get("files", ())}
        for page, entry in self._old.items():
            for path in [page, *entry.get("files", ())]:
                if path not in keep and isinstance(path, str) and _safe(path):
                    (self.out / path).unlink(missing_ok=True)
                    self.stats.removed.append(path)
        if self._new != self._old or not (self.out / MANIFEST).exists():  # a rebuild that wrote nothing writes
            self._put(MANIFEST, json.dumps({"format": MANIFEST_FORMAT, "pages": self._new}, sort_keys=True,
                                           separators=(",", ":")))  # nothing (100,000 runs: a 30 MB manifest)
        return self.stats
