"""`genline --help` and every command's `--help` exit 0 and name themselves `genline …`."""

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.processes  # runs a Genline service, or starts processes

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = [[], ["jobs"], *(["jobs", c] for c in ("submit", "list", "get", "cancel", "events", "watch", "download")),
            ["run"], ["create-tenant"], ["set-plan"], ["grant"], ["replay"], ["replay", "ledger"], ["replay", "jobs"], ["score"]]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "genline")
def test_help_exits_0_and_shows_genline_commands(command):
    run = subprocess.run([sys.executable, "-m", "services.cli", *command, "--help"], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert f"genline {' '.join(command)}".strip() in run.stdout
    assert "python -m" not in run.stdout.split("\n")[0]


def test_an_unknown_command_prints_usage_and_exits_2():
    run = subprocess.run([sys.executable, "-m", "services.cli", "frobnicate"], cwd=ROOT, capture_output=True,
                         text=True, timeout=60)
    assert run.returncode == 2 and "genline jobs submit" in run.stderr
