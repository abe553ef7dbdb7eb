"""Every relative link and anchor in README.md and docs/ resolves inside the repository, and no document points
outside it (a user's clone has nothing beyond the repository)."""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FENCE = re.compile(r"^(```|~~~)")
INLINE_CODE = re.compile(r"`[^`\n]*`")
LINK = re.compile(r"!?\[(?:[^\]\[]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE = re.compile(r"^\s*\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+.*)?$")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
HTML_ANCHOR = re.compile(r"<a\s+(?:name|id)=\"([^\"]+)\"", re.IGNORECASE)
LINE_ANCHOR = re.compile(r"L(\d+)(?:-L(\d+))?")
EXTERNAL = ("http://", "https://", "mailto:")
# Where the project's design notes live on the machines it was built on: never a place a user's clone has.
OUTSIDE_MENTIONS = re.compile(r"(?<![\w.])(?:\.\./)*shared/(?:spec|reference|design)")


def documents(root: Path = REPO) -> list[Path]:
    return [root / "README.md", *sorted((root / "docs").rglob("*.md"))]


def prose_lines(text: str) -> list[tuple[int, str]]:
    """The lines outside fenced code blocks (a link inside code is an example)."""
    out, fenced = [], False
    for number, line in enumerate(text.splitlines(), start=1):
        if FENCE.match(line.strip()):
            fenced = not fenced
            continue
        if not fenced:
            out.append((number, line))
    return out


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, links reduced to their text, punctuation dropped, spaces to '-'."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading.strip().lower())
    text = re.sub(r"<[^>]+>", "", text)
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


@cache
def anchors(path: Path) -> frozenset[str]:
    found: set[str] = set()
    counts: dict[str, int] = {}
    for _, line in prose_lines(path.read_text(encoding="utf-8")):
        found.update(HTML_ANCHOR.findall(line))
        match = HEADING.match(line)
        if match:
            base = slug(match.group(2))
            n = counts.get(base, 0)
            counts[base] = n + 1
            found.add(base if n == 0 else f"{base}-{n}")
    return frozenset(found)


def link_problems(doc: Path, root: Path = REPO) -> list[str]:
    """One line per broken link of ``doc``: a missing file, a missing anchor, or a target outside ``root``."""
    root = root.resolve()
    problems = []
    for number, raw in prose_lines(doc.read_text(encoding="utf-8")):
        line = INLINE_CODE.sub("", raw)  # inline code is an example too
        where = f"{doc.relative_to(root)}:{number}"
        outside = OUTSIDE_MENTIONS.search(raw)  # in code spans too: a path to copy is still a pointer
        if outside:
            problems.append(f"{where}: names a file outside the repository ({outside.group(0)})")
        targets = LINK.findall(line) + [m.group(1) for m in [REFERENCE.match(line)] if m]
        for target in targets:
            if target.startswith(EXTERNAL):
                continue
            path_part, _, anchor = target.partition("#")
            if path_part.startswith("/") or re.match(r"^[a-z]+:", path_part):
                problems.append(f"{where}: {target} is not a path relative to the document")
                continue
            resolved = (doc.parent / path_part).resolve() if path_part else doc.resolve()
            if not resolved.is_relative_to(root):
                problems.append(f"{where}: {target} points outside the repository")
            elif not resolved.exists():
                problems.append(f"{where}: {target}: no such file")
            elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
                problems.append(f"{where}: {target}: no heading or anchor #{anchor} in {resolved.relative_to(root)}")
            elif anchor and resolved.suffix != ".md" and resolved.is_file():
                lines = LINE_ANCHOR.fullmatch(anchor)
                total = len(resolved.read_text(encoding="utf-8", errors="replace").splitlines())
                if not lines or max(int(x) for x in lines.groups() if x) > total:
                    problems.append(f"{where}: {target}: {anchor} is not a line of {resolved.relative_to(root)}")
    return problems


@pytest.mark.parametrize("doc", documents(), ids=lambda p: str(p.relative_to(REPO)))
def test_every_relative_link_resolves_inside_the_repository(doc: Path) -> None:
    assert link_problems(doc) == []


def test_the_checker_catches_each_kind_of_broken_link(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "other.md").write_text("# Other page\n\n## VR 2.5 ILM: iterative label mapping\n")
    (tmp_path / "code.py").write_text("a = 1\nb = 2\n")
    readme = tmp_path / "README.md"
    readme.write_text(
        "# Title\n\n"
        "[fine](docs/other.md#vr-25-ilm-iterative-label-mapping) [fine too](#title) [web](https://example.org/x)\n"
        "[line](code.py#L2) ![figure](docs/other.md)\n"
        "```\n[in a code block](nowhere.md)\n```\n"
        "`[inline code](nowhere.md)`\n"
        "[gone](docs/missing.md)\n"
        "[bad anchor](docs/other.md#vr-25)\n"
        "[escape](../outside.md)\n"
        "[absolute](/etc/passwd)\n"
        "[bad line](code.py#L9)\n"
        "see `../shared/spec/vr_methods.md` for details\n"
        "[ref]: docs/also-missing.md\n")
    problems = link_problems(readme, tmp_path)
    assert [p.split(":")[1] for p in problems] == ["9", "10", "11", "12", "13", "14", "15"], problems
    assert "no such file" in problems[0] and "no heading or anchor #vr-25" in problems[1]
    assert "outside the repository" in problems[2] and "not a path relative" in problems[3]
    assert "not a line of code.py" in problems[4] and "names a file outside" in problems[5]
    assert "also-missing.md: no such file" in problems[6]


def test_github_anchors() -> None:
    assert slug("CLIP 1.10 BLM and BLM++ on CLIP") == "clip-110-blm-and-blm-on-clip"
    assert slug("CLIP 5.2 Loading the weights with open_clip") == "clip-52-loading-the-weights-with-open_clip"
    assert slug("Picking `--slots` (and `--mem-gb`)") == "picking---slots-and---mem-gb"
    assert slug("Results in a [notebook](x.md)") == "results-in-a-notebook"
    assert slug("`vrbench report`: where it writes") == "vrbench-report-where-it-writes"
