"""The scorer's command: `genline score`, image files judged against a scoring profile
without the platform (`offline.py` does it, and loads torch when the command runs).

    python -m services.scorer.cli score [--profile NAME] [...] [--json] PATH...
"""

import argparse
import sys
from collections.abc import Sequence
from typing import TextIO

from services.common.cli import CommandTree
from services.common.contracts import SUBJECT_KINDS
from services.common.quality.profiles import profile_names


def score_files(args: argparse.Namespace) -> int:
    from services.scorer.offline import score

    return score(args)


def add_commands(tree: CommandTree) -> None:
    score = tree.command("score", score_files, help="score image files against a profile, without the platform",
        description="Judge image files against a scoring profile. Exit status: 0 when every image passed, 1 when any"
                    " failed, 2 on a usage error.")
    score.add_argument("paths", nargs="*", metavar="PATH", help="image files (PNG, JPEG, WebP, ...)")
    score.add_argument("--calibrate", metavar="DIR", help="suggest thresholds from the images in DIR/good and DIR/bad")
    score.add_argument("--profile", default="generic", help=f"scoring profile: {', '.join(profile_names())}")
    score.add_argument("--reference", metavar="PATH", help="reference photo for skin tone")
    score.add_argument("--prompt", metavar="TEXT", help="the prompt, for prompt alignment")
    score.add_argument("--subject", metavar="DIR", help="judge against a subject made of the photos in DIR")
    score.add_argument("--subject-kind", choices=SUBJECT_KINDS, default="person", help="the subject's kind")
    score.add_argument("--clip-model", metavar="DIR", help="local folder of a CLIP model (save_pretrained)")
    score.add_argument("--size", metavar="WxH", help="requested size, for the size and aspect dimensions")
    score.add_argument("--rules", metavar="FILE", help="QualityRules as a JSON or YAML file")
    score.add_argument("--device", choices=("cpu", "cuda"), help="default: cuda when present")
    score.add_argument("--json", action="store_true", help="print JSON instead of a table")


def main(argv: Sequence[str] | None = None, stdout: TextIO | None = None, *, stderr: TextIO | None = None) -> int:
    """`score …` as `genline score …` runs it, writing to `stdout` and `stderr`."""
    from services.scorer.offline import USAGE_ERROR, score

    tree = CommandTree(argparse.ArgumentParser(prog="genline", description="Genline's image scorer."))
    add_commands(tree)
    try:
        args = tree.parser.parse_args(argv)
    except SystemExit as stop:  # argparse has printed usage or help already
        return stop.code if isinstance(stop.code, int) else USAGE_ERROR
    return score(args, stdout, stderr=stderr)


if __name__ == "__main__":
    sys.exit(main())
