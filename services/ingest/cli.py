"""Ingest's commands: tenants and plans, the data keys' key-encryption keys, the receipt
signing key, and the replays of the jobs' read model and of the receipts. Each imports
what it does when it runs."""

import argparse
import asyncio
import sys
from pathlib import Path

from services.common.cli import CommandTree, add_replay_source


def create_tenant(args: argparse.Namespace) -> int:
    from services.ingest.accounts import Tenant, create_tenant
    from services.ingest.settings import IngestSettings

    try:
        print(asyncio.run(create_tenant(IngestSettings(), Tenant(args.tenant, args.name, args.plan))))
    except ValueError as error:
        args.parser.exit(2, f"{args.parser.prog}: {error}\n")
    return 0


def set_plan(args: argparse.Namespace) -> int:
    from services.ingest.accounts import set_tenant_plan
    from services.ingest.settings import IngestSettings

    try:
        previous = asyncio.run(set_tenant_plan(IngestSettings(), args.tenant, plan=args.plan))
    except ValueError as error:
        args.parser.exit(2, f"{args.parser.prog}: {error}\n")
    print(f"{args.tenant}: {previous} -> {args.plan}")
    return 0


def new_kek(args: argparse.Namespace) -> int:
    from services.ingest.key_encryption import new_key_file

    print(f"KEK {new_key_file(args.file)} added to {args.file} and made active; restart ingest, then run"
          " `genline data-keys rewrap`")
    return 0


def rewrap_data_keys(args: argparse.Namespace) -> int:
    from services.ingest.data_keys import rewrap_all
    from services.ingest.settings import IngestSettings

    asyncio.run(rewrap_all(IngestSettings()))
    return 0


def data_keys_status(args: argparse.Namespace) -> int:
    from services.ingest.data_keys import status
    from services.ingest.settings import IngestSettings

    asyncio.run(status(IngestSettings()))
    return 0


def new_receipt_key(args: argparse.Namespace) -> int:
    from services.ingest.receipts.document import ReceiptSigner
    from services.ingest.signing_key import load_signing_key, new_signing_key_text

    text = new_signing_key_text()
    print(f"GENLINE_RECEIPT_SIGNING_KEY={text}")
    print(f"# key id (kid): {ReceiptSigner(load_signing_key(text)).kid}; keep the key secret, publish nothing: ingest"
          " publishes its public key", file=sys.stderr)
    return 0


def replay_jobs(args: argparse.Namespace) -> int:
    from services.common.settings import AuditorSettings
    from services.ingest.jobs.replay import JobReplay, replay_jobs

    return replay_jobs(AuditorSettings(), JobReplay(schema=args.schema, tenant=args.tenant, settle_s=args.settle, source=args.source))


def replay_receipts(args: argparse.Namespace) -> int:
    from services.ingest.receipts.replay import ReceiptReplay, replay_receipts
    from services.ingest.settings import IngestSettings

    return replay_receipts(IngestSettings(), ReceiptReplay(args.schema, args.tenant))


def print_openapi(args: argparse.Namespace) -> int:
    import json

    from services.ingest.app import openapi_document

    print(json.dumps(openapi_document(), indent=2 if args.indent else None))
    return 0


def add_commands(tree: CommandTree) -> None:
    tree.command("openapi", print_openapi, help="print the public API's OpenAPI document, as ingest serves it",
        description="Print the OpenAPI document ingest serves at /openapi.json (to generate a client, or to read the"
                    " API offline); no platform needs to run."
                 ).add_argument("--indent", action="store_true", help="indented, for people")
    tenant = tree.command("create-tenant", create_tenant, help="a tenant and a new API key (printed)")
    tenant.add_argument("tenant")
    tenant.add_argument("--name")
    tenant.add_argument("--plan", help="free, pro, enterprise (plans.yaml); free by default")
    plan = tree.command("set-plan", set_plan, help="move a tenant to another plan (free, pro, enterprise)")
    plan.add_argument("tenant")
    plan.add_argument("plan")
    for parser in (tenant, plan):
        parser.set_defaults(parser=parser)

    tree.group("data-keys", help="the key-encryption keys of the jobs' data keys",
               description="The key-encryption keys of the jobs' data keys. `rewrap` and `status` read ingest's"
               " settings from the environment (GENLINE_DATABASE_URL with ingest's role, GENLINE_DATA_KEY_KEK_FILE"
               " and/or GENLINE_DATA_KEY_KMS_KEY_ID).")
    tree.command("data-keys new-kek", new_kek, help="add a new KEK to FILE and make it the active one"
                 ).add_argument("file", type=Path)
    tree.command("data-keys rewrap", rewrap_data_keys, help="wrap every stored key under the active KEK")
    tree.command("data-keys status", data_keys_status, help="how many keys each KEK wraps")

    tree.group("receipts", help="signed job receipts, checked offline; a signing key")
    tree.command("receipts keygen", new_receipt_key,
                 help="print a new receipt signing key",
                      description="Print a new receipt signing key (GENLINE_RECEIPT_SIGNING_KEY).")

    tree.group("replay", help="rebuild state from the journals and compare it with the live one",
               description="Rebuild state from the journals and compare it with the live one, as the auditor:"
               " GENLINE_DATABASE_URL with the role genline_auditor (reads every schema, writes nothing),"
               " GENLINE_KAFKA_* as the KafkaUser genline-auditor (reads the topics only); no service key.")
    jobs = tree.command("replay jobs", replay_jobs, help="rebuild every job's read model from every journal and compare",
        description="Rebuild every job's read model from every journal and compare. Sealed prompts are opened and"
                    " compared with the key-encryption key (GENLINE_DATA_KEY_KEK_FILE or GENLINE_DATA_KEY_KMS_KEY_ID);"
                    " without it every other field is compared.")
    jobs.add_argument("--schema", default="ingest", help="the live ingest schema to compare with")
    jobs.add_argument("--tenant", help="only this tenant's jobs")
    jobs.add_argument("--settle", type=float, default=30, help="seconds a difference must last to count")
    add_replay_source(jobs, "the services' journals (their outboxes), or their topics from the beginning")
    receipts = tree.command("replay receipts", replay_receipts,
                            help="check every receipt against the ledger and the public bucket")
    receipts.add_argument("--schema", default="ingest", help="the live ingest schema that holds the receipts")
    receipts.add_argument("--tenant", help="only this tenant's receipts")
