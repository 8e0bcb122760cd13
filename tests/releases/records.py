"""A release's record (services/common/releases.py) computed from its source tree: the shapes
of the events its contracts define and the migrations it ships, as it was when it was cut."""

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from services.common.contracts import PUBLISHERS
from services.common.event_shapes import shapes_of
from services.common.releases import Release

CHECKOUT = Path(__file__).resolve().parents[2]


def source_of(release: Release, into: Path) -> Path:
    """The release's source tree at its commit (`git archive`), unpacked once into `into`."""
    assert release.commit is not None, f"{release.version} is this release"
    if not (into / "services").is_dir():
        found = subprocess.run(["git", "-C", str(CHECKOUT), "cat-file", "-e", f"{release.commit}^{{commit}}"],
                               capture_output=True)
        assert found.returncode == 0, (f"commit {release.commit} of release {release.version} is not in this clone:"
                                       f" `git fetch origin {release.commit}` (or clone without --depth)")
        into.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(["git", "-C", str(CHECKOUT), "archive", release.commit], check=True,
                                 capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


def contracts_of_tree(root: Path, version: str) -> ModuleType:
    """That tree's `services/common/contracts.py`, loaded on its own under a name of its own."""
    spec = importlib.util.spec_from_file_location(f"contracts_of_{version.replace('.', '_')}", root / "services" / "common" / "contracts.py")
    assert spec is not None and spec.loader is not None
    contracts = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = contracts  # pydantic resolves the module's annotations through it
    spec.loader.exec_module(contracts)
    return contracts


def record_of_tree(root: Path, version: str) -> dict[str, Any]:
    """What `releases.this_record()` said at that tree: its contracts' event shapes and its
    migration files."""
    contracts = contracts_of_tree(root, version)
    migrations = {part: sorted(p.stem for p in (root / "services" / part / "migrations").glob("*.sql"))
                  for part in ("common", *PUBLISHERS)}
    return {"version": version, "events": shapes_of(contracts.EVENT_TYPES), "migrations": migrations}
