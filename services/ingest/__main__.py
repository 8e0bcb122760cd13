import argparse
import asyncio

from services.common.runtime import run
from services.ingest.app import build
from services.ingest.settings import IngestSettings
from services.ingest.tenants import create_tenant, set_tenant_plan


def main(prog: str = "python -m services.ingest") -> None:
    parser = argparse.ArgumentParser(prog=prog)
    commands = parser.add_subparsers(dest="command")
    tenant_cmd = commands.add_parser("create-tenant", help="create a tenant and print a new API key")
    tenant_cmd.add_argument("tenant")
    tenant_cmd.add_argument("--name")
    tenant_cmd.add_argument("--plan", help="free, pro, enterprise (plans.yaml); free by default")
    plan_cmd = commands.add_parser("set-plan", help="move a tenant to another plan")
    plan_cmd.add_argument("tenant")
    plan_cmd.add_argument("plan")
    args = parser.parse_args()
    try:
        if args.command == "create-tenant":
            print(asyncio.run(create_tenant(IngestSettings(), args.tenant, args.name, args.plan)))
            return
        if args.command == "set-plan":
            previous = asyncio.run(set_tenant_plan(IngestSettings(), args.tenant, args.plan))
            print(f"{args.tenant}: {previous} -> {args.plan}")
            return
    except ValueError as error:
        parser.exit(2, f"{parser.prog}: {error}\n")
    run(IngestSettings, build)


if __name__ == "__main__":
    main()
