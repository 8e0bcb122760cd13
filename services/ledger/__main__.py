import argparse
import sys

from services.common.cli import CommandTree
from services.common.runtime import run
from services.ledger import cli
from services.ledger.app import build
from services.ledger.settings import LedgerSettings


def main() -> None:
    """The service; with a command (`grant`, `replay ledger`, …), that command (as `genline` runs it)."""
    if len(sys.argv) > 1:
        tree = CommandTree(argparse.ArgumentParser(prog="python -m services.ledger"))
        cli.add_commands(tree)
        sys.exit(tree.main())
    run(LedgerSettings, build)


if __name__ == "__main__":
    main()
