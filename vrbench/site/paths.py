"""Where each page of the site lives, and relative links between them (the site works from file:// and from any
static host, so every link is relative and nothing is fetched from elsewhere)."""

from __future__ import annotations

import posixpath
import re

HOME = "index.html"
_UNSAFE = re.compile(r"[^A-Za-z0-9_+-]")


def slug(name: str) -> str:
    """A file name for ``name``: letters, digits, '_', '+' and '-' stay, anything else becomes '~' and its code
    point in hex, so two names never share a file (and '.', '/' can never form a path)."""
    return _UNSAFE.sub(lambda m: f"~{ord(m.group()):x}", str(name)) or "~"


def table_page(name: str) -> str:
    return f"tables/{slug(name)}.html"


def table_files(name: str) -> str:
    """The folder of a table page's figures and downloads."""
    return f"tables/{slug(name)}"


def paper_table_page(paper: str, table_slug: str) -> str:
    """One published table of a paper (``table_slug``: vrbench.site.published.readable_slug, unique per paper)."""
    return f"papers/{slug(paper)}/{slug(table_slug)}.html"


def paper_table_files(paper: str, table_slug: str) -> str:
    return f"papers/{slug(paper)}/{slug(table_slug)}"


def method_page(method: str) -> str:
    return f"methods/{slug(method)}.html"


def dataset_page(dataset: str) -> str:
    return f"datasets/{slug(dataset)}.html"


def cell_page(method: str, backbone: str, dataset: str) -> str:
    """One (method, backbone, dataset): the runs behind a table cell (',' never occurs in a slug)."""
    return f"cells/{slug(method)},{slug(backbone)},{slug(dataset)}.html"


def run_page(run_id: str) -> str:
    """Run pages are spread over 256 folders by the id's first two hex digits (100,000 runs, 400 per folder)."""
    return f"runs/{run_id[:2]}/{run_id}.html"


def run_files(run_id: str) -> str:
    return f"runs/{run_id[:2]}/{run_id}"


def href(target: str, page: str) -> str:
    """The relative link from ``page`` to ``target`` (both site paths); a '#fragment' on ``target`` is kept."""
    path, _, fragment = target.partition("#")
    link = posixpath.relpath(path, posixpath.dirname(page) or ".")
    return f"{link}#{fragment}" if fragment else link


def root(page: str) -> str:
    """The prefix that leads from ``page`` back to the site's root ('' for index.html, '../' one folder down)."""
    return "../" * page.count("/")
