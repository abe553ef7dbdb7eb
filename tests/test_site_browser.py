"""The static site of the smoke suite in a real headless Chromium (Debian's chromium + chromium-driver through
selenium with explicit paths, as tests/test_report_browser.py): every page opened from the file system, every
internal link resolves, no request leaves the file system, no console error; the search box finds a run by a
prefix of its id; a table cell leads to its runs and on to a run page. Screenshots are saved in the test's tmp
folder and copied to /tmp/site_shots/ for a person to look at."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from vrbench.site import build_site, paths
from vrbench.store import ingest
from vrbench.store.db import DB_NAME
from vrbench.suite import load_suite
from vrbench.testing.site import CVPR23, SMOKE, write_site_results

PAPER_PAGE = "papers/ilm_vp_cvpr23/main-cnn-table.html"
SHOTS = Path("/tmp/site_shots")




@pytest.fixture
def smoke_site(tmp_path: Path):
    """The smoke suite's runs (plus a failed run, an imported run and a conflict) and 12 jobs of ILM-VP's main
    table (suites/cvpr23.yaml), as a site with the smoke and cvpr23 suites."""
    made = write_site_results(tmp_path / "results")
    ingest(made.results, made.results / DB_NAME)
    out = tmp_path / "site"
    build_site(made.results, out, [load_suite(SMOKE), load_suite(CVPR23)])
    return made, out


def _local_targets(browser) -> list[str]:
    """Every URL a page links to or loads: anchors, images, scripts, stylesheets."""
    return browser.execute_script("""
        const urls = [];
        document.querySelectorAll('a[href]').forEach(a => urls.push(a.href));
        document.querySelectorAll('img[src], script[src]').forEach(e => urls.push(e.src));
        document.querySelectorAll('link[href]').forEach(e => urls.push(e.href));
        return urls;""")


def _shot(browser, tmp_path: Path, name: str) -> None:
    path = tmp_path / f"{name}.png"
    assert browser.save_screenshot(str(path)) and path.stat().st_size > 5_000
    SHOTS.mkdir(exist_ok=True)
    shutil.copyfile(path, SHOTS / path.name)


def test_every_page_of_the_site_in_chromium(browser, smoke_site, tmp_path: Path) -> None:
    made, out = smoke_site
    pages = sorted(out.rglob("*.html"))
    # home, ILM-VP's main table (which is also cvpr23's page), smoke's page, 5 methods, 3 datasets, 9 cells, 23 runs
    assert len(pages) == 43 and (out / PAPER_PAGE) in pages
    missing, ids_missing, console = [], [], []
    for page in pages:
        browser.get(page.as_uri())
        assert browser.execute_script("return document.readyState") == "complete"
        for url in _local_targets(browser):
            parts = urlsplit(url)
            assert parts.scheme in ("file", "data"), (page, url)  # nothing outside the file system
            if parts.scheme == "file":
                target = Path(unquote(parts.path))
                if not target.is_file():
                    missing.append((page.relative_to(out), url))
                elif parts.fragment and target == page and not browser.find_elements("id", parts.fragment):
                    ids_missing.append((page.relative_to(out), parts.fragment))
        console += [(page.relative_to(out), e["message"]) for e in browser.get_log("browser")
                    if e["level"] in ("SEVERE", "WARNING")]
    assert missing == [] and ids_missing == [] and console == []

    events = [json.loads(entry["message"])["message"] for entry in browser.get_log("performance")]
    requested = [e["params"]["request"]["url"] for e in events if e["method"] == "Network.requestWillBeSent"]
    assert requested and [u for u in requested if not u.startswith(("file:", "data:", "chrome:"))] == []
    resources = browser.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    assert [u for u in resources if not u.startswith(("file:", "data:"))] == []


def test_search_and_links_follow_the_data(browser, smoke_site, tmp_path: Path) -> None:
    made, out = smoke_site
    browser.get((out / "index.html").as_uri())
    _shot(browser, tmp_path, "home")

    # a run id prefix finds the run (its shard script is loaded on demand, from the file system)
    target = made.run_ids[2]
    box = browser.find_element("id", "site-search")
    box.send_keys(target[:5])
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(browser, 5).until(lambda d: target in d.find_element("id", "site-search-results").text)
    _shot(browser, tmp_path, "search")
    link = next(a for a in browser.find_elements("css selector", "#site-search-results a") if target in a.text)
    link.click()
    assert browser.current_url == (out / paths.run_page(target)).as_uri()
    assert target in browser.find_element("tag name", "h1").text
    # a method name is found too, from any depth of the site
    box = browser.find_element("id", "site-search")
    box.send_keys("blmpp")
    WebDriverWait(browser, 5).until(lambda d: "padding+blmpp" in d.find_element("id", "site-search-results").text)

    # a table cell -> its runs -> a run page
    browser.get((out / "tables/smoke.html").as_uri())
    _shot(browser, tmp_path, "table")
    cell = browser.find_element("css selector", "#rule-final ~ .scroll td.num a")
    cell.click()
    assert "/cells/" in browser.current_url
    runs = browser.find_elements("css selector", "table.sortable tbody td code a")
    assert runs
    runs[0].click()
    assert "/runs/" in browser.current_url and browser.find_element("id", "config")
    assert browser.find_elements("css selector", "svg.curve")
    _shot(browser, tmp_path, "run")

    # the home page's published table -> its page (ours, published, Δ) -> a cell -> a run of that cell
    browser.get((out / "index.html").as_uri())
    browser.find_element("css selector", f'#papers ~ .scroll a[href="{PAPER_PAGE}"]').click()
    assert browser.current_url == (out / PAPER_PAGE).as_uri()
    board = browser.find_element("id", "rule-best_test").find_element(
        "xpath", "following-sibling::div[contains(@class, 'scroll')]").text
    assert "paper 65.5 [" in board and "Δ -" in board  # ours, the published value (its footnote), Δ
    assert browser.find_elements("css selector", "img[src$='critical-difference-best-test.png']")
    _shot(browser, tmp_path, "published-table")
    browser.find_element("css selector", "#rule-best_test ~ .scroll td.num a").click()
    assert "/cells/" in browser.current_url and "resnet18" in browser.current_url
    browser.find_element("css selector", "table.sortable tbody td code a").click()
    assert "/runs/" in browser.current_url
    assert any(run_id in browser.current_url for run_id in made.paper_run_ids)

    browser.get((out / paths.run_page(made.conflict)).as_uri())
    conflict = browser.find_element("id", "conflict").text
    assert "conflict: 2 results for one job" in conflict and "sessions[1].shared_border off on" in conflict
    _shot(browser, tmp_path, "conflict")
