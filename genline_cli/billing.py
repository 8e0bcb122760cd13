"""`genline billing`: the credit packs on sale, your auto top-up rule and latest payments;
`genline billing checkout PACK` opens a checkout and prints the page to pay on;
`genline billing auto-topup` sets the rule (the API's `/v1/billing`)."""

import argparse

from rich.table import Table

from genline_cli.session import CommandOutput, common_options, with_client
from genline_client import Genline
from services.common.cli import CommandTree


def money(minor: int, currency: str) -> str:
    return f"{minor / 100:.2f} {currency.upper()}"


def show_billing(client: Genline, args: argparse.Namespace, *, output: CommandOutput) -> int:
    return print_billing(client.billing(), output)


def print_billing(billing: dict, output: CommandOutput) -> int:
    if output.as_json:
        output.json(billing)
        return 0
    packs = Table("pack", "credits", "price")
    for pack in billing["packs"]:
        packs.add_row(pack["name"], str(pack["credits"]), money(pack["amount_minor"], pack["currency"]))
    output.out.print(packs)
    rule = billing["auto_topup"]
    if rule is None:
        output.out.print("auto top-up: off")
    else:
        state = "on" if rule["enabled"] else f"paused ({rule['paused_reason'] or 'off'})"
        output.out.print(f"auto top-up: {state}; below {rule['below']} credits buy {rule['pack']},"
                         f" at most {rule['max_per_month']} a month")
    latest = Table("when", "what", "credits", "state", "why")
    for c in billing["checkouts"]:
        latest.add_row(c["created_at"], f"checkout {c['pack']}", str(c["credits"]), c["state"], "")
    for a in billing["auto_topups"]:
        latest.add_row(a["created_at"], f"auto top-up {a['pack']}", str(a["credits"]), a["state"],
                       a["failure_message"] or "")
    output.out.print(latest)
    return 0


def open_checkout(client: Genline, args: argparse.Namespace, *, output: CommandOutput) -> int:
    checkout = client.checkout(args.pack, save_card=args.save_card)
    if output.as_json:
        output.json(checkout.model_dump(mode="json"))
        return 0
    output.out.print(f"{checkout.credits} credits for {money(checkout.amount_minor, checkout.currency)}: pay at")
    output.out.print(checkout.url, soft_wrap=True)
    return 0


def set_auto_topup(client: Genline, args: argparse.Namespace, *, output: CommandOutput) -> int:
    return print_billing(client.set_auto_topup(args.below, args.pack, max_per_month=args.max_per_month, enabled=not args.off), output)


def run_show(args: argparse.Namespace) -> int:
    return with_client(args, show_billing)


def run_checkout(args: argparse.Namespace) -> int:
    return with_client(args, open_checkout)


def run_auto_topup(args: argparse.Namespace) -> int:
    return with_client(args, set_auto_topup)


def add_commands(tree: CommandTree) -> None:
    tree.group("billing", help="buy credits: packs, checkout, auto top-up")
    tree.command("billing show", run_show, help="the credit packs on sale, your auto top-up rule, your latest checkouts"
                                                " and top-ups", parents=[common_options()])
    checkout = tree.command("billing checkout", run_checkout,
                            help="open a checkout for a credit pack and print where to pay", parents=[common_options()])
    checkout.add_argument("pack", help="a pack of `genline billing show`")
    checkout.add_argument("--save-card", action="store_true", help="keep the card for auto top-up")
    rule = tree.command("billing auto-topup", run_auto_topup,
                        help="buy a pack with the saved card when the balance runs low", parents=[common_options()])
    rule.add_argument("--below", type=int, required=True, metavar="CREDITS", help="buy when fewer are available")
    rule.add_argument("--pack", required=True, help="the pack to buy")
    rule.add_argument("--max-per-month", type=int, default=4, metavar="N", help="at most N a month (default 4)")
    rule.add_argument("--off", action="store_true", help="turn the rule off")
