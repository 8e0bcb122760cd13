"""A past release installed beside this checkout, as an operator's older image holds it: its
source at its commit (`git archive`) and a virtual environment made by its own Makefile from
its own lock files (`make install`: requirements/run.lock with hashes, torch at the Makefile's
pin, its protos built). It is kept in the user's cache, as pip keeps its own
(`$XDG_CACHE_HOME/genline/releases/<version>-<commit>/`, by default under `~/.cache`), not in the
checkout: an install takes about 75 s of this machine's CPU even with pip's cache, and a fresh
clone (CI's) would pay it on every run. A finished one is reused as it is, by every checkout.
"""

import fcntl
import os
import subprocess
import time
from pathlib import Path

from genline_stack.fleet import Build
from services.common.releases import Release
from tests.releases.records import source_of

RELEASES_HOME = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "genline" / "releases"
INSTALL_TIMEOUT_S = 1_200


def installed(release: Release, *, home: Path = RELEASES_HOME) -> Build:
    """`release`'s build, installed first if this machine has none (one installer at a time)."""
    assert release.commit is not None, f"{release.version} is this release: run this checkout"
    folder = home / f"{release.version}-{release.commit[:12]}"
    folder.mkdir(parents=True, exist_ok=True)
    build = Build(python=str(folder / "venv" / "bin" / "python"), root=folder / "src")
    with open(folder / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (folder / ".installed").exists():
            install(release, folder)
    return build


def install(release: Release, folder: Path) -> None:
    started = time.monotonic()
    source_of(release, folder / "src")
    log = folder / "install.log"
    with open(log, "w") as out:
        made = subprocess.run(["make", "-C", str(folder / "src"), "install", f"VENV={folder / 'venv'}"],
                              stdout=out, stderr=subprocess.STDOUT, timeout=INSTALL_TIMEOUT_S,
                              env=os.environ | {"MAKEFLAGS": ""})
    assert made.returncode == 0, f"installing {release.version} failed; see {log}"
    (folder / ".installed").write_text(f"{time.monotonic() - started:.0f} s\n")
