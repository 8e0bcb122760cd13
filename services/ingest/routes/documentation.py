"""`/docs/`: the documentation site, served beside the API it documents.

`make docs` builds the site (mkdocs.yml) into `site/`, which `make run` serves here; a
deployment that publishes the site elsewhere names it in `GENLINE_DOCS_URL`, and `/docs/`
sends there. The API's root and the console's header link here.
"""

from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, RedirectResponse, Response

from services.common.problems import Problem


def site_file(site: Path, path: str) -> Path | None:
    """The built file `path` names (a folder's index.html), only from inside the site."""
    root = site.resolve()
    wanted = (root / path).resolve()
    if not wanted.is_relative_to(root):
        return None
    if wanted.is_dir():
        wanted = wanted / "index.html"
    return wanted if wanted.is_file() else None


async def documentation(request: Request, path: str = "") -> Response:
    settings = request.app.state.settings
    if settings.docs_url:
        return RedirectResponse(settings.docs_url.rstrip("/") + "/" + path, status_code=307)
    if not settings.docs_dir.is_dir():
        raise Problem(status=404, slug="docs-not-built", detail=f"the documentation site is not built here ({settings.docs_dir}):"
                      " run `make docs`, or set GENLINE_DOCS_URL to where it is published")
    found = site_file(settings.docs_dir, path)
    if found is None:
        raise Problem(status=404, slug="not-found", detail=f"the documentation has no page {path!r}")
    # The media type is guessed from the file's name, as any static server does.
    return FileResponse(found, headers={"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"})


async def to_documentation() -> RedirectResponse:
    return RedirectResponse("/docs/", status_code=307)


def mount(app: FastAPI) -> None:
    app.add_api_route("/docs", to_documentation, include_in_schema=False)
    app.add_api_route("/docs/{path:path}", documentation, include_in_schema=False)
