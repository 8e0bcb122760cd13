"""The console's files are all served and all shipped: every file in services/ingest/console
besides its Python is an asset the route knows (or the page itself) and matches the package data of
pyproject.toml, so a non-editable install serves the console too."""

import fnmatch
import tomllib
from pathlib import Path

from services.ingest.console import routes as console

ROOT = Path(__file__).resolve().parents[2]
CONSOLE = ROOT / "services" / "ingest" / "console"


def test_every_console_file_is_served_and_packaged():
    shipped = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["services.ingest.console"]
    files = sorted(p.name for p in CONSOLE.iterdir() if p.is_file() and p.suffix != ".py")
    assert files and set(files) == set(console.ASSETS) | {"index.html"}
    for name in files:
        assert any(fnmatch.fnmatch(name, pattern) for pattern in shipped), name


def test_the_page_loads_only_its_own_assets():
    html = (CONSOLE / "index.html").read_text()
    assert "http://" not in html and "https://" not in html
    for name in console.ASSETS:
        assert f"/console/assets/{name}" in html
