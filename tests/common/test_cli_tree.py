"""The command tree every part of `genline` adds to: a command found by its path runs with
its arguments and gives its exit status; groups are made once, whoever mentions them."""

import argparse

import pytest

from services.common.bus.replay import SOURCES
from services.common.cli import REPLAY_SOURCES, CommandTree


def test_commands_of_one_group_added_by_two_parts_run_with_their_arguments():
    tree, seen = CommandTree(argparse.ArgumentParser(prog="genline")), []
    tree.group("replay", help="replays")
    tree.command("replay ledger", lambda args: seen.append(("ledger", args.schema)) or 3, help="h"
                 ).add_argument("--schema", default="ledger")
    tree.command("replay jobs", lambda args: seen.append(("jobs", args.tenant)), help="h").add_argument("--tenant")
    assert tree.main(["replay", "ledger", "--schema", "x"]) == 3
    assert tree.main(["replay", "jobs", "--tenant", "acme"]) == 0
    assert seen == [("ledger", "x"), ("jobs", "acme")]


def test_a_group_without_its_command_is_a_usage_error(capsys):
    tree = CommandTree(argparse.ArgumentParser(prog="genline"))
    tree.command("bus status", lambda args: 0, help="h")
    with pytest.raises(SystemExit) as stop:
        tree.main(["bus"])
    assert stop.value.code == 2 and "usage: genline bus" in capsys.readouterr().err


def test_the_replay_sources_the_commands_offer_are_the_ones_replay_reads():
    assert REPLAY_SOURCES == SOURCES
