"""The ``painters`` command: one entry point, one subcommand per job.

Each track owns its subcommand (``add_subparser(subparsers)`` in its ``cli`` module) so this file
stays a table of contents. A ``UserError`` (bad plan, unknown model or task, broken data file)
prints one line naming the problem and exits with status 2; anything else is a bug and keeps its
traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from .errors import UserError

# modules that add a subcommand with add_subparsers(sub)
SUBCOMMANDS = [
    "glue_painters.commands",
    "decoder_eval.cli",
    "decoder_eval.heal",
    "decoder_eval.speculative",
    "glue_eval.cli",
    "glue_painters.report.cli",
    "glue_painters.results_export",
    "glue_painters.search.cli",
    "decoder_eval.verdict_cli",  # adds 'verdict' under 'search': after glue_painters.search.cli
]


def _version() -> str:
    """glue-painters' version and the upstream releases it runs on (what a bug report needs)."""
    from importlib.metadata import PackageNotFoundError, version

    from . import __version__

    parts = []
    for name in ("transformers", "torch", "peft", "accelerate", "lm_eval"):
        try:
            parts.append(f"{name} {version(name)}")
        except PackageNotFoundError:
            parts.append(f"{name} not installed")
    return f"glue-painters {__version__} ({', '.join(parts)})"


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
    parser.add_argument("--version", action="version", version=_version())
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in SUBCOMMANDS:
        importlib.import_module(module).add_subparsers(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
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
