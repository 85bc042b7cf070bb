"""The dashboard in a real browser: headless Chromium against ``streamlit run`` over a seeded database."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Iterator

import pytest

from settings import settings
from tests.conftest import need
from tests.dashboard.seed import AUDITED_REQUEST, seed_database
from tests.service.server import free_port, serving

PAGES = {"": "Service", "predictions": "Predictions", "models": "Models", "drift": "Drift"}
"""URL path (the default page is the root) and title of each page."""
RENDER_TIMEOUT_MS = 20_000

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


def test_every_page_renders_without_exception_and_the_audit_reproduces(dashboard_url: str, tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(settings.browser_path), headless=True,
                                             args=["--no-sandbox", "--disable-dev-shm-usage"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            for path, title in PAGES.items():
                page.goto(f"{dashboard_url}/{path}")
                expect(page.get_by_role("heading", name=title, exact=True)).to_be_visible(timeout=RENDER_TIMEOUT_MS)
                expect(page.get_by_test_id("stVegaLiteChart").first).to_be_visible(timeout=RENDER_TIMEOUT_MS)
                expect(page.get_by_text("Time window")).to_be_visible()
                assert page.get_by_test_id("stException").count() == 0, f"{title} shows an exception"
                assert page.get_by_text("Page not found").count() == 0, f"{title} is not at /{path}"
                page.screenshot(path=str(tmp_path / f"{title.lower()}.png"), full_page=True)
            page.goto(f"{dashboard_url}/predictions?request_id={AUDITED_REQUEST}")
            expect(page.get_by_text(f"Audit of request {AUDITED_REQUEST}")).to_be_visible(timeout=RENDER_TIMEOUT_MS)
            page.get_by_role("button", name="Reproduce this answer").click()
            expect(page.get_by_text("reproduced: ")).to_be_visible(timeout=RENDER_TIMEOUT_MS)
            assert page.get_by_test_id("stException").count() == 0
            page.screenshot(path=str(tmp_path / "audit.png"), full_page=True)
        finally:
            browser.close()
    screenshots = sorted(p.name for p in tmp_path.glob("*.png"))
    assert screenshots == ["audit.png", "drift.png", "models.png", "predictions.png", "service.png"]
