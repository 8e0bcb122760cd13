"""The documentation site (mkdocs.yml, docs/): it builds in strict mode (a broken link, a
missing page or a missing snippet fails), every code example on its pages is a file under
docs/examples/ that the suite runs or loads (tests/e2e/test_docs_examples.py), and no example
file is left out of every page."""

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
EXAMPLES = DOCS / "examples"
# Code in these languages must come from an example file; `text` blocks (output, a layout) may be written inline.
EXAMPLE_LANGUAGES = {"sh", "bash", "shell", "console", "python", "py", "yaml", "yml", "json"}
FENCE = re.compile(r"^(?P<indent> *)```(?P<language>[\w-]*)[^\n]*\n(?P<body>.*?)^(?P=indent)```", re.M | re.S)
SNIPPET = re.compile(r'^\s*--8<-- "(?P<path>[^"]+)"\s*$')


def pages() -> list[Path]:
    return [page for page in DOCS.rglob("*.md") if EXAMPLES not in page.parents]


def code_blocks(page: Path) -> list[tuple[str, str]]:
    return [(match["language"], match["body"]) for match in FENCE.finditer(page.read_text())]


def test_the_site_builds_in_strict_mode(tmp_path):
    built = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
                           cwd=ROOT, capture_output=True, text=True, env=os.environ | {"NO_MKDOCS_2_WARNING": "1"},
                           timeout=300)
    assert built.returncode == 0, built.stderr[-4000:]
    for page in ("index.html", "getting-started/index.html", "reference/api/index.html", "reference/client/index.html",
                 "reference/cli/index.html", "runbooks/index.html"):
        assert (tmp_path / "site" / page).is_file(), page
    api = (tmp_path / "site" / "reference/api/index.html").read_text()
    assert "submit_job" in api and "/v1/jobs/{job_id}/receipt" in api  # rendered from the served document
    assert "verify_receipt" in (tmp_path / "site" / "reference/client/index.html").read_text()


def test_every_code_example_on_a_page_is_an_example_file():
    inline = []
    for page in pages():
        for language, body in code_blocks(page):
            lines = [line for line in body.splitlines() if line.strip()]
            if language in EXAMPLE_LANGUAGES and not (lines and all(SNIPPET.match(line) for line in lines)):
                inline.append(f"{page.relative_to(ROOT)}: a ```{language} block written inline: {lines[:1]}")
    assert not inline, "\n".join(inline)


def test_every_example_file_is_shown_on_a_page_or_used_by_one_that_is():
    shown = {SNIPPET.match(line)["path"] for page in pages() for language, body in code_blocks(page)
             for line in body.splitlines() if SNIPPET.match(line)}
    missing = [path for path in shown if not (DOCS / path).is_file()]
    assert not missing, missing
    examples = {str(path.relative_to(DOCS)) for path in EXAMPLES.rglob("*") if path.is_file()}
    scripts = "\n".join((DOCS / path).read_text() for path in shown if path.endswith((".sh", ".py")))
    unused = [path for path in examples - shown if Path(path).name not in scripts]
    assert not unused, f"example files no page shows and no shown example uses: {unused}"


NAMED_TEST = re.compile(r"`(tests/[\w/]+\.py)(?:::(\w+))?`|(?<=, )`(test_\w+)`")


def test_every_test_the_threat_model_names_exists():
    """Each row of the security guide's threat model names the test that shows its attack
    refused: a file that exists, and in it a test of that name (a bare name: the row's file)."""
    table = (DOCS / "guides" / "security.md").read_text().split("## Threat model", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in table.splitlines() if line.startswith("| ") and "tests/" in line]
    assert len(rows) >= 20
    missing = []
    for row in rows:
        last_file = None
        for path, name, bare in NAMED_TEST.findall(row):
            last_file = path or last_file
            assert last_file is not None, row
            source = (ROOT / last_file).read_text() if (ROOT / last_file).exists() else ""
            wanted = name or bare
            if not source or (wanted and not re.search(rf"^(async )?def {wanted}\(", source, re.M)):
                missing.append(f"{last_file}::{wanted or ''}")
    assert not missing, missing
