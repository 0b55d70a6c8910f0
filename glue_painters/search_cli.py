"""``painters search``: layer scores, plan search under a budget, and the verdict at equal cost.

    painters search scores  --model smollm2                      # BI, angular distance, skip-one loss
    painters search run     --model smollm2 --budget 20,24,26 --method greedy
    painters search run     --model smollm2 --budget 20,24,26 --method evolve --seed 0
    painters search verdict --model smollm2 --budget 20,24,26 --tasks arc_easy,lambada_openai --limit 20

Every command reads the same calibration options, so the three share one calibration set (its
token fingerprint names the folder where the loss cache and the run files live:
``<out>/<model>/<fingerprint>/``, by default under ``results/search_state``, two levels below
the results store's track folders so its readers never mistake them for records). A run that is
interrupted continues where it stopped when the same command is given again. The verdict's
benchmark results are the decoder track's records (``decoder_eval.sweep.save_result``), so the
report draws them next to the paper's variants; its summary goes to
``reports/search_verdict_<model>.{json,png}``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from .errors import UserError

TASKS_DEFAULT = "lambada_openai,arc_easy,hellaswag"


def _calibration_options(p) -> None:
    g = p.add_argument_group("calibration set (never an evaluation split)")
    g.add_argument("--text", default=None,
                   help="calibration text: a .txt (blank-line separated paragraphs) or .jsonl ('text' field) file, "
                        "or a benchmark train split as TASK:train (arc_easy:train, arc_challenge:train, gsm8k:train); "
                        "default: WikiText-2 train under the data dir if present, else the bundled WikiText-2 sample")
    g.add_argument("--max-docs", type=int, default=8, help="use the first this many texts (default 8)")
    g.add_argument("--max-length", type=int, default=64, help="truncate each text to this many tokens (default 64)")
    g.add_argument("--batch-size", type=int, default=8, help="texts per forward pass (default 8)")
    g.add_argument("--data-dir", default=None, help="benchmark data folder (default: $PAINTERS_DATA or ../shared/data)")
    p.add_argument("--model", default="smollm2", help="model alias, hub id or local path (default smollm2)")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda if available)")
    p.add_argument("--out", default="results/search_state",
                   help="folder for the loss cache and run files (default results/search_state)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bars")


def _budget_list(text: str) -> list[float]:
    """argparse type for --budget (its error is argparse's one-line usage error, exit 2)."""
    import argparse

    try:
        values = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"comma-separated numbers like 20,24,26, not '{text}'") from None
    if not values or any(v <= 0 for v in values):
        raise argparse.ArgumentTypeError(f"positive numbers, not '{text}'")
    return values


