"""`python -m genline_stack`: the whole platform on the embedded stack, plus a demo job
(`genline_stack.launcher`)."""

import argparse
import sys

from genline_stack.cli import add_arguments
from genline_stack.launcher import launch

parser = argparse.ArgumentParser(prog="python -m genline_stack", description=__doc__.splitlines()[0])
add_arguments(parser)
sys.exit(launch(parser.parse_args()))
