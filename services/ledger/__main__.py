import argparse
import asyncio

from services.common.runtime import run
from services.ledger.app import build, grant
from services.ledger.settings import LedgerSettings


def main(prog: str = "python -m services.ledger") -> None:
    parser = argparse.ArgumentParser(prog=prog)
    commands = parser.add_subparsers(dest="command")
    grant_cmd = commands.add_parser("grant", help="add credits to a tenant's account")
    grant_cmd.add_argument("tenant")
    grant_cmd.add_argument("credits", type=int)
    grant_cmd.add_argument("--reason", default="admin grant")
    args = parser.parse_args()
    if args.command == "grant":
        available = asyncio.run(grant(LedgerSettings(), args.tenant, args.credits, args.reason))
        print(f"{args.tenant}: {available} credits available")
        return
    run(LedgerSettings, build)


if __name__ == "__main__":
    main()
