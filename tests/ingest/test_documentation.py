"""`/docs/` serves the built documentation site from its folder (a folder's index.html, nothing
outside it), says how to build it when it is missing, and sends to GENLINE_DOCS_URL where the
site is published elsewhere; `GET /` links to it, the console and the API's document."""

from types import SimpleNamespace

import pytest
from fastapi.testclient import TestClient

from services.ingest.app import create_api


@pytest.fixture
def site(tmp_path):
    (tmp_path / "site" / "guides" / "providers").mkdir(parents=True)
    (tmp_path / "site" / "index.html").write_text("<h1>Genline</h1>")
    (tmp_path / "site" / "guides" / "providers" / "index.html").write_text("<h1>Providers</h1>")
    (tmp_path / "secret.txt").write_text("not part of the site")
    return tmp_path / "site"


def client(docs_dir, docs_url=None) -> TestClient:
    app = create_api()
    app.state.settings = SimpleNamespace(docs_dir=docs_dir, docs_url=docs_url)
    return TestClient(app, follow_redirects=False)


def test_the_site_is_served_page_by_page_and_nothing_outside_it(site):
    docs = client(site)
    assert docs.get("/docs").headers["location"] == "/docs/"
    assert docs.get("/docs/").text == "<h1>Genline</h1>"
    page = docs.get("/docs/guides/providers/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "Providers" in page.text
    for outside in ("/docs/../secret.txt", "/docs/%2e%2e/secret.txt", "/docs/guides/../../secret.txt"):
        assert docs.get(outside).status_code == 404
    missing = docs.get("/docs/no/such/page/")
    assert missing.status_code == 404 and missing.headers["content-type"] == "application/problem+json"


def test_a_site_not_built_says_how_and_a_published_one_is_sent_to(tmp_path):
    unbuilt = client(tmp_path / "absent").get("/docs/")
    assert unbuilt.status_code == 404 and unbuilt.json()["type"].endswith("/docs-not-built")
    assert "make docs" in unbuilt.json()["detail"]
    sent = client(tmp_path, "https://docs.example.org/genline/").get("/docs/guides/providers/")
    assert sent.status_code == 307 and sent.headers["location"] == "https://docs.example.org/genline/guides/providers/"


def test_the_root_links_to_the_documentation_the_console_and_the_document():
    links = client(None).get("/").json()["links"]
    assert links["docs"] == "/docs/" and links["api_reference"] == "/docs/reference/api/"
    assert links["openapi"] == "/openapi.json" and links["console"] == "/console/"


def test_a_path_that_climbs_out_of_the_site_finds_nothing(site):
    from services.ingest.routes.documentation import site_file

    assert site_file(site, "guides/providers") == site / "guides" / "providers" / "index.html"
    assert site_file(site, "../secret.txt") is None and site_file(site, "guides/../../secret.txt") is None
