"""``painters search``: layer scores and plan search under a budget (the core's commands).

    painters search scores  --model smollm2                      # BI, angular distance, skip-one loss
    painters search run     --model smollm2 --budget 20,24,26 --method greedy
    painters search run     --model smollm2 --budget 20,24,26 --method evolve --seed 0
    painters search run     --model smollm2 --budget 32,34,36 --method beam --heldout-text wikitext2:test

    painters search verdict --model smollm2 --budget 20,24,26 --tasks arc_easy,lambada_openai

``verdict`` benchmarks the plans found with the decoder track (``painters.search.verdict``); the
three commands are added here, in one table, so nothing depends on the order modules are listed in.
"""

from __future__ import annotations

from painters.search import commands
from painters.search.cli_setup import budget_list, calibration_options
from painters.search.heldout import add_heldout_options
from painters.search.verdict import add_verdict


def add_subparsers(sub) -> None:
    p = sub.add_parser("search", help="layer scores, best rewiring for a budget, and its benchmark verdict",
                       description="Score layers on a calibration set, search for the plan of least calibration "
                                   "loss within a budget of layer executions (or measured ms/token), and evaluate "
                                   "the plans found next to the paper's variants of equal cost.")
    ss = p.add_subparsers(dest="search_command", metavar="SEARCH_COMMAND", required=True)
    _add_scores(ss)
    _add_run(ss)
    add_verdict(ss)


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
                   help="where to write the scores (default <reports>/search_scores_<model>.json, <reports> = "
                        "$PAINTERS_REPORTS, else results/reports)")
    s.set_defaults(func=commands.cmd_scores)


def _add_run(ss) -> None:
    r = ss.add_parser("run", help="search for the best plan within each budget (below or above the full model's cost)",
                      description="Minimise the calibration loss over plans within each budget. A budget below the "
                                  "full model's cost shrinks it: greedy drops the layer whose removal hurts least, "
                                  "repeatedly; beam keeps the --width best; evolve: population, crossover, mutation "
                                  "over skips, parallel groups and loops. A budget at or above the full model's cost "
                                  "grows it (relayering, automatically: no flag): greedy/beam start from the full model "
                                  "and insert a duplicated block (consecutive original layers i..j-1 of the current "
                                  "plan, run again right after themselves, at most --max-block wide) while it fits, a "
                                  "beam per budget; the answer is the best plan evaluated whose cost is at most the "
                                  "budget, the full model included (e.g. --budget 32,34,36 on a 30-layer model; a list "
                                  "may mix budgets below and above). evolve cannot grow (one line, exit 2). "
                                  "--heldout-text re-estimates the plans found on text the search never saw. Losses "
                                  "are cached per plan; re-running the same command resumes. Found plans are plain "
                                  "plans: 'painters export --plan PLAN' saves them as a checkpoint.")
    calibration_options(r)
    r.add_argument("--budget", required=True, type=budget_list,
                   help="comma-separated budgets, e.g. 20,24,26 (layer executions, or ms/token with --cost latency); "
                        "those at or above the full model's cost (e.g. 32,34,36 on 30 layers) grow the model")
    r.add_argument("--method", choices=["greedy", "beam", "evolve"], default="greedy", help="search method (default greedy)")
    r.add_argument("--width", type=int, default=3, help="beam width for --method beam (default 3)")
    r.add_argument("--max-block", type=int, default=None,
                   help="growing: widest block a duplication may copy, in layers (default: any that fits the budget)")
    add_heldout_options(r)
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
                        "<reports>/search_scores_<model>.json if it exists)")
    r.add_argument("--cost", default="executions",
                   help="'executions' (default), 'latency' (reports/latency_<model>.json) or latency:FILE")
    r.add_argument("--objective", choices=["loss", "speculative"], default="loss",
                   help="loss: least calibration loss (default); speculative: the best draft for self-speculative "
                        "decoding, greatest estimated speed-up (greedy acceptance measured on the openings of the "
                        "calibration texts x the draft's relative cost in layer executions)")
    r.add_argument("--draft-tokens", type=int, default=4, help="speculative: tokens the draft proposes (default 4)")
    r.add_argument("--new-tokens", type=int, default=16, help="speculative: tokens decoded per prompt (default 16)")
    r.set_defaults(func=commands.cmd_run)
