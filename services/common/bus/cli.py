"""`genline bus status | rebuild [--all]`: the topics as the journals see them, and topics
published again from the journals after a disaster (`services.common.bus.rebuild`)."""

import argparse
import asyncio
import json

from services.common.cli import CommandTree


def show_status(args: argparse.Namespace) -> int:
    from services.common.bus.rebuild import BusSettings, Journals, status

    services = asyncio.run(status(Journals(BusSettings(), args.schema_prefix)))
    if args.json:
        print(json.dumps(services, indent=2))
        return 0
    for entry in services:
        journal = entry["journal"]
        print(f"{entry['topic']}: journal {journal['rows']} rows, {journal['unpublished']} to publish")
        for p in entry["partitions"]:
            behind = ", ".join(f"{reader} {n}" for reader, n in p["behind"].items())
            print(f"  partition {p['partition']}: records {p['log_start']}..{p['end']} ({p['end'] - p['log_start']} held),"
                  f" rotated {p['rotations']}x; behind: {behind}")
    return 0


def rebuild_topics(args: argparse.Namespace) -> int:
    from services.common.bus.rebuild import BusSettings, Journals, rebuild

    asyncio.run(rebuild(Journals(BusSettings(), args.schema_prefix), args.all, out=print))
    return 0


def add_commands(tree: CommandTree) -> None:
    tree.group("bus", help="the topics as the journals see them; publish them again",
               description="The bus as the services' journals see it, and topics rebuilt from them, as the operator:"
               " GENLINE_DATABASE_URL with the role genline_operator, GENLINE_KAFKA_* as the KafkaUser"
               " genline-operator (GENLINE_KAFKA_BOOTSTRAP, GENLINE_TOPIC_NAMESPACE as the services have them); no"
               " service key, no object-store key.")
    show = tree.command("bus status", show_status, help="each topic's partitions, readers and journal")
    show.add_argument("--json", action="store_true")
    again = tree.command("bus rebuild", rebuild_topics, help="publish the journals again after a disaster")
    again.add_argument("--all", action="store_true",
                       help="every row each journal holds at or above its floor, not only what may be unread")
    for command in (show, again):
        command.add_argument("--schema-prefix", default="", help="the prefix the services' schemas share")
