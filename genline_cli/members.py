"""`genline members` and `genline audit`: your organization's members and their roles, inviting
someone by mail, changing a role, removing a member (their keys revoked unless moved), and the
audit log. Tables, or with --json what the API answers."""

import argparse

from rich.table import Table

from genline_cli.session import CommandOutput, common_options, with_client
from genline_client import Genline
from services.common.cli import CommandTree

ROLES = ("owner", "admin", "developer", "billing", "viewer")


def list_members(client: Genline, args: argparse.Namespace, *, output: CommandOutput) -> int:
    members = client.members()
    if output.as_json:
        output.json(members)
        return 0
    table = Table("id", "member", "kind", "role", "keys")
    for member in members:
        table.add_row(member["id"], member["email"] or member["name"], member["kind"], member["role"],
                      str(member["keys"]))
    output.out.print(table)
    return 0


def invite(client: Genline, args: argparse.Namespace, *, output: CommandOutput) -> int:
    invitation = client.invite(args.email, args.role)
    if output.as_json:
        output.json(invitation)
    else:
        mailed = "mailed" if invitation["mailed"] else f"not mailed ({invitation['mail_error']})"
        output.out.print(f"invited {invitation['email']} as {invitation['role']}: {mailed}, until"
                         f" {invitation['expires_at'][:16]} UTC")
    return 0 if invitation["mailed"] else 1


def set_role(client: Genline, args: argparse.Namespace, *, output: CommandOutput) -> int:
    member = client.set_member_role(args.member_id, args.role)
    if output.as_json:
        output.json(member)
    else:
        output.out.print(f"{member['email'] or member['name']} is now {member['role']}")
    return 0


def remove(client: Genline, args: argparse.Namespace, *, output: CommandOutput) -> int:
    client.remove_member(args.member_id, move_keys_to=args.move_keys_to)
    output.out.print(f"removed {args.member_id}" + (f"; keys moved to {args.move_keys_to}" if args.move_keys_to
                                                      else "; their keys are revoked"))
    return 0


def audit_log(client: Genline, args: argparse.Namespace, *, output: CommandOutput) -> int:
    entries = client.audit_log(action=args.action, limit=args.limit)
    if output.as_json:
        output.json(entries)
        return 0
    table = Table("at (UTC)", "who", "from", "action", "target")
    for entry in entries:
        table.add_row(entry["at"][:19], entry["details"].get("actor_email") or entry["actor"], entry["origin"] or "",
                      entry["action"], entry["target"])
    output.out.print(table)
    return 0


def add_commands(tree: CommandTree) -> None:
    tree.group("members", help="your organization's members, their roles and invitations")
    tree.command("members list", lambda args: with_client(args, list_members),
                 help="members and service accounts with their roles", parents=[common_options()])
    invited = tree.command("members invite", lambda args: with_client(args, invite),
                           help="invite someone by mail to join in a role", parents=[common_options()])
    invited.add_argument("email")
    invited.add_argument("--role", choices=ROLES, default="developer")
    role = tree.command("members role", lambda args: with_client(args, set_role),
                        help="give a member another role (their sessions end)", parents=[common_options()])
    role.add_argument("member_id")
    role.add_argument("role", choices=ROLES)
    removed = tree.command("members remove", lambda args: with_client(args, remove),
                           help="remove a member; their keys are revoked unless moved", parents=[common_options()])
    removed.add_argument("member_id")
    removed.add_argument("--move-keys-to", metavar="MEMBER_ID", help="another member or service account")
    audit = tree.command("audit", lambda args: with_client(args, audit_log),
                         help="your organization's audit log, newest first", parents=[common_options()])
    audit.add_argument("--action", help="only this action, e.g. member.sign_in")
    audit.add_argument("--limit", type=int, default=50)
