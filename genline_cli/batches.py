"""`genline batches …` and `genline evaluate …`: a user's batches (a JSONL of requests run as
bulk jobs at the batch price, OpenAI's Batch API) and evaluations (images you bring, judged by
the scorer), on the Python client. --json writes the API's answer only.

    genline batches submit requests.jsonl --wait --output results.jsonl
    genline batches status batch_…      genline batches results batch_… [--errors]
    genline batches cancel batch_…      genline batches list
    genline evaluate photo.png https://example.com/b.png --template product [--prompt …]

Exit status: 0 done; 1 the API refused or could not be reached; 2 bad usage; 3 a batch that did
not complete, or an evaluated image that did not pass.
"""

import argparse
import json
from pathlib import Path

from rich.table import Table

from genline_cli.session import EXIT_NO_IMAGES, CommandOutput, common_options, with_client
from genline_client import Genline
from services.common.cli import CommandTree


def show_batch(batch: dict, output: CommandOutput) -> None:
    counts = batch["request_counts"]
    output.out.print(f"{batch['id']}: {batch['status']}, {counts['completed']} completed and {counts['failed']}"
                     f" failed of {counts['total']}")


def submit(client: Genline, args: argparse.Namespace, *, output: CommandOutput) -> int:
    batch = client.batches.create(args.file, endpoint=args.endpoint, filename=args.file.name)
    if args.wait or args.output:
        if not output.as_json:
            output.err.print(f"{batch['id']} submitted; waiting for it to end")
        batch = client.batches.wait(batch, timeout=args.timeout)
    if args.output:
        with args.output.open("w") as out:
            for line in client.batches.results(batch):
                out.write(json.dumps(line) + "\n")
    output.json(batch) if output.as_json else show_batch(batch, output)
    return 0 if batch["status"] in ("completed", "in_progress") else EXIT_NO_IMAGES


def status(client: Genline, args: argparse.Namespace, *, output: CommandOutput) -> int:
    batch = client.batches.get(args.batch)
    output.json(batch) if output.as_json else show_batch(batch, output)
    return 0


def results(client: Genline, args: argparse.Namespace, *, output: CommandOutput) -> int:
    for line in client.batches.results(args.batch, errors=args.errors):
        output.json(line)
    return 0


def cancel(client: Genline, args: argparse.Namespace, *, output: CommandOutput) -> int:
    batch = client.batches.cancel(args.batch)
    output.json(batch) if output.as_json else show_batch(batch, output)
    return 0


def listing(client: Genline, args: argparse.Namespace, *, output: CommandOutput) -> int:
    page = client.batches.list(limit=args.limit)
    if output.as_json:
        output.json(page)
        return 0
    table = Table("batch", "status", "completed", "failed", "total")
    for batch in page["data"]:
        counts = batch["request_counts"]
        table.add_row(batch["id"], batch["status"], str(counts["completed"]), str(counts["failed"]),
                      str(counts["total"]))
    output.out.print(table)
    return 0


COMMANDS = {"submit": submit, "status": status, "results": results, "cancel": cancel, "list": listing}


def evaluate(client: Genline, args: argparse.Namespace, *, output: CommandOutput) -> int:
    options = {"template": args.template, "profile": args.profile, "prompt": args.prompt, "size": args.size,
               "references": [str(path) for path in args.reference] or None}
    images = [image if image.startswith(("http://", "https://")) else Path(image) for image in args.images]
    evaluation = client.evaluations.create(images, **{k: v for k, v in options.items() if v is not None})
    if output.as_json:
        output.json(evaluation)
    else:
        for name, verdict in zip(args.images, evaluation["images"], strict=True):
            outcome = "PASS" if verdict["passed"] else f"FAIL ({', '.join(verdict['failed'])})"
            output.out.print(f"{name}  {outcome}  score {verdict['score']:.3f}, tier {verdict['tier_reached']}")
            for dimension, result in verdict["dimensions"].items():
                if not result["passed"] and result["measured"]:
                    output.out.print(f"  {dimension}: {result['reason']}")
        output.out.print(f"charged {evaluation['charge']['credits']} credits")
    return 0 if all(v["passed"] for v in evaluation["images"]) else EXIT_NO_IMAGES


def add_commands(tree: CommandTree) -> None:
    batches = tree.command("batches", lambda args: with_client(args, COMMANDS[args.batches_command]), help="run a JSONL of requests as a batch at the batch price", description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 1)[1], formatter_class=argparse.RawDescriptionHelpFormatter)
    common = common_options()
    commands = batches.add_subparsers(dest="batches_command", required=True, metavar="COMMAND")
    run = commands.add_parser("submit", parents=[common], help="upload a JSONL file and start its batch")
    run.add_argument("file", type=Path, help="JSONL: a request a line (custom_id, method, url, body)")
    run.add_argument("--endpoint", default="/v1/images/generations", choices=["/v1/images/generations", "/v1/jobs"])
    run.add_argument("--wait", action="store_true", help="wait until the batch has ended")
    run.add_argument("--output", type=Path, metavar="FILE", help="write its output lines into FILE (implies --wait)")
    run.add_argument("--timeout", type=float, metavar="SECONDS")
    for name, what in (("status", "a batch and its counts"), ("results", "a batch's output lines, as JSON lines"),
                       ("cancel", "stop a batch")):
        command = commands.add_parser(name, parents=[common], help=what)
        command.add_argument("batch", help="the batch's id (batch_…)")
        if name == "results":
            command.add_argument("--errors", action="store_true", help="its error file's lines instead")
    commands.add_parser("list", parents=[common], help="your batches, newest first").add_argument(
        "--limit", type=int, default=20)

    judge = tree.command("evaluate", lambda args: with_client(args, evaluate), help="judge images you bring with the scorer, per dimension", parents=[common_options()],
        description="Judge up to four images (paths or URLs) as the scorer judges a job's candidates; charged per"
                    " image judged. Exit status 3 when an image did not pass.")
    judge.add_argument("images", nargs="+", metavar="IMAGE", help="a path or an http(s) URL")
    judge.add_argument("--template", default="generic")
    judge.add_argument("--profile")
    judge.add_argument("--prompt", help="what the images were made for")
    judge.add_argument("--size", metavar="WxH", help="the size asked")
    judge.add_argument("--reference", type=Path, action="append", default=[], metavar="PATH",
                       help="a photo of the person the images must show (up to four)")
