"""How a user's command talks to the API: a client from GENLINE_API_URL and GENLINE_API_KEY
(or --api-url, --api-key), output for people or only JSON (--json), and the API's refusals
as messages and exit statuses, never a traceback.

Exit status: 0 done; 1 the API refused or could not be reached; 2 bad usage or
configuration; 3 the job ended without images (failed, rejected, canceled, expired).
"""

import argparse
import json
import sys
from typing import Protocol

from rich.console import Console

from genline_client import APIError, ConfigurationError, Genline, GenlineError

EXIT_API, EXIT_USAGE, EXIT_NO_IMAGES = 1, 2, 3


def common_options() -> argparse.ArgumentParser:
    """The options every user's command takes (a parent parser)."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", help="machine-readable output only, on stdout")
    common.add_argument("--api-url", help="the API's URL (default: GENLINE_API_URL, else http://127.0.0.1:8000)")
    common.add_argument("--api-key", help="your API key (default: GENLINE_API_KEY)")
    return common


class CommandOutput:
    """Where a command writes: JSON or rich text on stdout, people's messages on stderr."""

    def __init__(self, as_json: bool) -> None:
        self.as_json = as_json
        self.out, self.err = Console(highlight=False), Console(stderr=True, highlight=False)
        # Piped into a script, a line stays one line (a long file name does not fold it at 80 columns).
        for console in (self.out, self.err):
            console.soft_wrap = not console.is_terminal

    def json(self, value) -> None:
        sys.stdout.write(json.dumps(value, default=str) + "\n")
        sys.stdout.flush()

    def err_json(self, value) -> None:
        """A JSON line on stderr: what a command tells as it goes, beside the answer on stdout."""
        sys.stderr.write(json.dumps(value, default=str) + "\n")
        sys.stderr.flush()


def with_client(args: argparse.Namespace, command: "Command") -> int:
    """Run `command` with a client made from the arguments; an API's refusal or a bad
    configuration becomes a message and an exit status, never a traceback."""
    output = CommandOutput(args.json)
    try:
        with Genline(args.api_key, args.api_url) as client:
            return command(client, args, output=output)
    except ConfigurationError as error:
        output.err.print(f"genline: {error}")
        return EXIT_USAGE
    except APIError as error:
        report_problem(output, error)
        return EXIT_API
    except GenlineError as error:
        output.err.print(f"genline: {error}")
        return EXIT_API
    except KeyboardInterrupt:
        return 130


def report_problem(output: CommandOutput, error: APIError) -> None:
    if output.as_json:
        print(json.dumps(error.problem), file=sys.stderr)
        return
    output.err.print(f"genline: {error.title} ({error.status})" + (f": {error.detail}" if error.detail else ""))
    for field in error.errors:
        output.err.print(f"  {field.get('field')}: {field.get('message')}")


class Command(Protocol):
    """A subcommand: the client and the parsed arguments, and where its output goes."""

    def __call__(self, client: Genline, args: argparse.Namespace, *, output: CommandOutput) -> int: ...
