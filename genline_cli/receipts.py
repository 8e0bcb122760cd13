"""`genline receipts verify`: receipts and their chain checked offline, with genline-client's
verifier, which needs nothing of the platform. (`genline receipts keygen` is ingest's.)"""

import argparse

from genline_client.receipts import add_verify_arguments, verify_files
from services.common.cli import CommandTree


def verify(args: argparse.Namespace) -> int:
    return verify_files(args, "genline receipts verify")


def add_commands(tree: CommandTree) -> None:
    tree.group("receipts", help="signed job receipts, checked offline; a signing key")
    add_verify_arguments(tree.command("receipts verify", verify,
                                      help="verify receipts and their chain with the published keys"))
