"""The locked set (requirements/*.lock, `make lock`): every package pinned with its files'
hashes, every dependency pyproject.toml declares pinned within its range, no CUDA build
sneaking in beside the CPU torch, and this environment installed from it."""

import importlib.metadata
import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
LOCKS = ROOT / "requirements"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
SERVICES = ("ingest", "ledger", "router", "scorer", "delivery")


def pins(lock: str) -> dict[str, tuple[str, list[str]]]:
    """name -> (version, hashes) of each package in the lock."""
    text = (LOCKS / lock).read_text()
    found = {}
    for block in re.split(r"\n(?=[a-z0-9])", text, flags=re.I):
        head = re.match(r"([A-Za-z0-9._-]+)==([^\s;\\]+)", block)
        if head:
            found[canonicalize_name(head.group(1))] = (head.group(2), re.findall(r"--hash=sha256:([0-9a-f]{64})", block))
    return found


def declared(*extras: str) -> list[Requirement]:
    """The requirements of the project with these extras, its own extras (`genline[...]`) expanded."""
    optional, requirements, seen = PYPROJECT["project"]["optional-dependencies"], [], set()
    pending = [Requirement(r) for r in PYPROJECT["project"]["dependencies"]] + [
        Requirement(r) for extra in extras for r in optional[extra]]
    while pending:
        requirement = pending.pop()
        if canonicalize_name(requirement.name) == "genline":
            pending += [Requirement(r) for extra in requirement.extras - seen for r in optional[extra]]
            seen |= requirement.extras
        elif canonicalize_name(requirement.name) != "torch":
            requirements.append(requirement)
    return requirements


@pytest.mark.parametrize("lock, extras", [("run.lock", ("all",)), ("test.lock", ("all", "test")), ("docs.lock", ("docs",))]
                         + [(f"{s}.lock", (s,)) for s in SERVICES])
def test_every_declared_dependency_is_pinned_with_hashes_within_its_range(lock, extras):
    locked = pins(lock)
    assert locked and all(hashes for _, hashes in locked.values()), [n for n, (_, h) in locked.items() if not h]
    for requirement in declared(*extras):
        if requirement.marker and not requirement.marker.evaluate({"extra": ""}):
            continue
        name = canonicalize_name(requirement.name)
        assert name in locked, f"{requirement} is not in {lock}"
        assert requirement.specifier.contains(locked[name][0], prereleases=True), (requirement, locked[name][0])


def test_no_cuda_package_and_no_torch_in_the_locks():
    for lock in LOCKS.glob("*.lock"):
        names = set(pins(lock.name))
        assert "torch" not in names, lock.name  # installed on its own, the CPU build (Makefile, Dockerfile)
        assert not {n for n in names if n.startswith(("nvidia-", "cuda-", "triton"))}, lock.name


def test_torch_is_the_same_version_wherever_it_is_installed():
    makefile, dockerfile = (ROOT / "Makefile").read_text(), (ROOT / "Dockerfile").read_text()
    version = re.search(r"TORCH_VERSION := (\S+)", makefile).group(1)
    assert f"ARG TORCH_VERSION={version}" in dockerfile
    assert (LOCKS / "torch-cpu.txt").read_text().strip() == f"torch=={version}+cpu"


def test_make_and_the_image_install_from_the_locks_and_require_their_hashes():
    makefile, dockerfile = (ROOT / "Makefile").read_text(), (ROOT / "Dockerfile").read_text()
    assert "--require-hashes --no-deps -r $(1)" in makefile
    assert "install_locked,requirements/run.lock" in makefile and "install_locked,requirements/test.lock" in makefile
    assert 'pip install --require-hashes --no-deps -r "requirements/${SERVICE_EXTRA}.lock"' in dockerfile
    assert "pip install --require-hashes --no-deps -r requirements/build.lock" in dockerfile


def test_this_environment_holds_the_locked_versions():
    """What `make test` installed is what test.lock pins (LOCKED=1, the default)."""
    differ = {}
    for name, (version, _) in pins("test.lock").items():
        try:
            installed = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue  # a platform's marker left it out
        if installed != version:
            differ[name] = (version, installed)
    assert not differ, differ
