"""The ledger's commands: credits granted to a tenant, and the replays of the accounts and
of the audit trail from the journals. Each imports what it does when it runs."""

import argparse
import asyncio

from services.common.cli import CommandTree, add_replay_source


def grant_credits(args: argparse.Namespace) -> int:
    from services.ledger.records import CreditGrant
    from services.ledger.service import grant
    from services.ledger.settings import LedgerSettings

    available = asyncio.run(grant(LedgerSettings(), CreditGrant(tenant_id=args.tenant, amount=args.credits, source="admin", reason=args.reason)))
    print(f"{args.tenant}: {available} credits available")
    return 0


def replay_ledger(args: argparse.Namespace) -> int:
    from services.common.settings import AuditorSettings
    from services.ledger.replay import LedgerReplay, replay_ledger

    return replay_ledger(AuditorSettings(), LedgerReplay(args.schema, args.source, args.outbox_timeout))


def replay_audit(args: argparse.Namespace) -> int:
    from services.common.settings import AuditorSettings
    from services.ledger.audit_replay import AuditReplay, replay_audit

    return replay_audit(AuditorSettings(), AuditReplay(args.schema, args.source, args.settle))


def add_commands(tree: CommandTree) -> None:
    grant = tree.command("grant", grant_credits, help="add credits to a tenant's account")
    grant.add_argument("tenant")
    grant.add_argument("credits", type=int)
    grant.add_argument("--reason", default="admin grant")

    tree.group("replay", help="rebuild state from the journals and compare it with the live one",
               description="Rebuild state from the journals and compare it with the live one, as the auditor:"
               " GENLINE_DATABASE_URL with the role genline_auditor (reads every schema, writes nothing),"
               " GENLINE_KAFKA_* as the KafkaUser genline-auditor (reads the topics only); no service key.")
    ledger = tree.command("replay ledger", replay_ledger, help="rebuild accounts and key spend from the ledger's journal and compare")
    ledger.add_argument("--schema", default="ledger", help="the live ledger schema to compare with")
    add_replay_source(ledger, "the ledger's journal (its outbox, kept for ever), or its topic from the beginning")
    ledger.add_argument("--outbox-timeout", type=float, default=30,
                        help="with --source topics: seconds to wait for the outbox to be published")
    audit = tree.command("replay audit", replay_audit, help="rebuild the audit trail from every journal and compare")
    audit.add_argument("--schema", default="ledger", help="the live ledger schema to compare with")
    audit.add_argument("--settle", type=float, default=30, help="seconds a difference must last to count")
    add_replay_source(audit, "the services' journals (their outboxes), or their topics from the beginning")
