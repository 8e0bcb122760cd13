"""`genline account`: your credits (available, held for jobs in progress) and what you owe,
the API's `GET /v1/account`; a debt refuses new jobs until credits bought pay it."""

import argparse

from rich.table import Table

from genline_cli.session import CommandOutput, common_options, with_client
from genline_client import Genline
from services.common.cli import CommandTree


def show_account(client: Genline, args: argparse.Namespace, *, output: CommandOutput) -> int:
    account = client.account()
    if output.as_json:
        output.json(account.model_dump(mode="json"))
        return 0
    output.out.print(f"[bold]{account.tenant_id}[/bold]: {account.available} credits available,"
                     f" {account.pending} held for jobs in progress, {account.retry_tokens} retry tokens")
    if account.in_debt:
        output.out.print(f"[bold red]the account owes {account.owed} credits[/bold red] (a refund or a lost dispute took"
                         " back credits already spent): new jobs are refused until it is paid;"
                         " `genline billing checkout PACK` buys credits, which pay the debt first")
    grants = Table("grant", "source", "amount", "left", "expires")
    for grant in account.grants:
        grants.add_row(grant.id, grant.source, str(grant.amount), str(grant.remaining), grant.expires_at or "never")
    if account.grants:
        output.out.print(grants)
    return 0


def run(args: argparse.Namespace) -> int:
    return with_client(args, show_account)


def add_commands(tree: CommandTree) -> None:
    tree.command("account", run, help="your credits: available, held, and what you owe", parents=[common_options()],
        description="Your credits: available for new jobs, held for jobs in progress, your grants, and what the"
                    " account owes after a refund or a lost dispute (new jobs are refused until it is paid).")
