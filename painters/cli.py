"""The ``painters`` command: one entry point, one subcommand per job.

The application above both tracks: every subcommand lives in a module of this package
(``painters.commands``, ``painters.report``, ``painters.search``, ``painters.results_export``) and
``SUBCOMMANDS`` below lists those modules as imported objects, as mergekit's method registry lists
its methods, so the table is read by every checker and nothing is imported by string. A ``UserError`` (bad plan, unknown model or task, broken data file)
prints one line naming the problem and exits with status 2; anything else is a bug and keeps its
traceback.
"""

from __future__ import annotations

import argparse
import sys

from glue_painters.errors import UserError
from glue_painters.upstream import version_line
from painters import results_export
from painters.commands import core, decoder, glue, heal, speculative
from painters.report import cli as report_cli
from painters.search import cli as search_cli

# modules that add their subcommands with add_subparsers(sub), in the order `painters --help` lists them
SUBCOMMANDS = [core, decoder, heal, speculative, glue, report_cli, results_export, search_cli]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="painters",
        description=(
            "Run pretrained transformers with their layers rewired (skipped, repeated, reversed, "
            "shuffled, run in parallel, looped) and measure what it does. "
            "Plans are written as text like 0-7,[8-23]x3,24-31 or as variants like skip:n=8."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=version_line())
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in SUBCOMMANDS:
        module.add_subparsers(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    from glue_painters.processes import launch_problem

    parser = build_parser()
    args = parser.parse_args(argv)
    problem = launch_problem()
    if problem:  # a launch that quietly made one process: say so, then run as that one
        print(f"painters {args.command}: warning: {problem}", file=sys.stderr)
    try:
        return int(args.func(args) or 0)
    except UserError as e:
        print(f"painters {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"painters {args.command}: interrupted; finished records are kept, re-run to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
