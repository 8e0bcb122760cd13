import argparse
import sys

from services.common.cli import CommandTree
from services.common.runtime import run
from services.ingest import cli
from services.ingest.app import build
from services.ingest.settings import IngestSettings


def main() -> None:
    """The service; with a command (`create-tenant`, `set-plan`, …), that command (as `genline` runs it)."""
    if len(sys.argv) > 1:
        tree = CommandTree(argparse.ArgumentParser(prog="python -m services.ingest"))
        cli.add_commands(tree)
        sys.exit(tree.main())
    run(IngestSettings, build)


if __name__ == "__main__":
    main()
