"""`/console`: the web console, a static page and a few hand-written ES modules that call the
public `/v1` API (and, on the operator view, `/admin/v1`) from the browser, as the member signed
in (a session the server holds, its cookie HttpOnly) or with an API key kept in the tab's
sessionStorage; nothing is rendered on the server. Every path under `/console` that is not an asset is the same page: the script
reads the path (`/console/jobs/{id}`, `/console/operator` …) and draws it.

The pages load nothing from anywhere but this origin (the Content-Security-Policy says so),
except delivered images, whose signed links point at the object store.
"""

from importlib.resources import files
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, RedirectResponse

from services.common.problems import Problem

CONSOLE_DIR = Path(str(files("services.ingest.console")))  # a folder on disk: FileResponse sends by path
# The script is ES modules, loaded as they are written (no build step): console.js draws the
# page from the path and imports the others; the page preloads them all.
MODULES = ("console.js", "navigation.js", "api.js", "dom.js", "jobs.js", "job.js", "clips.js", "receipts.js",
           "account.js", "billing.js", "usage.js", "operator.js", "verify.js", "subjects.js", "session.js", "signin.js",
           "members.js", "audit.js", "keys.js")
ASSETS = {**dict.fromkeys(MODULES, "text/javascript"), "console.css": "text/css", "favicon.svg": "image/svg+xml"}


def content_security_policy(request: Request) -> str:
    """Scripts, styles and API calls from this origin only; images and clips also from blobs
    (candidates are fetched with the key, then shown) and from the object store's public
    endpoint (delivered files and posters)."""
    objects = request.app.state.objects
    return ("default-src 'self'; script-src 'self'; style-src 'self'; connect-src 'self';"
            f" img-src 'self' blob: {objects.public_endpoint}; media-src 'self' blob: {objects.public_endpoint};"
            " object-src 'none'; base-uri 'none';"
            " frame-ancestors 'none'; form-action 'self'")


async def console_page(request: Request) -> FileResponse:
    headers = {"Content-Security-Policy": content_security_policy(request), "Cache-Control": "no-cache",
               "Referrer-Policy": "no-referrer", "X-Content-Type-Options": "nosniff"}
    return FileResponse(CONSOLE_DIR / "index.html", media_type="text/html", headers=headers)


async def console_asset(name: str) -> FileResponse:
    if name not in ASSETS:
        raise Problem(status=404, slug="not-found", detail=f"the console has no asset {name!r}")
    return FileResponse(CONSOLE_DIR / name, media_type=ASSETS[name], headers={"Cache-Control": "no-cache"})


async def to_console(request: Request) -> RedirectResponse:
    return RedirectResponse("/console/jobs", status_code=307)


def mount(app: FastAPI) -> None:
    """The console's assets under `/console/assets`, its page on every other `/console` path."""
    app.add_api_route("/console/assets/{name}", console_asset, include_in_schema=False)
    app.add_api_route("/console", to_console, include_in_schema=False)
    app.add_api_route("/console/", to_console, include_in_schema=False)
    app.add_api_route("/console/{page:path}", console_page, include_in_schema=False)
