"""`genline` is one argparse tree: `genline --help` and every command's `--help` exit 0 and
name themselves `genline …`; declaring the commands loads neither torch nor Kafka's client."""

import subprocess
import sys
from pathlib import Path

import pytest

from genline_cli.main import command_tree

pytestmark = pytest.mark.processes  # runs a Genline service, or starts processes

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = [[], ["jobs"], *(["jobs", c] for c in ("submit", "list", "get", "cancel", "events", "watch", "download")),
            ["subjects"], *(["subjects", c] for c in ("create", "add-photos", "list", "show", "delete", "wait")),
            ["run"], ["create-tenant"], ["set-plan"], ["grant"], ["replay"], ["replay", "ledger"], ["replay", "jobs"],
            ["replay", "audit"], ["replay", "receipts"], ["receipts"], ["receipts", "verify"], ["receipts", "keygen"],
            ["bus"], ["bus", "status"], ["bus", "rebuild"], ["data-keys"], ["data-keys", "status"], ["service-keys"],
            ["score"]]


def genline(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "genline_cli", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "genline")
def test_help_exits_0_and_shows_genline_commands(command):
    run = genline(*command, "--help")
    assert run.returncode == 0, run.stderr
    assert f"usage: genline {' '.join(command)}".strip() in run.stdout
    assert "python -m" not in run.stdout.split("\n")[0]


def test_every_command_is_in_the_one_tree_and_listed_in_its_help():
    top = command_tree().parser.format_help()
    for command in {c[0] for c in COMMANDS if c}:
        assert f"    {command}" in top, command


def test_an_unknown_command_prints_usage_and_exits_2():
    run = genline("frobnicate")
    assert run.returncode == 2 and "usage: genline" in run.stderr and "invalid choice: 'frobnicate'" in run.stderr


def test_declaring_the_commands_loads_neither_torch_nor_kafka():
    run = subprocess.run([sys.executable, "-c", "import sys; from genline_cli.main import command_tree; command_tree();"
                          " print(sorted({'torch', 'aiokafka', 'cv2'} & set(sys.modules)))"],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert run.stdout.strip() == "[]", run.stdout + run.stderr


def test_the_ledger_service_takes_no_command_and_names_genline_instead():
    run = subprocess.run([sys.executable, "-m", "services.ledger", "grant", "--help"], cwd=ROOT, capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 1 and "genline grant --help" in run.stderr, run.stdout + run.stderr
