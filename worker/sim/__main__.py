"""`python -m worker.sim`: run the Toksta API simulator."""

from __future__ import annotations

import argparse
import sys

from worker.sim.cli import add_arguments, run


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m worker.sim", description="Local Toksta Public API v1 simulator.")
    add_arguments(parser)
    return run(parser.parse_args())


if __name__ == "__main__":
    sys.exit(main())
