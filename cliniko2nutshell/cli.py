"""Entry point: the wizard by default; demo, sandbox and headless commands."""

from __future__ import annotations

import argparse
import sys


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cliniko2nutshell", description=__doc__)
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("sandbox", help="serve the Cliniko and Nutshell sandboxes until interrupted")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command is None:
        build_parser().print_help()
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
