"""`genline usage`: your plan, its limits and where you stand against each, and your last
days (jobs ended, images delivered, credits charged: the API's `GET /v1/usage`), as tables
or, with --json, as the API answers it."""

import argparse

from rich.table import Table

from genline_cli.session import CommandOutput, common_options, with_client
from genline_client import Genline
from services.common.cli import CommandTree


def show_attribution(client: Genline, args: argparse.Namespace, *, output: CommandOutput) -> int:
    attribution = client.usage_attribution(group_by=args.by, days=args.days)
    if output.as_json:
        output.json(attribution)
        return 0
    table = Table(args.by, "jobs ended", "images", "credits")
    for group in [*attribution["groups"], attribution["total"] | {"value": "total"}]:
        table.add_row("(none)" if group["value"] is None else group["value"], str(group["jobs"]), str(group["images"]),
                      str(group["credits"]))
    output.out.print(f"{attribution['since']} to {attribution['until']} (UTC), from your receipts")
    output.out.print(table)
    return 0


def show_usage(client: Genline, args: argparse.Namespace, *, output: CommandOutput) -> int:
    if args.by:
        return show_attribution(client, args, output=output)
    usage = client.usage(days=args.days)
    if output.as_json:
        output.json(usage.model_dump(mode="json"))
        return 0
    plan = usage.plan
    output.out.print(f"[bold]{usage.tenant_id}[/bold] on plan {plan.name}: {plan.requests_per_s:g} requests a second,"
                     f" bursts of {plan.burst}")
    output.out.print(f"  today (UTC): {usage.requests_today} requests, {usage.images_today} images asked for;"
                     f" {usage.jobs_in_progress} jobs in progress; counters reset {usage.resets_at:%Y-%m-%d %H:%M}Z")
    held = "unknown (the ledger does not answer)" if usage.credits_held is None else usage.credits_held
    output.out.print(f"  credits held for jobs in progress: {held}")
    table = Table("limit", "used", "of", "left", "resets")
    for limit in usage.limits:
        table.add_row(limit.name, str(limit.used), "no limit" if limit.limit is None else str(limit.limit),
                      "" if limit.remaining is None else str(limit.remaining),
                      f"{limit.resets_at:%Y-%m-%d %H:%M}Z" if limit.resets_at else "")
    output.out.print(table)
    history = Table("day (UTC)", "jobs ended", "images", "credits")
    for day in usage.daily:
        history.add_row(f"{day.date:%Y-%m-%d}", str(day.jobs), str(day.images), str(day.credits))
    output.out.print(history)
    return 0


def run(args: argparse.Namespace) -> int:
    return with_client(args, show_usage)


def add_commands(tree: CommandTree) -> None:
    usage = tree.command("usage", run, help="your plan, its limits and where you stand; your last days", parents=[common_options()],
        description="Your plan, its limits and where you stand against each, and per UTC day the jobs that ended,"
                    " the images they delivered and the credits they were charged.")
    usage.add_argument("--days", type=int, default=7, metavar="N", help="days of history, today included (1-366;"
                       " default 7)")
    usage.add_argument("--by", metavar="GROUP", help="spend per end_user, or per metadata.<key> (your jobs' labels)")
