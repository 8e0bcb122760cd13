import argparse
import asyncio

from services.common.runtime import run
from services.ingest.app import build, create_tenant
from services.ingest.settings import IngestSettings


def main(prog: str = "python -m services.ingest") -> None:
    parser = argparse.ArgumentParser(prog=prog)
    commands = parser.add_subparsers(dest="command")
    tenant_cmd = commands.add_parser("create-tenant", help="create a tenant and print a new API key")
    tenant_cmd.add_argument("tenant")
    tenant_cmd.add_argument("--name")
    args = parser.parse_args()
    if args.command == "create-tenant":
        print(asyncio.run(create_tenant(IngestSettings(), args.tenant, args.name)))
        return
    run(IngestSettings, build)


if __name__ == "__main__":
    main()
