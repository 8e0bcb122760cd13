"""`genline verify FILE`: what a file proves, asked of the deployment's `POST /v1/verify`
(no account needed; with your API key, the job and receipt of a file of yours): AI-generated
by that deployment or not, by its Content Credentials or its watermark, intact or altered;
for a file found by its watermark, the delivered file's Content Credentials recovered from
the deployment's records.

Exit status: 0 the file traces to a delivery and is intact; 4 it traces to one but was
altered; 5 nothing ties it to the deployment; 1 the API refused or could not be reached.
"""

import argparse
import sys

from genline_cli.session import EXIT_API, CommandOutput, report_problem
from genline_client import APIError, GenlineError, verify_file
from services.common.cli import CommandTree

EXIT_ALTERED, EXIT_UNKNOWN = 4, 5


def verify(args: argparse.Namespace) -> int:
    output = CommandOutput(args.json)
    try:
        answer = verify_file(args.file, base_url=args.api_url, api_key=args.api_key)
    except OSError as error:
        output.err.print(f"genline verify: {error}")
        return EXIT_API
    except APIError as error:
        report_problem(output, error)
        return EXIT_API
    except GenlineError as error:
        output.err.print(f"genline verify: {error}")
        return EXIT_API
    if output.as_json:
        output.json(answer)
    else:
        show(output, args.file, answer=answer)
    if not answer["generated_here"]:
        return EXIT_UNKNOWN
    return 0 if answer["intact"] else EXIT_ALTERED


def show(output: CommandOutput, name: str, *, answer: dict) -> None:
    credentials, mark = answer["content_credentials"], answer["watermark"]
    output.out.print(f"[bold]{name}[/bold]: {answer['summary']}")
    state = credentials["state"] or ("absent" if not credentials["present"] else "unreadable")
    output.out.print(f"  Content Credentials: {state}" + (f" ({credentials['label']})" if credentials["label"] else ""))
    if mark["searched"]:
        found = f"delivery {mark['delivery_id']}" if mark["detected"] else "none"
        output.out.print(f"  watermark: {found} (confidence {mark['confidence']:.2f})")
    if answer["job"]:
        job = answer["job"]
        output.out.print(f"  job {job['id']}, image {job['n']}; receipt {job['receipt']}")
    if answer.get("recovered"):
        show_recovered(output, answer["recovered"])
    sys.stdout.flush()


def show_recovered(output: CommandOutput, recovered: dict) -> None:
    output.out.print("  recovered from the deployment's records, not read from this file:")
    output.out.print(f"    manifest {recovered['manifest_label']} (delivery {recovered['delivery_id']})")
    if recovered.get("provider"):
        source = (recovered.get("digital_source_type") or "").rsplit("/", 1)[-1]
        output.out.print(f"    {source}, by {recovered['provider']} with {recovered['model']}"
                         f" {recovered['model_version']}, created {recovered['created_at']}")
        output.out.print(f"    soft binding: {recovered['soft_binding'] or 'none declared'}")


def add_commands(tree: CommandTree) -> None:
    command = tree.command("verify", verify, help="what a file proves: AI-generated here, intact or altered",
        description="Ask the deployment what FILE proves: its Content Credentials checked against the deployment's"
                    " trust anchor, its invisible watermark when they are gone.")
    command.add_argument("file", help="a PNG, JPEG, WebP or MP4 file")
    command.add_argument("--json", action="store_true", help="the API's answer as JSON, on stdout")
    command.add_argument("--api-url", help="the API's URL (default: GENLINE_API_URL, else http://127.0.0.1:8000)")
    command.add_argument("--api-key", help="your API key, to see the job of a file of yours (default: GENLINE_API_KEY)")