def add_subparsers(sub) -> None:
    p = sub.add_parser("search", help="layer scores, best rewiring for a budget, and its benchmark verdict",
                       description="Score layers on a calibration set, search for the plan of least calibration "
                                   "loss within a budget of layer executions (or measured ms/token), and evaluate "
                                   "the plans found next to the paper's variants of equal cost.")
    ss = p.add_subparsers(dest="search_command", metavar="SEARCH_COMMAND", required=True)

    s = ss.add_parser("scores", help="Block Influence, angular distance and skip-one loss increase per layer",
                      description="Per layer: ShortGPT's Block Influence 1-cos(input, output); the angular distance "
                                  "arccos(cos)/pi between hidden states n layers apart (and the most droppable block "
                                  "of n layers); the calibration loss increase from skipping the layer. Prints a "
                                  "table and writes JSON.")
    _calibration_options(s)
    s.add_argument("--angular-tokens", choices=["all", "last"], default="all",
                   help="average the angular distance over every real token (default) or over the last token of "
                        "each text, as Gromov et al. do")
    s.add_argument("--json", dest="json_out", default=None,
                   help="where to write the scores (default reports/search_scores_<model>.json)")
    s.set_defaults(func=cmd_scores)

    r = ss.add_parser("run", help="search for the best plan within each budget",
                      description="Minimise the calibration loss over plans within each budget. greedy: drop the "
                                  "layer whose removal hurts least, repeatedly; beam: keep the --width best; evolve: "
                                  "population, crossover, mutation over skips, parallel groups and loops. Losses are "
                                  "cached per plan; re-running the same command resumes.")
    _calibration_options(r)
    r.add_argument("--budget", required=True, type=_budget_list,
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
    r.set_defaults(func=cmd_run)

    v = ss.add_parser("verdict", help="benchmark the plans found next to equal-cost baselines",
                      description="Evaluate, with the decoder track's engine, the plans found by 'search run' at each "
                                  "budget next to the equal-cost baselines (centred and angular-distance skip blocks, "
                                  "BI and skip-one pruning, any paper variant of equal executions) and the full model; "
                                  "write one results-store record per plan and task (the decoder track's records, so the report "
                                  "plots them with the paper's variants) and a summary JSON + PNG.")
    _calibration_options(v)
    v.add_argument("--budget", required=True, type=_budget_list, help="comma-separated budgets in layer executions")
    v.add_argument("--methods", default="greedy,evolve",
                   help="which searches' plans to include, comma-separated (greedy, beam<W>, evolve; default "
                        "greedy,evolve); the latest finished run file of each is used")
    v.add_argument("--tasks", default=TASKS_DEFAULT, help=f"benchmarks, comma-separated (default {TASKS_DEFAULT})")
    v.add_argument("--limit", type=int, default=20, help="first N documents of each benchmark (default 20)")
    v.add_argument("--eval-batch-size", type=int, default=16, help="benchmark requests per forward (default 16)")
    v.add_argument("--scores", default=None, help="scores JSON for the angular/BI/skip-one baselines "
                                                  "(default reports/search_scores_<model>.json if it exists)")
    v.add_argument("--equal-depth", action="store_true",
                   help="also evaluate the paper's parallel/looped_parallel variants whose depth (sequential steps) "
                        "equals the budget: none of them costs less than T layer executions, so they have no "
                        "equal-execution counterpart")
    v.add_argument("--heldout-text", default=None,
                   help="also report every plan's perplexity on this text (same forms as --text, e.g. wikitext2:test): "
                        "text the search never saw, so a gap against the calibration perplexity shows overfitting "
                        "to the calibration set")
    v.add_argument("--heldout-docs", type=int, default=16, help="texts of --heldout-text to use (default 16)")
    v.add_argument("--results", default=None, help="results store root (default $PAINTERS_RESULTS or results)")
    v.add_argument("--summary", default=None,
                   help="summary JSON to write (default reports/search_verdict_<model>.json)")
    v.set_defaults(func=cmd_verdict)


# ---- shared set-up --------------------------------------------------------------------------------

def _model_name(args) -> str:
    return Path(args.model).name


def _setup(args):
    """Load the model and calibration set; the loss objective and its cache folder."""
    import torch

    from .models import load_model, model_info, source_of
    from .scores import CalibrationLoss, load_calibration

    if model_info(args.model)["architecture"] in ("bert", "roberta", "mpnet"):
        raise UserError(f"model '{args.model}' is an encoder: the calibration loss needs a causal LM")
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    model, tok = load_model(args.model, device=device)
    tok.padding_side = "right"
    calib = load_calibration(tok, args.text, args.max_docs, args.max_length, args.batch_size, args.data_dir)
    fingerprint = source_of(model).fingerprint
    objective = CalibrationLoss(model, calib, model_id=fingerprint, progress=not args.no_progress)
    folder = Path(args.out) / _model_name(args) / calib.fingerprint
    return model, tok, calib, objective, folder


def _memo(objective, folder: Path):
    from .search import Memo

    return Memo(objective, folder / "cache.json", identity=objective.describe())


def _scores_path(args) -> Path:
    return Path(getattr(args, "json_out", None) or f"reports/search_scores_{_model_name(args)}.json")


def _load_scores(args, calib_fp: str):
    from .scores import LayerScores

    path = Path(args.scores) if args.scores else _scores_path(args)
    if not path.exists():
        if args.scores:
            raise UserError(f"--scores {path} not found")
        return None
    obj = json.loads(path.read_text())
    fp = obj.get("calibration", {}).get("fingerprint")
    if fp != calib_fp:
        print(f"note: {path} was computed on another calibration set ({fp}); its rankings are used as given")
    return LayerScores.from_json(obj)


# ---- commands -------------------------------------------------------------------------------------

def cmd_scores(args) -> int:
    from .results import atomic_write_json
    from .scores import layer_scores, perplexity

    model, tok, calib, objective, folder = _setup(args)
    memo = _memo(objective, folder)
    start = time.perf_counter()
    scores = layer_scores(model, calib, objective=_ObjectiveView(memo, objective),
                          angular_tokens=args.angular_tokens, progress=not args.no_progress)
    memo.save()
    seconds = time.perf_counter() - start
    t = scores.num_layers
    print(f"{args.model}: {t} layers; calibration {calib.source}, {calib.n_docs} texts, {calib.n_tokens} tokens; "
          f"full loss {scores.full_loss:.4f} (perplexity {perplexity(scores.full_loss):.2f}); {seconds:.0f} s")
    print(f"{'layer':>5} {'BI':>8} {'skip-one dloss':>15} {'angular d(l,1)':>15}")
    inc = scores.skip_one_increase
    for i in range(t):
        print(f"{i:5d} {scores.block_influence[i]:8.4f} {inc[i]:15.4f} {scores.angular[1][i]:15.4f}")
    print("most droppable contiguous block of n layers (least angular distance d(l, n)):")
    print("  " + "  ".join(f"n={n}: {s}-{s + n - 1} ({d:.3f})" for n, (s, d) in scores.best_block.items() if n <= t // 2))
    path = _scores_path(args)
    atomic_write_json(path, scores.to_json(model=args.model, seconds=round(seconds, 1),
                                           command="painters search scores " + _argv_tail(args)))
    print(f"wrote {path}")
    return 0


class _ObjectiveView:
    """The memo in the shape ``layer_scores`` expects (``many``), so scores reuse cached losses."""

    def __init__(self, memo, objective):
        self.memo, self.objective = memo, objective

    def many(self, plans):
        return self.memo.many(plans)


def _cost(args, model_name: str):
    from .search import LatencyCost, executions, latency_table

    if args.cost == "executions":
        return executions, "executions"
    if args.cost == "latency":
        path = latency_table(model_name)
        if path is None:
            raise UserError(f"--cost latency: no reports/latency_{model_name}.json (or latency_*.json for this "
                            f"model) exists yet; use --cost executions or latency:FILE")
        return LatencyCost(path), f"latency:{path}"
    if args.cost.startswith("latency:"):
        return LatencyCost(args.cost.split(":", 1)[1]), args.cost
    raise UserError(f"--cost must be executions, latency or latency:FILE, got '{args.cost}'")


def _argv_tail(args) -> str:
    import sys

    return " ".join(sys.argv[3:]) if len(sys.argv) > 3 else ""


def cmd_run(args) -> int:
    from . import search
    from .plans import Plan, full_plan
    from .rewire import num_layers
    from .scores import perplexity

    cost, cost_name = _cost(args, _model_name(args))
    model, tok, calib, objective, folder = _setup(args)
    if args.objective == "speculative":
        from .speculative import objective_for_search

        objective, folder = objective_for_search(model, tok, calib, folder, args.draft_tokens, args.new_tokens)
    t = num_layers(model)
    for b in args.budget:
        if cost_name == "executions" and not 1 <= b < t:
            raise UserError(f"budget {b:g} must be between 1 and {t - 1} layer executions for a {t}-layer model")
    memo = _memo(objective, folder)
    progress = not args.no_progress
    settings = dict(method=args.method, budgets=sorted(args.budget), cost=cost_name)
    start = time.perf_counter()
    if args.method in ("greedy", "beam"):
        width = 1 if args.method == "greedy" else args.width
        settings.update(width=width)
        name = "greedy" if width == 1 else f"beam{width}"
        run_file = folder / f"run-{name}-{search.run_key(**settings)}.json"
        found = search.beam(memo, t, args.budget, width, cost=cost, method=name, run_file=run_file, progress=progress)
    else:
        kinds = {k.strip() for k in args.seeds.split(",") if k.strip()}
        if not kinds or kinds - {"baselines", "greedy", "none"}:
            raise UserError(f"--seeds takes baselines, greedy or none (comma-separated), got '{args.seeds}'")
        scores = _load_scores(args, calib.fingerprint)
        weights = search.drop_weights_from(scores.skip_one_increase) \
            if scores is not None and args.drop_weights == "scores" else None
        greedy_found = _found_plans(folder, ["greedy"], args.budget) if "greedy" in kinds else {}
        found = {}
        for b in sorted(args.budget, reverse=True):
            seeds = list(search.baselines(t, int(b), scores).values()) if "baselines" in kinds \
                and cost_name == "executions" else []
            if "greedy" in kinds:
                if (b, "greedy") not in greedy_found:
                    raise UserError(f"--seeds greedy: no finished greedy run at budget {b:g} in {folder}")
                seeds.append(Plan.parse(greedy_found[(b, "greedy")]))
            seeds = list({p.text: p for p in seeds if search.Genome.encode(p, t) is not None}.values())
            s = dict(settings, budgets=[b], seed=args.seed, generations=args.generations, population=args.population,
                     max_times=args.max_times, seeds=[p.text for p in seeds], drop_weights=weights)
            run_file = folder / f"run-evolve-{search.run_key(**s)}.json"
            found[b] = search.evolve(memo, t, b, seed=args.seed, generations=args.generations,
                                     population=args.population, seeds=seeds, cost=cost, max_times=args.max_times,
                                     drop_weights=weights, run_file=run_file, progress=progress)
    seconds = time.perf_counter() - start
    if args.objective == "speculative":
        from .speculative import print_drafts

        print_drafts(args.model, found, memo, folder, seconds, t, args.draft_tokens, args.new_tokens)
        return 0
    full = memo.many([full_plan(t)])[0]
    print(f"{args.model}: calibration {calib.source} ({calib.n_tokens} tokens), full loss {full:.4f} "
          f"(perplexity {perplexity(full):.2f})")
    print(f"{'budget':>7} {'method':>8} {'exec':>5} {'depth':>5} {'loss':>8} {'ppl':>9}  plan")
    for b in sorted(found, reverse=True):
        f = found[b]
        print(f"{b:7g} {f.method:>8} {f.executions:5d} {f.depth:5d} {f.value:8.4f} {f.perplexity:9.2f}  {f.plan}")
    print(f"{memo.evaluated} plans evaluated now, {memo.hits} cache hits, {len(memo)} in the cache; "
          f"{objective.layer_runs} layer runs per token; {seconds:.0f} s; state in {folder}")
    return 0


# ---- verdict --------------------------------------------------------------------------------------

def _finished_runs(folder: Path, method: str) -> list[dict]:
    """Finished run files of one method, newest first."""
    runs = []
    for path in sorted(folder.glob(f"run-{method}-*.json"), key=lambda p: p.stat().st_mtime, reverse=True):
        data = json.loads(path.read_text())
        if data.get("done"):
            runs.append(data)
    return runs


def _found_plans(folder: Path, methods: list[str], budgets: list[float]) -> dict[tuple[float, str], str]:
    out = {}
    for method in methods:
        for data in _finished_runs(folder, method):
            for b, f in data.get("found", {}).items():
                key = (float(b), method)
                if float(b) in budgets and key not in out:
                    out[key] = f["plan"]
    return out


def cmd_verdict(args) -> int:
    from decoder_eval.evaluate import load_tasks

    from decoder_eval.sweep import model_fingerprint

    from . import search
    from .plans import Plan, full_plan
    from .results import ResultsStore, atomic_write_json
    from .rewire import num_layers
    from .scores import perplexity

    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
    data = load_tasks(tasks, args.data_dir, args.limit)  # checked before the model loads
    model, tok, calib, objective, folder = _setup(args)
    t = num_layers(model)
    for b in args.budget:
        if not 1 <= b < t:
            raise UserError(f"budget {b:g} must be between 1 and {t - 1} layer executions for a {t}-layer model")
    memo = _memo(objective, folder)
    scores = _load_scores(args, calib.fingerprint)
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    found = _found_plans(folder, methods, args.budget)
    rows: list[dict] = [{"budget": float(t), "name": "full", "plan": full_plan(t).text}]
    for b in sorted(args.budget, reverse=True):
        for m in methods:
            if (b, m) in found:
                rows.append({"budget": b, "name": m, "plan": found[(b, m)]})
            else:
                print(f"note: no finished '{m}' run at budget {b:g} in {folder}; run 'painters search run --method "
                      f"{m.rstrip('0123456789')}' first")
        for name, plan in search.baselines(t, int(b), scores).items():
            rows.append({"budget": b, "name": name, "plan": plan.text})
        if args.equal_depth:
            for name, plan in search.equal_depth_variants(t, int(b)).items():
                rows.append({"budget": b, "name": name, "plan": plan.text})
    plans = list({r["plan"]: Plan.parse(r["plan"]) for r in rows}.values())
    print(f"{len(plans)} distinct plans; calibration losses first (cached ones are free)")
    losses = dict(zip((p.text for p in plans), memo.many(plans)))
    memo.save()
    store = ResultsStore(args.results)
    dtype = str(next(model.parameters()).dtype).replace("torch.", "")
    result = search.verdict(model, tok, rows, data, store, model_key=model_fingerprint(model), model_name=args.model,
                            losses=losses, dtype=dtype, batch_size=args.eval_batch_size, calibration=calib.describe())

    if args.heldout_text:
        from .scores import CalibrationLoss, load_calibration

        held = load_calibration(tok, args.heldout_text, args.heldout_docs, args.max_length, args.batch_size,
                                args.data_dir)
        if held.fingerprint == calib.fingerprint:
            raise UserError("--heldout-text gives the calibration set itself; name text the search did not see")
        held_memo = _memo(CalibrationLoss(model, held, model_id=objective.model_id, progress=objective.progress),
                          Path(args.out) / _model_name(args) / held.fingerprint)
        print(f"held-out perplexity on {held.source} ({held.n_tokens} tokens)")
        held_losses = dict(zip((p.text for p in plans), held_memo.many(plans)))
        held_memo.save()
        for r in result["rows"]:
            loss = held_losses[Plan.parse(r["plan"]).text]
            r.update(heldout_loss=loss, heldout_perplexity=perplexity(loss))
        result["heldout"] = held.describe()
    print(f"calibration {calib.source}, {calib.n_tokens} tokens; benchmarks: first {args.limit} documents; primary "
          f"metric {', '.join(f'{k}={v}' for k, v in result['primary'].items())}")
    for task, why in result["flagged"].items():
        print(f"flagged {task}: {why}; left out of the normalized median")
    held = "heldout" in result
    print(f"{'budget':>6} {'name':>38} {'exec':>4} {'ppl':>8} " + (f"{'held ppl':>8} " if held else "")
          + " ".join(f"{x[:10]:>10}" for x in tasks) + f" {'norm.med':>8}  plan")
    for r in result["rows"]:
        cells = " ".join(f"{r['scores'][x]:10.3f}" for x in tasks)
        med = "-" if r["normalized_median"] is None else f"{r['normalized_median']:.3f}"
        hp = f"{r['heldout_perplexity']:8.1f} " if held else ""
        print(f"{r['budget']:6g} {r['name']:>38} {r['executions']:4d} {r['calibration_perplexity']:8.1f} {hp}{cells} "
              f"{med:>8}  {r['plan']}")
    summary = Path(args.summary or f"reports/search_verdict_{_model_name(args)}.json")
    atomic_write_json(summary, dict(result, model=args.model, calibration=calib.describe(), tasks=tasks,
                                    limit=args.limit, records={"store": str(store.root), "track": result["track"]},
                                    command="painters search verdict " + _argv_tail(args)))
    png = plot_verdict(result, tasks, summary.with_suffix(".png"), title=f"{args.model}: plans found vs equal-cost "
                       f"baselines (first {args.limit} docs)")
    md = write_verdict_markdown(json.loads(summary.read_text()), summary.with_suffix(".md"))
    print(f"wrote {summary}, {md} and {png}; records in {store.root}/{result['track']}")
    return 0


def verdict_markdown(summary: dict) -> str:
    """The verdict summary JSON as a Markdown page: per budget, the plans found and the equal-cost
    baselines with their perplexities and benchmark scores, best held-out (else calibration)
    perplexity first, so the page answers "which plan at this cost" without the JSON."""
    tasks, rows = summary["tasks"], summary["rows"]
    held = "heldout" in summary
    ppl = "heldout_perplexity" if held else "calibration_perplexity"
    lines = [f"# Plan search verdict: {summary['model']}", "", "Command:", "", f"```bash\n{summary['command']}\n```", "",
             f"Calibration (the search's objective): {summary['calibration']['source']}, "
             f"{summary['calibration']['n_tokens']} tokens." + (
                 f" Held-out text (never seen by the search): {summary['heldout']['source']}, "
                 f"{summary['heldout']['n_tokens']} tokens." if held else ""),
             f"Benchmarks: the first {summary['limit']} documents of " + ", ".join(
                 f"{t} ({summary['primary'][t]}, n={summary['n'][t]})" for t in tasks) + ".", ""]
    for task, why in summary.get("flagged", {}).items():
        lines.append(f"- flagged {task}: {why}; left out of the normalized median")
    head = ["budget", "name", "executions", "calib. ppl"] + (["held-out ppl"] if held else []) + tasks + [
        "norm. median", "plan"]
    lines += ["", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for budget in sorted({r["budget"] for r in rows}, reverse=True):
        for r in sorted((r for r in rows if r["budget"] == budget), key=lambda r: (r[ppl] is None, r[ppl] or 0)):
            med = "–" if r["normalized_median"] is None else f"{r['normalized_median']:.2f}"
            cells = [f"{r['budget']:g}", r["name"], str(r["executions"]), _num(r["calibration_perplexity"])]
            cells += [_num(r["heldout_perplexity"])] if held else []
            cells += [f"{r['scores'][t]:.3f} ± {r['stderr'][t]:.3f}" if r["stderr"].get(t) is not None
                      else f"{r['scores'][t]:.3f}" for t in tasks]
            lines.append("| " + " | ".join(cells + [med, f"`{r['plan']}`"]) + " |")
    lines += ["", "Scores are the primary metric ± its standard error; perplexities are exp(mean token loss)."]
    return "\n".join(lines) + "\n"


def _num(x) -> str:
    return "–" if x is None else f"{x:.1f}"


def write_verdict_markdown(summary: dict, path: Path) -> Path:
    from .results import atomic_write_text

    atomic_write_text(Path(path), verdict_markdown(summary))
    return Path(path)


def _series(name: str) -> str:
    """The line a verdict row belongs to: the paper's equal-depth variants form one line per kind."""
    if name.endswith("[equal depth]"):
        kind, _, params = name.split(" [")[0].partition(":")
        k = [p for p in params.split(",") if p.startswith("k=")]
        return f"{kind}{' ' + k[0] if k else ''} (equal depth)"
    return name


def plot_verdict(result: dict, tasks: list[str], path: Path, title: str = "") -> Path:
    """Against layer executions: calibration perplexity, held-out perplexity (when measured) and
    each task's primary score; one line per search method or baseline."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = result["rows"]
    panels = [("calibration perplexity", lambda r: r["calibration_perplexity"], True)]
    if "heldout" in result:
        panels.append((f"held-out perplexity ({result['heldout']['source']})", lambda r: r["heldout_perplexity"], True))
    for task in tasks:
        flag = " - flagged" if task in result["flagged"] else ""
        panels.append((f"{task} ({result['primary'][task]}){flag}", lambda r, t=task: r["scores"][t], False))
    series = list(dict.fromkeys(_series(r["name"]) for r in rows))
    markers = dict(zip(series, "*ovs^D<>ph+x"))
    fig, axes = plt.subplots(1, len(panels), figsize=(3.9 * len(panels) + 2.2, 3.7), squeeze=False)
    for ax, (label, value, log) in zip(axes[0], panels):
        for name in series:
            pts = [(r["executions"], value(r)) for r in sorted(rows, key=lambda r: r["budget"])
                   if _series(r["name"]) == name]  # in budget order: equal-depth rows share their executions
            ax.plot(*zip(*pts), marker=markers.get(name, "."), linestyle="-" if len(pts) > 1 else "", label=name,
                    alpha=0.85)
        if log:
            ax.set_yscale("log")
        ax.set_title(label, fontsize=9)
        ax.set_xlabel("layer executions per token", fontsize=8)
    axes[0][-1].legend(fontsize=7, loc="center left", bbox_to_anchor=(1.02, 0.5))
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)
    return path


__all__ = ["add_subparsers", "plot_verdict"]
