"""The documentation site as a reader meets it: built in strict mode, served over HTTP and
opened in a real headless browser, its pages draw without a script error, its search finds
a page, and the API reference lists the operations the platform serves. A screenshot of a
page is saved under artifacts/docs/."""

import functools
import http.server
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import pytest

from tests.e2e.test_console import browser  # noqa: F401  (fixture)

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "artifacts" / "docs"


@pytest.fixture(scope="module")
def site_url(tmp_path_factory):
    site = tmp_path_factory.mktemp("site")
    built = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet", "--site-dir", str(site)],
                           cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stderr[-3000:]
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_the_site_reads_in_a_browser_and_its_reference_lists_the_served_operations(browser, site_url, platform):  # noqa: F811
    errors: list[str] = []
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(f"{site_url}/getting-started/")
    page.get_by_role("heading", name="Getting started", level=1).wait_for()
    assert page.locator("pre code").count() >= 5  # the examples, included from their files
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "getting-started.png"), full_page=False)

    page.goto(f"{site_url}/reference/api/")
    served = httpx.get(f"{platform.ingest_url}/openapi.json", timeout=30).json()
    operation_ids = {op["operationId"] for item in served["paths"].values() for op in item.values()}
    anchors = set(page.eval_on_selector_all("h3[id]", "hs => hs.map(h => h.id)"))
    assert operation_ids <= anchors, operation_ids - anchors

    page.goto(f"{site_url}/")
    page.locator("input[name=query]").first.wait_for(state="attached")
    page.keyboard.press("/")  # Material's shortcut to the search box
    page.keyboard.type("receipt")
    page.locator(".md-search-result__item").first.wait_for()
    assert not errors, errors
    page.close()
