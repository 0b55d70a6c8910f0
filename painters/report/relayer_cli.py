"""``painters report relayer`` and ``painters report paths``: one section of the report on its own.

    painters report relayer --results STORE --out DIR [--sesoi 0.02]   # DIR/relayer.{md,html}, relayer_<model>.png
    painters report paths --results STORE --out DIR [--cost 1.0]      # DIR/paths.{md,html,json}

Why subcommands of ``report`` and not flags: each writes a page of its own (the heatmap, or the
table with one row per error of the full model), which ``painters report`` also carries as a
section; the same store gives the same page. Their options default to ``argparse.SUPPRESS`` so a
``--results`` or ``--out`` given before the subcommand (``painters report --results S relayer``)
is kept, not reset by the subcommand's default.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

from glue_painters import stats
from glue_painters.errors import UserError
from painters.options import OPTIONS


def _common(p) -> None:
    p.add_argument(*OPTIONS["results"].flags, dest="results", default=argparse.SUPPRESS, metavar="DIR",
                   help="results store folder (default: $PAINTERS_RESULTS, else ./results)")
    p.add_argument("--out", metavar="DIR", default=argparse.SUPPRESS,
                   help="output folder (default: $PAINTERS_REPORTS, else results/reports)")
    p.add_argument("--model", action="append", metavar="NAME", default=argparse.SUPPRESS,
                   help="only these models (repeatable or comma separated)")
    p.add_argument("--tasks", action="append", metavar="TASK", default=argparse.SUPPRESS,
                   help="only these tasks (repeatable or comma separated)")


def _names(values) -> list[str] | None:
    names = [t.strip() for v in values or [] for t in v.split(",") if t.strip()]
    return names or None


def _where(args) -> tuple[str, Path, list | None, list | None, str]:
    from glue_painters.outputs import reports_dir
    from glue_painters.results import DEFAULT_ROOT

    results = getattr(args, "results", None) or DEFAULT_ROOT
    if not Path(results).is_dir():
        raise UserError(f"results folder {results} does not exist")
    out = Path(getattr(args, "out", None) or reports_dir())
    command = "painters " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv[1:2] == ["report"] \
        else f"painters report {args.report_command}"
    return results, out, _names(getattr(args, "model", None)), _names(getattr(args, "tasks", None)), command


def _relayer(args) -> int:
    from painters.report.relayer import load_scans
    from painters.report.relayer_figure import section
    from painters.report.section import write_page

    results, out, models, tasks, command = _where(args)
    if not args.relayer_sesoi >= 0:
        raise UserError(f"--sesoi must be a number ≥ 0, got {args.relayer_sesoi}")
    scans = load_scans(results, models, tasks, args.relayer_sesoi)
    if not scans:
        raise UserError(f"no duplicate (relayering) record in {results}"
                        + (f" for {', '.join(models)}" if models else "") + (f" on {', '.join(tasks)}" if tasks else "")
                        + ": scan with a decoder sweep config listing `variants: [duplicate]` and `width: {from: 1, to: 6}`")
    made, lost = section(scans)
    written = write_page(made, out, "relayer", command)
    print(f"relayering scan: {written[-2]} and {written[-1]}; {len(made.figures)} figure(s)")
    for what, who, why in lost:
        print(f"  not drawn: {what} — {who}: {why}")
    for s in scans:
        for t in s.tasks:
            best = t.best
            n = t.counts()
            line = (f"  {s.model} {t.task}: {t.family} cells, each at {t.level:.4%}; {n[stats.SUPPORTED]} supported, "
                    f"{n[stats.CONTRADICTED]} contradicted, {n[stats.NEGLIGIBLE]} negligible")
            if best is not None:
                line += f"; best {best.label} {best.interval.text(3)}"
            held = next((h for h in t.held if h.best), None)
            line += f"; held-out {held.held.text(3)}" if held else "; no held-out re-estimate"
            print(line)
        for task, why in s.skipped:
            print(f"  {s.model} {task}: no heatmap: {why}")
    return 0


def _paths(args) -> int:
    from glue_painters.results import atomic_write_text
    from painters.report.paths import load_paths, section, to_json
    from painters.report.section import write_page

    results, out, models, tasks, command = _where(args)
    if not args.cost > 0:
        raise UserError(f"--cost must be a positive number (layer executions / T; the full model is 1), got {args.cost}")
    if args.permutations < 2 * stats.TAIL_DRAWS:
        raise UserError(f"--permutations must be at least {2 * stats.TAIL_DRAWS}, got {args.permutations}")
    paths, skipped = load_paths(results, models, tasks, args.cost, args.permutations)
    if not paths:
        why = "; ".join(f"{who}: {why}" for who, why in skipped[:3]) or "no decoder record"
        raise UserError(f"no task scored right/wrong per document in {results}: {why}")
    written = write_page(section(paths, skipped, details=True), out, "paths", command)
    atomic_write_text(out / "paths.json", json.dumps(to_json(paths, skipped, command), indent=1) + "\n")
    print(f"per-document paths: {written[-2]}, {written[-1]} and {out / 'paths.json'}")
    for p in paths:
        mean, low, high = p.chance_range()
        print(f"  {p.unit.model} {p.name}: {p.errors} errors of the full model; oracle at cost ≤ {p.cost:g} fixes "
              f"{int(p.fixed.sum())}, chance {mean:.1f} [{low:.0f}, {high:.0f}]")
    return 0


def add_report_subcommands(p) -> None:
    """``relayer`` and ``paths`` under the ``report`` parser ``p`` (optional: ``painters report``
    alone still writes the whole report)."""
    sub = p.add_subparsers(dest="report_command", metavar="SECTION", required=False,
                           help="one section alone: relayer (the block-duplication heatmap), paths (per-document)")
    r = sub.add_parser("relayer", help="the relayering scan's heatmap, verdicts and held-out re-estimate",
                       description="Every duplicate:i=I,j=J,times=K cell of the store against the full model: the "
                                   "difference per task with paired intervals Bonferroni-adjusted over the cells "
                                   "scanned, decided cells marked, and the best cell re-estimated on held-out "
                                   "documents. Writes OUT/relayer.md, OUT/relayer.html and OUT/relayer_<model>.png.")
    _common(r)
    from painters.report.relayer import SESOI

    r.add_argument("--sesoi", dest="relayer_sesoi", type=float, default=SESOI, metavar="DELTA",
                   help=f"smallest effect of interest, in the task's primary metric (default {SESOI:g}: two points "
                        f"of accuracy)")
    r.set_defaults(func=_relayer)
    q = sub.add_parser("paths", help="per document, the plans that get it right; the oracle against chance",
                       description="For every task scored right/wrong per document: the plans that get each "
                                   "document right, the share of the full model's errors some plan of cost at most "
                                   "--cost fixes, and what chance would fix (outcomes permuted across plans). Writes "
                                   "OUT/paths.md, OUT/paths.html and OUT/paths.json.")
    _common(q)
    q.add_argument("--cost", type=float, default=1.0, metavar="C",
                   help="the oracle's budget: plans of at most C x the full model's layer executions (default 1.0)")
    q.add_argument("--permutations", type=int, default=stats.RESAMPLES, metavar="N",
                   help=f"permutations for the chance baseline (default {stats.RESAMPLES})")
    q.set_defaults(func=_paths)
