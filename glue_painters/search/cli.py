"""``painters search``: layer scores and plan search under a budget (the core's commands).

    painters search scores  --model smollm2                      # BI, angular distance, skip-one loss
    painters search run     --model smollm2 --budget 20,24,26 --method greedy
    painters search run     --model smollm2 --budget 20,24,26 --method evolve --seed 0

A track may add a search command of its own to the same table (``search_commands``): the decoder
track adds ``painters search verdict`` (``decoder_eval.verdict_cli``), which benchmarks the plans
found. The application shell (``glue_painters.cli``) lists both modules, this one first, so the core
never has to name the track.
"""

from __future__ import annotations

import argparse
import weakref

from . import commands
from .cli_setup import budget_list, calibration_options

# the 'painters search' subcommand table, per top-level table it was added to (see search_commands)
_TABLES: "weakref.WeakKeyDictionary[argparse._SubParsersAction, argparse._SubParsersAction]" = \
    weakref.WeakKeyDictionary()


def add_subparsers(sub) -> None:
    p = sub.add_parser("search", help="layer scores, best rewiring for a budget, and its benchmark verdict",
                       description="Score layers on a calibration set, search for the plan of least calibration "
                                   "loss within a budget of layer executions (or measured ms/token), and evaluate "
                                   "the plans found next to the paper's variants of equal cost.")
    ss = p.add_subparsers(dest="search_command", metavar="SEARCH_COMMAND", required=True)
    _TABLES[sub] = ss
    _add_scores(ss)
    _add_run(ss)


def search_commands(sub) -> argparse._SubParsersAction:
    """The ``painters search`` subcommand table under the top-level table ``sub``, so a track can
    add a command there (the decoder track's ``verdict``) while the dependency points track -> core."""
    try:
        return _TABLES[sub]
    except KeyError:
        raise RuntimeError("add 'painters search' (glue_painters.search.cli) before a command under it") from None


def _add_scores(ss) -> None:
    s = ss.add_parser("scores", help="Block Influence, angular distance and skip-one loss increase per layer",
                      description="Per layer: ShortGPT's Block Influence 1-cos(input, output); the angular distance "
                                  "arccos(cos)/pi between hidden states n layers apart (and the most droppable block "
                                  "of n layers); the calibration loss increase from skipping the layer. Prints a "
                                  "table and writes JSON.")
    calibration_options(s)
    s.add_argument("--angular-tokens", choices=["all", "last"], default="all",
                   help="average the angular distance over every real token (default) or over the last token of "
                        "each text, as Gromov et al. do")
    s.add_argument("--json", dest="json_out", default=None,
                   help="where to write the scores (default reports/search_scores_<model>.json)")
    s.set_defaults(func=commands.cmd_scores)


def _add_run(ss) -> None:
    r = ss.add_parser("run", help="search for the best plan within each budget",
                      description="Minimise the calibration loss over plans within each budget. greedy: drop the "
                                  "layer whose removal hurts least, repeatedly; beam: keep the --width best; evolve: "
                                  "population, crossover, mutation over skips, parallel groups and loops. Losses are "
                                  "cached per plan; re-running the same command resumes.")
    calibration_options(r)
    r.add_argument("--budget", required=True, type=budget_list,
                   help="comma-separated budgets, e.g. 20,24,26 (layer executions, or ms/token with --cost latency)")
    r.add_argument("--method", choices=["greedy", "beam", "evolve"], default="greedy", help="search method (default greedy)")
    r.add_argument("--width", type=int, default=3, help="beam width for --method beam (default 3)")
    r.add_argument("--seed", type=int, default=0, help="random seed for --method evolve (default 0)")
    r.add_argument("--generations", type=int, default=8, help="generations for --method evolve (default 8)")
    r.add_argument("--population", type=int, default=10, help="population size for --method evolve (default 10)")
    r.add_argument("--max-times", type=int, default=3,
                   help="evolve: most times a step may loop (default 3, the paper's looped-parallel k)")
    r.add_argument("--seeds", default="baselines",
                   help="evolve: the first population's plans, comma-separated: 'baselines' (the equal-cost baselines: "
                        "centred skip block and, with scores, the angular-distance block, BI and skip-one pruning), "
                        "'greedy' (the plan a finished greedy run found at the same budget), or 'none' (mutants of the "
                        "full model); default baselines")
    r.add_argument("--drop-weights", choices=["scores", "uniform"], default="scores",
                   help="evolve: which layers mutation and repair drop: weighted by the skip-one loss increase from "
                        "the scores JSON (default, when it exists) or uniformly")
    r.add_argument("--scores", default=None,
                   help="a scores JSON from 'painters search scores' (for evolve's seeds; default "
                        "reports/search_scores_<model>.json if it exists)")
    r.add_argument("--cost", default="executions",
                   help="'executions' (default), 'latency' (reports/latency_<model>.json) or latency:FILE")
    r.add_argument("--objective", choices=["loss", "speculative"], default="loss",
                   help="loss: least calibration loss (default); speculative: the best draft for self-speculative "
                        "decoding, greatest estimated speed-up (greedy acceptance measured on the openings of the "
                        "calibration texts x the draft's relative cost in layer executions)")
    r.add_argument("--draft-tokens", type=int, default=4, help="speculative: tokens the draft proposes (default 4)")
    r.add_argument("--new-tokens", type=int, default=16, help="speculative: tokens decoded per prompt (default 16)")
    r.set_defaults(func=commands.cmd_run)
