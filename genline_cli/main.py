"""`genline`: the one parser, and the parts of the platform that add their commands to it.

Your jobs and account (GENLINE_API_URL, GENLINE_API_KEY; --json on every command): `genline jobs …`,
`genline batches …`, `genline evaluate …`, `genline subjects …` (the people and products jobs are of),
`genline account` (credits and debt),
`genline usage`, `genline billing …` (buy credits).
Receipts checked offline: `genline receipts verify`; what a file proves: `genline verify FILE`. Operating the platform: `genline run`,
tenants, credits, replays, the bus, keys; `genline score` scores image files without it.
`genline COMMAND --help` describes each command.
"""

import argparse
from collections.abc import Sequence

from genline_cli import account, batches, billing, jobs, members, provenance, receipts, spend, subjects, usage
from genline_stack import cli as stack
from services.common import cli as common
from services.common.bus import cli as bus
from services.common.cli import CommandTree
from services.ingest import cli as ingest
from services.ledger import cli as ledger
from services.scorer import cli as scorer

# In the order `genline --help` lists their commands: a user's first, then the operator's.
PARTS = (jobs, batches, subjects, account, usage, billing, spend, members, receipts, provenance, stack, ingest, ledger, bus,
         common, scorer)


def command_tree() -> CommandTree:
    tree = CommandTree(argparse.ArgumentParser(
        prog="genline", description="Genline: generated images, scored, delivered, and charged only when delivered.",
        epilog="`genline COMMAND --help` describes each command."))
    for part in PARTS:
        part.add_commands(tree)
    return tree


def main(argv: Sequence[str] | None = None) -> int:
    return command_tree().main(argv)
