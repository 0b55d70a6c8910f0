"""``painters report``: regenerate the report (HTML, Markdown, PNGs; optionally W&B) from a store.

Registered by one entry in ``painters/cli.py`` (``SUBCOMMANDS``).
"""

from __future__ import annotations

import argparse
import shlex
import sys

from painters.options import add_results
from painters.report.relayer_cli import add_report_subcommands
from glue_painters.errors import UserError


def _names(values) -> list[str] | None:
    if not values:
        return None
    return [t.strip() for v in values for t in v.split(",") if t.strip()] or None


def _report(args) -> int:
    from glue_painters.results import DEFAULT_ROOT
    from painters.report import build_report
    from painters.report.verdict import collapsed, parse_sesoi

    if args.wandb_publish:
        return _publish(args.wandb_publish)
    if args.wandb_summary_only:
        raise UserError("--wandb-summary-only is gone: --wandb now logs only the report run (the per-record runs "
                        "are the sweeps' own, not copied)")

    from glue_painters.outputs import reports_dir

    results = args.results or DEFAULT_ROOT
    args.out = args.out or str(reports_dir())
    tasks = _names(args.tasks)
    if tasks:
        from glue_painters.results import ResultsStore

        stored = sorted({r.get("task") for r in ResultsStore(results).records() if r.get("task")})
        unknown = [t for t in tasks if t not in stored]
        if unknown:  # any task a record holds can be picked: lm-eval tasks and a user's own included
            raise UserError(f"unknown task(s) {', '.join(unknown)}: no record in {results} has it; tasks in the "
                            f"store: {', '.join(stored) or 'none'}")
    command = "painters " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv[1:2] == ["report"] \
        else "painters report"
    out = build_report(results, args.out, track=args.track, models=_names(args.model), tasks=tasks,
                       similarity_dir=args.similarity, command=command, wandb=args.wandb,
                       wandb_dir=args.wandb_dir, wandb_project=args.wandb_project, latency=args.latency,
                       sesoi=parse_sesoi(args.sesoi))
    print(f"report: {out.html_path} and {out.markdown_path}; {len(out.figures)} figures, {len(out.groups)} tables")
    if out.missing:  # one line: the reasons (often dozens with a real store) are in the report itself
        print(f"  {len(out.missing)} figure(s) not drawn: the reasons are listed under 'not drawn' in "
              f"{out.markdown_path} and {out.html_path}")
    rows = collapsed(out.findings)  # one line per table for the claims it cannot decide
    width = max((len(f.claim) for f in rows), default=0)
    for f in rows:
        effect = "" if f.interval is None else (
            f"effect {f.interval.text(2)} (δ {f.sesoi:g}) over {f.units:,} {f.unit_name}") + (
            f", ~{f.docs_needed:,} needed" if f.docs_needed else "") + (
            f" (~{f.cpu_hours_to_decide:,.1f} CPU-h more)" if f.cpu_hours_to_decide is not None else "") + (
            f" ({f.outlook.status})" if f.outlook else "") + "; "
        print(f"  ({f.claim}){' ' * (width - len(f.claim))} {f.status:<16} {f.subject}: {effect}{f.evidence}")
    if out.wandb_runs:
        have, total = out.wandb_sweep_runs
        where = out.wandb_runs[0].parent
        print(f"W&B: the report run (figures, tables, findings) in {where}, beside the sweeps' runs, one per record "
              f"({have} of {total} records have theirs there; a sweep run with --no-wandb logs none); "
              f"upload with: wandb sync {where}/offline-run-*")
    if args.wandb:
        _comparison_report(out.groups, args)
    return 0


def _comparison_report(groups, args) -> None:
    """The W&B comparison report of the per-plan runs: saved when online, else its spec written."""
    import os
    from pathlib import Path

    from glue_painters.tracking import DEFAULT_PROJECT
    from painters.report import wandb_report as W

    spec = W.report_spec(groups, project=args.wandb_project or os.environ.get("WANDB_PROJECT") or DEFAULT_PROJECT)
    path = W.write_spec(spec, Path(args.out))
    if W.online() and spec["entity"]:
        print(f"W&B comparison report: {W.publish(spec)}")
    else:
        print(f"W&B comparison report: offline, its spec is {path}; after `wandb sync`, create it with: "
              f"WANDB_MODE=online WANDB_ENTITY=<you> painters report --wandb-publish {path}")


def _publish(path) -> int:
    import os

    from painters.report import wandb_report as W

    spec = W.load_spec(path)
    spec["entity"] = spec.get("entity") or os.environ.get("WANDB_ENTITY")
    print(f"W&B comparison report: {W.publish(spec)}")
    return 0


def add_subparsers(sub) -> None:
    p = sub.add_parser(
        "report", help="the paper's figures, tables and findings from the results store (HTML + Markdown)",
        description="Draw the paper's figures (2: skip-one/switch, 3: similarity, 4-9: each variant over N, "
                    "10: looped-parallel grid, 11: all variants) from the records in a results store, with "
                    "tables and findings, into OUT/report.html (self-contained) and OUT/report.md. Figures "
                    "the records cannot support are listed with the reason.",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    add_results(p)
    p.add_argument("--out", metavar="DIR", default=None,
                   help="output folder (default: $PAINTERS_REPORTS, else results/reports: never the reports a "
                        "checkout ships)")
    p.add_argument("--track", choices=["decoder", "glue", "all"], default="all", help="which track (default: all)")
    p.add_argument("--model", action="append", metavar="NAME",
                   help="only these models (alias as in the sweep config; repeatable or comma separated)")
    p.add_argument("--tasks", action="append", metavar="TASK", help="only these benchmarks / GLUE tasks")
    p.add_argument("--similarity", metavar="DIR",
                   help="folder of similarity_*.json (default: the output folder)")
    p.add_argument("--sesoi", action="append", metavar="KEY=VALUE",
                   help="smallest effect of interest of a scale (normalized, cosine, correlation) or a claim (i, ii, "
                        "..., vii); repeatable or comma separated (default: normalized=0.05, cosine=0.05, "
                        "correlation=0.5; the report's method line says why)")
    p.add_argument("--latency", action="append", metavar="FILE",
                   help="a benchmarks/latency.py JSON for the accuracy-vs-latency plot (repeatable; default: "
                        "every latency_*.json in the output folder)")
    p.add_argument("--wandb", action="store_true",
                   help="also log the figures, tables and findings as one W&B run beside the sweeps' runs (one "
                        "per record, which the comparison report shows; none is copied); W&B's WANDB_PROJECT, "
                        "WANDB_ENTITY, WANDB_DIR and WANDB_MODE are honoured (offline unless WANDB_MODE is set)")
    p.add_argument("--wandb-dir", metavar="DIR", help="W&B folder (default: $WANDB_DIR, else RESULTS, where the "
                                                      "sweeps' runs are: RESULTS/wandb/offline-run-*)")
    p.add_argument("--wandb-project", default=None, metavar="NAME",
                   help="W&B project (default: $WANDB_PROJECT, else glue-painters)")
    p.add_argument("--wandb-summary-only", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--wandb-publish", metavar="SPEC",
                   help="create the W&B comparison report from a spec written by an offline --wandb run "
                        "(needs WANDB_MODE=online and a login); nothing else is done")
    p.set_defaults(func=_report)
    add_report_subcommands(p)  # painters report relayer | paths: one section alone

