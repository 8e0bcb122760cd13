"""`genline run`: the whole platform on the embedded stack, with a demo job (what it does
is `genline_stack.launcher.launch`, imported when the command runs)."""

import argparse
from pathlib import Path

from services.common.cli import CommandTree


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", type=Path, default=Path(".genline"))
    parser.add_argument("--port", type=int, default=8000, help="public API port")
    parser.add_argument("--credits", type=int, default=1000, help="credits granted to the demo tenant when it is created")
    parser.add_argument("--exit-after-demo", action="store_true")
    parser.add_argument("--subject-demo", action="store_true",
                        help="after the demo job, a headshot order of a subject: eight photos and a ninth of someone"
                             " else refused, its identity trained, six pictures across six styles (450 credits)")


def run_platform(args: argparse.Namespace) -> int:
    from genline_stack.launcher import launch

    return launch(args)


def add_commands(tree: CommandTree) -> None:
    add_arguments(tree.command("run", run_platform, help="the platform on the embedded stack, with a demo job",
        description="Start the platform on the embedded stack (PostgreSQL, Kafka, S3 and the five services), run a"
                    " demo job, and serve until Ctrl-C."))
