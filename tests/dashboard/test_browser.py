"""The dashboard in a real browser: headless Chromium against ``streamlit run`` over a seeded database.

A chart that was *sent* is not a chart that *draws*: for every chart on every
page, the plot area Vega laid out must be at least ``MIN_PLOT_PX`` high and
hold at least one visible mark (counted in the SVG Vega renders: one element
per mark under its ``g.role-mark`` groups). A full-page screenshot of each page
is kept in ``FUTURISYS_SCREENSHOT_DIR`` (default ``var/screenshots/dashboard``),
which CI uploads, so a person can look.
"""
from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from typing import Any, Iterator

import pytest

from settings import settings
from tests.conftest import need
from tests.dashboard.seed import AUDITED_REQUEST, seed_database
from tests.service.server import free_port, serving

PAGES = {"": "Service", "predictions": "Predictions", "models": "Models", "drift": "Drift", "evaluation": "Evaluation",
         "comparison": "Comparison", "fairness": "Fairness"}
"""URL path (the default page is the root) and title of each page."""
RENDER_TIMEOUT_MS = 60_000
MIN_PLOT_PX = 80
VIEWPORT = {"width": 1400, "height": 1000}
ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = Path(os.environ.get("FUTURISYS_SCREENSHOT_DIR") or ROOT / "var" / "screenshots" / "dashboard")

CHARTS_DRAWN = """() => [...document.querySelectorAll('[data-testid="stVegaLiteChart"]')].map(chart => {
    const svg = chart.querySelector('svg');
    const renderer = svg ? 'svg' : chart.querySelector('canvas') ? 'canvas' : 'none';
    if (!svg) return {title: null, plot_height: 0, marks: 0, renderer: renderer};
    // The root frame's background is the plot area Vega laid out (axes, titles and legends are outside it).
    const background = svg.querySelector('g.mark-group.role-frame.root > g > path.background');
    const title = svg.querySelector('g.role-title-text text');
    const marks = [...svg.querySelectorAll('g.role-mark > *')].filter(item => {
        const box = item.getBoundingClientRect();
        return box.width > 0 || box.height > 0;
    });
    return {title: title ? title.textContent : null, renderer: renderer, marks: marks.length,
            plot_height: background ? background.getBoundingClientRect().height : 0};
})"""
"""Per chart of the page: its title, the height of its plot area, and how many marks it visibly draws."""

