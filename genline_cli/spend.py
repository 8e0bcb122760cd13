"""`genline keys` and `genline alerts`: your API keys' spend caps and what each spent, setting
a key's caps, your alerts and when you are alerted; `genline usage --by end_user` lives in
usage.py. Tables, or with --json what the API answers."""

import argparse

from rich.table import Table

from genline_cli.session import CommandOutput, common_options, with_client
from genline_client import Genline
from services.common.cli import CommandTree


def _credits(value: int | None) -> str:
    return "no cap" if value is None else str(value)


def list_keys(client: Genline, args: argparse.Namespace, *, output: CommandOutput) -> int:
    keys = client.api_keys()
    if output.as_json:
        output.json(keys)
        return 0
    table = Table("id", "name", "prefix", "daily cap", "spent today", "monthly cap", "spent this month")
    for key in keys:
        table.add_row(key["id"], key["name"], key["prefix"], _credits(key.get("daily_cap_credits")),
                      str(key.get("spent_today")), _credits(key.get("monthly_cap_credits")),
                      str(key.get("spent_this_month")))
    output.out.print(table)
    return 0


def set_caps(client: Genline, args: argparse.Namespace, *, output: CommandOutput) -> int:
    key = client.set_key_caps(args.key_id, daily_cap_credits=args.daily, monthly_cap_credits=args.monthly)
    if output.as_json:
        output.json(key)
    else:
        output.out.print(f"key {key['id']} ({key['name'] or 'unnamed'}): daily {_credits(key['daily_cap_credits'])},"
                         f" monthly {_credits(key['monthly_cap_credits'])} credits")
    return 0


def show_alerts(client: Genline, args: argparse.Namespace, *, output: CommandOutput) -> int:
    if args.balance_low_below is not None or args.grant_expiring_days is not None:
        current = client.alerts()["settings"]
        below = None if args.balance_low_below == -1 else (
            args.balance_low_below if args.balance_low_below is not None else current["balance_low_below"])
        days = args.grant_expiring_days if args.grant_expiring_days is not None else current["grant_expiring_days"]
        client.set_alert_settings(balance_low_below=below, grant_expiring_days=days)
    alerts = client.alerts()
    if output.as_json:
        output.json(alerts)
        return 0
    settings = alerts["settings"]
    output.out.print(f"alerted below {_credits(settings['balance_low_below'])} available credits and"
                     f" {settings['grant_expiring_days']} days before a grant expires")
    table = Table("raised (UTC)", "alert", "details", "cleared")
    for alert in alerts["alerts"]:
        details = ", ".join(f"{k}={v}" for k, v in alert["details"].items())
        table.add_row(alert["raised_at"][:19], alert["alert"], details, (alert["cleared_at"] or "")[:19])
    output.out.print(table)
    return 0


def add_commands(tree: CommandTree) -> None:
    tree.group("keys", help="your API keys, their spend caps and what each spent")
    tree.command("keys list", lambda args: with_client(args, list_keys),
                 help="your keys with their caps and spend", parents=[common_options()])
    caps = tree.command("keys caps", lambda args: with_client(args, set_caps),
                        help="set a key's spend caps (credits per UTC day and month; leave one out to lift it)",
                        parents=[common_options()])
    caps.add_argument("key_id", help="the key's id (genline keys list)")
    caps.add_argument("--daily", type=int, metavar="CREDITS", help="credits the key may spend per UTC day")
    caps.add_argument("--monthly", type=int, metavar="CREDITS", help="credits the key may spend per UTC month")
    alerts = tree.command("alerts", lambda args: with_client(args, show_alerts), help="your alerts, and when you are alerted", parents=[common_options()],
        description="Your latest alerts (balance low, grant expiring, key cap reached, top-up failed) and your"
                    " settings; --balance-low-below and --grant-expiring-days change them.")
    alerts.add_argument("--balance-low-below", type=int, metavar="CREDITS",
                        help="alert below this many available credits (-1: never)")
    alerts.add_argument("--grant-expiring-days", type=int, metavar="DAYS",
                        help="alert this many days before a grant expires (0: never)")
