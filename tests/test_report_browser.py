"""The HTML report of the smoke suite in a real headless Chromium (Debian's chromium + chromium-driver, driven by
selenium with explicit paths, so selenium-manager never downloads anything): the page works opened from a file,
sorts its tables on a click, shows every figure, and makes no network request."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vrbench.report import build_report
from vrbench.store import ingest
from vrbench.store.db import DB_NAME
from vrbench.testing.runs import write_suite_results

SMOKE = Path(__file__).resolve().parents[1] / "suites" / "smoke.yaml"
SMOKE_FIGURES = {"learning-curves", "comparison"} | {f"mapping-padding-{m}" for m in ("rlm", "flm", "ilm", "blm",
                                                                                        "blmpp")}




@pytest.fixture
def smoke_report(tmp_path: Path) -> Path:
    """The HTML report of the smoke suite's ten jobs (real run ids and configs; results written by the store)."""
    results = tmp_path / "results"
    run_ids = write_suite_results(SMOKE, results)
    ingest(results, results / DB_NAME)
    return build_report(results / DB_NAME, tmp_path / "report", "html", run_ids=set(run_ids))


def first_column(table) -> list[str]:
    return [row.find_elements("tag name", "td")[0].text for row in table.find_elements("css selector", "tbody tr")]


def column_values(table, index: int) -> list[float]:
    return [float(row.find_elements("tag name", "td")[index].get_attribute("data-value"))
            for row in table.find_elements("css selector", "tbody tr")]


def test_smoke_report_in_chromium(browser, smoke_report: Path, tmp_path: Path) -> None:
    browser.get(smoke_report.as_uri())
    assert browser.title == "vrbench report"
    assert browser.execute_script("return document.documentElement.classList.contains('js')")

    # every figure is on the page and decoded to a real image
    figures = {f.get_attribute("id").removeprefix("fig-"): f for f in browser.find_elements("css selector", "figure")}
    assert set(figures) == SMOKE_FIGURES
    for key, figure in figures.items():
        size = browser.execute_script("const i = arguments[0].querySelector('img'); "
                                      "return [i.complete, i.naturalWidth, i.naturalHeight];", figure)
        assert size[0] and size[1] > 100 and size[2] > 100, (key, size)

    # clicking a column header reorders the rows, a second click reverses them
    table = browser.find_element("css selector", "#rule-final + input.filter + .scroll table")
    headers = table.find_elements("css selector", "thead th")
    names = [h.text.replace("⇅", "").strip() for h in headers]
    digits = names.index("digits")
    before = first_column(table)  # ranked by average, best first: for one dataset, by the digits column
    assert len(before) == 5
    headers[digits].click()  # numbers sort best first on the first click: the ranking again
    values = column_values(table, digits)
    assert values == sorted(values, reverse=True) and headers[digits].get_attribute("aria-sort") == "descending"
    assert first_column(table) == before
    headers[digits].click()  # a second click reverses the rows
    assert column_values(table, digits) == sorted(values)
    assert first_column(table) == before[::-1] and headers[digits].get_attribute("aria-sort") == "ascending"
    headers[0].click()  # the label column sorts as text
    assert first_column(table) == sorted(before) != before
    assert headers[digits].get_attribute("aria-sort") is None

    # the filter box keeps only matching rows
    box = browser.find_element("css selector", "#rule-final + input.filter")
    box.send_keys("blm")
    visible = [r for r in table.find_elements("css selector", "tbody tr") if r.is_displayed()]
    assert {r.find_elements("tag name", "td")[0].text for r in visible} == {
        "padding+blm · efficientnet_lite0", "padding+blmpp · efficientnet_lite0"}

    browser.execute_script("window.scrollTo(0, 0)")
    assert browser.save_screenshot(str(tmp_path / "report.png"))
    assert (tmp_path / "report.png").stat().st_size > 10_000

    # no network: every request the page made was for the file itself (figures are data: URIs, not requests)
    events = [json.loads(entry["message"])["message"] for entry in browser.get_log("performance")]
    sent = [e["params"] for e in events if e["method"] == "Network.requestWillBeSent"]
    ours = [p["request"]["url"] for p in sent if p.get("documentURL") == smoke_report.as_uri()]
    assert ours and all(url.startswith(("file:", "data:")) for url in ours), ours
    # nor did anything else in the browser (the blank start page loads chrome:// resources only)
    assert [p["request"]["url"] for p in sent if not p["request"]["url"].startswith(("file:", "data:", "chrome:"))
            ] == []
    resources = browser.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    assert [url for url in resources if not url.startswith(("file:", "data:"))] == []