EVERY_CHART_LAID_OUT = """() => {
    const app = document.querySelector('[data-testid="stApp"]');
    if (!app || app.getAttribute('data-test-script-state') !== 'notRunning') return false;
    const charts = [...document.querySelectorAll('[data-testid="stVegaLiteChart"]')];
    return charts.length > 0 && charts.every(c => c.querySelector('svg g.mark-group.role-frame.root, canvas'));
}"""

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def dashboard_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``streamlit run dashboard/app.py`` on a free port of 127.0.0.1, reading a seeded SQLite database."""
    browser = Path(settings.browser_path)
    need("browser", browser.is_file() and importlib.util.find_spec("playwright") is not None,
         f"no browser at {browser} (FUTURISYS_BROWSER_PATH) or playwright is not installed")
    folder = tmp_path_factory.mktemp("browser")
    database = f"sqlite:///{folder / 'traces.db'}"
    seed_database(database, folder)
    port = free_port()
    command = [sys.executable, "-m", "streamlit", "run", "dashboard/app.py", "--server.address", "127.0.0.1",
               "--server.port", str(port), "--server.headless", "true", "--browser.gatherUsageStats", "false"]
    env = {"FUTURISYS_DASHBOARD_DATABASE_URL": database}
    with serving(command, env, folder / "streamlit.log", port, "/_stcore/health", timeout_s=30) as url:
        yield url


def full_page_screenshot(page: Any, path: Path) -> None:
    """The whole page: Streamlit scrolls inside its main block, so the viewport grows to its content first."""
    height = page.evaluate("() => Math.max(...[...document.querySelectorAll("
                           "'[data-testid=stMain], [data-testid=stMainBlockContainer]')].map(e => e.scrollHeight))")
    page.set_viewport_size({"width": VIEWPORT["width"], "height": max(VIEWPORT["height"], int(height) + 60)})
    page.wait_for_function(EVERY_CHART_LAID_OUT, timeout=RENDER_TIMEOUT_MS)
    page.screenshot(path=str(path), full_page=True)
    page.set_viewport_size(VIEWPORT)


def test_every_chart_of_every_page_draws_and_the_audit_reproduces(dashboard_url: str) -> None:
    from playwright.sync_api import expect, sync_playwright

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for old in SCREENSHOTS.glob("*.png"):
        old.unlink()
    drawn: dict[str, list[dict[str, Any]]] = {}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(settings.browser_path), headless=True,
                                             args=["--no-sandbox", "--disable-dev-shm-usage"])
        try:
            page = browser.new_page(viewport=VIEWPORT)
            for path, title in PAGES.items():
                page.goto(f"{dashboard_url}/{path}")
                expect(page.get_by_role("heading", name=title, exact=True)).to_be_visible(timeout=RENDER_TIMEOUT_MS)
                page.wait_for_function(EVERY_CHART_LAID_OUT, timeout=RENDER_TIMEOUT_MS)
                expect(page.get_by_text("Time window")).to_be_visible()
                assert page.get_by_test_id("stException").count() == 0, f"{title} shows an exception"
                assert page.get_by_text("Page not found").count() == 0, f"{title} is not at /{path}"
                drawn[title] = page.evaluate(CHARTS_DRAWN)
                full_page_screenshot(page, SCREENSHOTS / f"{title.lower()}.png")
            page.goto(f"{dashboard_url}/predictions?request_id={AUDITED_REQUEST}")
            expect(page.get_by_text(f"Audit of request {AUDITED_REQUEST}")).to_be_visible(timeout=RENDER_TIMEOUT_MS)
            page.get_by_role("button", name="Reproduce this answer").click()
            expect(page.get_by_text("reproduced: ")).to_be_visible(timeout=RENDER_TIMEOUT_MS)
            assert page.get_by_test_id("stException").count() == 0
            page.wait_for_function(EVERY_CHART_LAID_OUT, timeout=RENDER_TIMEOUT_MS)
            drawn["Audit"] = page.evaluate(CHARTS_DRAWN)
            full_page_screenshot(page, SCREENSHOTS / "audit.png")
        finally:
            browser.close()

    print()
    for title, charts in drawn.items():
        print(f"{title}: {len(charts)} charts; " + "; ".join(
            f"{c['title'] or 'untitled'}: {c['marks']} marks, plot {c['plot_height']:.0f} px" for c in charts))
    failures = [f"{title}, chart {index + 1} ({chart['title'] or 'untitled'}): plot {chart['plot_height']:.0f} px "
                f"high, {chart['marks']} marks ({chart['renderer']})"
                for title, charts in drawn.items() for index, chart in enumerate(charts)
                if chart["plot_height"] < MIN_PLOT_PX or chart["marks"] < 1]
    assert not failures, "charts that draw (almost) nothing:\n" + "\n".join(failures)
    assert all(drawn[title] for title in PAGES.values()), {title: len(c) for title, c in drawn.items()}
    # The explanations: the audit's waterfall, and each served version's drivers on the Models page.
    assert [c["title"] for c in drawn["Audit"] if (c["title"] or "").startswith("Why this answer")], drawn["Audit"]
    drivers = [c["title"] for c in drawn["Models"] if (c["title"] or "").endswith("mean |contribution| per field")]
    assert len(drivers) == 2, drawn["Models"]  # the seed's two served versions
    screenshots = sorted(p.name for p in SCREENSHOTS.glob("*.png"))
    assert screenshots == ["audit.png", "comparison.png", "drift.png", "evaluation.png", "fairness.png", "models.png",
                           "predictions.png", "service.png"]
