"""`genline subjects …`: the people and products your jobs are of, on the Python client.

`create KIND NAME PHOTO…` makes a subject from photo files (4 to 30 accepted; each photo's
verdict is printed, a refused one with its reasons), `add-photos SUBJECT PHOTO…` adds more,
`list` and `show` read them, `wait SUBJECT --until trained` waits for its identity, and
`delete SUBJECT` erases its photos, embeddings and identities. Order with
`genline jobs submit --template subject-headshots --subject SUBJECT`.

Exit status: 0 done; 1 the API refused or could not be reached; 2 bad usage; 3 no photo of
the request was accepted.
"""

import argparse
from pathlib import Path

from rich.console import Console
from rich.table import Table

from genline_cli.session import EXIT_NO_IMAGES, EXIT_USAGE, Command, CommandOutput, common_options, with_client
from genline_client import Genline, PhotoVerdict, Subject
from services.common.cli import CommandTree


def run(args: argparse.Namespace) -> int:
    return with_client(args, COMMANDS[args.subjects_command])


def add_commands(tree: CommandTree) -> None:
    add_arguments(tree.command("subjects", run, help="the people and products your jobs are of", description="Make subjects from photos, follow and erase them.",
        epilog=__doc__.split("\n\n", 1)[1], formatter_class=argparse.RawDescriptionHelpFormatter))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    common = common_options()
    commands = parser.add_subparsers(dest="subjects_command", required=True, metavar="COMMAND")
    create = commands.add_parser("create", parents=[common], help="make a subject from photos")
    create.add_argument("kind", choices=["person", "product"])
    create.add_argument("name")
    create.add_argument("photos", nargs="*", type=Path, metavar="PHOTO", help="JPEG, PNG or WebP files")
    create.add_argument("--keep", action="store_true", help="keep it past the retention (30 days after its last order)")
    add = commands.add_parser("add-photos", parents=[common], help="add photos to a subject")
    add.add_argument("subject_id", metavar="SUBJECT_ID")
    add.add_argument("photos", nargs="+", type=Path, metavar="PHOTO")
    listing = commands.add_parser("list", parents=[common], help="your subjects, newest first")
    listing.add_argument("--limit", type=int, default=20)
    listing.add_argument("--cursor", help="the `next` of the previous page")
    for name, text in [("show", "a subject and each photo's verdict"),
                       ("delete", "erase a subject: its photos, embeddings and identities")]:
        commands.add_parser(name, parents=[common], help=text, description=text).add_argument("subject_id",
                                                                                             metavar="SUBJECT_ID")
    wait = commands.add_parser("wait", parents=[common], help="wait until a subject is in a state (trained by default)")
    wait.add_argument("subject_id", metavar="SUBJECT_ID")
    wait.add_argument("--until", default="trained", choices=["ready", "training", "trained", "failed"])
    wait.add_argument("--timeout", type=float, metavar="SECONDS")


def read_photos(paths: list[Path], output: CommandOutput) -> list[bytes] | None:
    try:
        return [path.read_bytes() for path in paths]
    except OSError as error:
        output.err.print(f"genline: {error}")
        return None


def create(client: Genline, args, *, output: CommandOutput) -> int:
    photos = read_photos(args.photos, output)
    if photos is None:
        return EXIT_USAGE
    subject = client.subjects.create(args.kind, args.name, photos=photos, keep=args.keep)
    return shown(subject, subject.photos, output=output)


def add_photos(client: Genline, args, *, output: CommandOutput) -> int:
    photos = read_photos(args.photos, output)
    if photos is None:
        return EXIT_USAGE
    added = client.subjects.add_photos(args.subject_id, photos=photos)
    return shown(added.subject, added.added, output=output)


def shown(subject: Subject, verdicts: list[PhotoVerdict], *, output: CommandOutput) -> int:
    """The subject with the verdicts of the photos just sent; 3 when none was accepted."""
    if output.as_json:
        output.json(subject.model_dump(mode="json") | {"added": [v.model_dump(mode="json") for v in verdicts]})
    else:
        show_subject(output.out, subject, verdicts=verdicts)
    return 0 if not verdicts or any(v.accepted for v in verdicts) else EXIT_NO_IMAGES


def show_subject(console: Console, subject: Subject, *, verdicts: list[PhotoVerdict]) -> None:
    console.print(f"[bold]{subject.id}[/bold]  {subject.kind}  {subject.name}  {subject.state}  "
                  f"{subject.photos_accepted} accepted, {subject.photos_refused} refused")
    if subject.reason:
        console.print(f"  {subject.reason}")
    if subject.identity:
        console.print(f"  identity: {subject.identity.get('provider')} {subject.identity.get('model')}"
                      f" weights {str(subject.identity.get('weights_sha256'))[:12]}")
    for waived in subject.waived_checks:
        console.print(f"  {waived.dimension} not checked: {waived.reason}", soft_wrap=True)
    for verdict in verdicts:
        mark = "accepted" if verdict.accepted else "refused"
        console.print(f"  photo {verdict.n} ({verdict.source}): {mark}" +
                      (f": {'; '.join(verdict.reasons)}" if verdict.reasons else ""), soft_wrap=True)


def show(client: Genline, args, *, output: CommandOutput) -> int:
    subject = client.subjects.get(args.subject_id)
    if output.as_json:
        output.json(subject.model_dump(mode="json"))
    else:
        show_subject(output.out, subject, verdicts=subject.photos)
    return 0


def list_subjects(client: Genline, args, *, output: CommandOutput) -> int:
    page = client.subjects.list(limit=args.limit, cursor=args.cursor)
    if output.as_json:
        output.json(page.model_dump(mode="json"))
        return 0
    table = Table("id", "kind", "name", "state", "photos", "created")
    for subject in page.data:
        table.add_row(str(subject.id), subject.kind, subject.name, subject.state, str(subject.photos_accepted),
                      f"{subject.created_at:%Y-%m-%d %H:%M:%S}")
    output.out.print(table)
    if page.next:
        output.out.print(f"more: --cursor {page.next}")
    return 0


def delete(client: Genline, args, *, output: CommandOutput) -> int:
    answer = client.subjects.delete(args.subject_id)
    if output.as_json:
        output.json(answer)
    else:
        output.out.print(f"{answer['id']}  {answer['state']}")
    return 0


def wait(client: Genline, args, *, output: CommandOutput) -> int:
    subject = client.subjects.wait(args.subject_id, until=args.until, timeout=args.timeout)
    if output.as_json:
        output.json(subject.model_dump(mode="json"))
    else:
        output.out.print(f"{subject.id}  {subject.state}" + (f"  ({subject.reason})" if subject.reason else ""))
    return 0 if subject.state == args.until else EXIT_NO_IMAGES


COMMANDS: dict[str, Command] = {
    "create": create, "add-photos": add_photos, "list": list_subjects, "show": show, "delete": delete, "wait": wait,
}
