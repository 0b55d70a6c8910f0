"""``painters search verdict``: the plans a search found, benchmarked next to equal-cost baselines.

    painters search verdict --model smollm2 --budget 20,24,26 --tasks arc_easy,lambada_openai --limit 20

The command sits under ``painters search`` (its table is ``painters.search.cli``) and
reads the same calibration options, so it finds the search's loss cache and run files. Its
benchmark results are this track's records (``verdict.verdict``), so the report draws them next
to the paper's variants; its summary goes to ``reports/search_verdict_<model>.{json,md,png}``.
"""

from __future__ import annotations

import json
from pathlib import Path

from painters.options import add_results
from glue_painters.errors import UserError
from painters.search.cli_setup import (argv_tail, budget_list, calibration_options, load_scores, memo_for,
                                            model_name, setup)

TASKS_DEFAULT = "lambada_openai,arc_easy,hellaswag"


def add_verdict(ss) -> None:
    """Add ``verdict`` to the ``painters search`` table ``ss``."""
    v = ss.add_parser(
        "verdict", help="benchmark the plans found next to equal-cost baselines",
        description="Evaluate, with the decoder track's engine, the plans found by 'search run' at each "
                    "budget next to the equal-cost baselines (centred and angular-distance skip blocks, "
                    "BI and skip-one pruning, any paper variant of equal executions) and the full model; "
                    "write one results-store record per plan and task (the decoder track's records, so the report "
                    "plots them with the paper's variants) and a summary JSON + PNG.")
    calibration_options(v)
    v.add_argument("--budget", required=True, type=budget_list, help="comma-separated budgets in layer executions")
    v.add_argument("--methods", default="greedy,evolve",
                   help="which searches' plans to include, comma-separated (greedy, beam<W>, evolve; default "
                        "greedy,evolve); the latest finished run file of each is used")
    v.add_argument("--tasks", default=TASKS_DEFAULT, help=f"benchmarks, comma-separated (default {TASKS_DEFAULT})")
    v.add_argument("--limit", type=int, default=20, help="first N documents of each benchmark (default 20)")
    v.add_argument("--eval-batch-size", type=int, default=16, help="benchmark requests per forward (default 16)")
    v.add_argument("--scores", default=None, help="scores JSON for the angular/BI/skip-one baselines "
                                                  "(default <reports>/search_scores_<model>.json if it exists)")
    v.add_argument("--equal-depth", action="store_true",
                   help="also evaluate the paper's parallel/looped_parallel variants whose depth (sequential steps) "
                        "equals the budget: none of them costs less than T layer executions, so they have no "
                        "equal-execution counterpart")
    v.add_argument("--heldout-text", default=None,
                   help="also report every plan's perplexity on this text (same forms as --text, e.g. wikitext2:test): "
                        "text the search never saw, so a gap against the calibration perplexity shows overfitting "
                        "to the calibration set")
    v.add_argument("--heldout-docs", type=int, default=16, help="texts of --heldout-text to use (default 16)")
    add_results(v)
    v.add_argument("--summary", default=None,
                   help="summary JSON to write (default <reports>/search_verdict_<model>.json, <reports> = "
                        "$PAINTERS_REPORTS, else results/reports)")
    v.set_defaults(func=cmd_verdict)


def cmd_verdict(args) -> int:
    from glue_painters.plans import Plan
    from glue_painters.results import ResultsStore
    from glue_painters.rewire import num_layers

    from decoder_eval.evaluate import load_tasks
    from decoder_eval.sweep import model_fingerprint
    from decoder_eval.verdict import verdict

    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
    data = load_tasks(tasks, args.data_dir, args.limit)  # checked before the model loads
    model, tok, calib, objective, folder = setup(args)
    t = num_layers(model)
    for b in args.budget:
        if not 1 <= b < t:
            raise UserError(f"budget {b:g} must be between 1 and {t - 1} layer executions for a {t}-layer model (the "
                            f"verdict's baselines are shrinking ones; grown plans: 'search run --heldout-text')")
    memo = memo_for(objective, folder)
    rows = _rows(args, t, folder, load_scores(args, calib.fingerprint))
    plans = list({r["plan"]: Plan.parse(r["plan"]) for r in rows}.values())
    print(f"{len(plans)} distinct plans; calibration losses first (cached ones are free)")
    losses = dict(zip((p.text for p in plans), memo.many(plans)))
    memo.save()
    store = ResultsStore(args.results)
    dtype = str(next(model.parameters()).dtype).replace("torch.", "")
    result = verdict(model, tok, rows, data, store, model_key=model_fingerprint(model), model_name=args.model,
                     losses=losses, dtype=dtype, batch_size=args.eval_batch_size, calibration=calib.describe())
    if args.heldout_text:
        _add_heldout(args, result, plans, model, tok, calib, objective)
    _print_table(args, result, calib, tasks)
    _write_summary(args, result, calib, tasks, store)
    return 0


def _rows(args, t: int, folder: Path, scores) -> list[dict]:
    """The full model, then per budget (largest first) the plans each method found and the baselines."""
    from glue_painters.plans import full_plan
    from glue_painters.search import baselines, equal_depth_variants, found_plans

    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    found = found_plans(folder, methods, args.budget)
    rows: list[dict] = [{"budget": float(t), "name": "full", "plan": full_plan(t).text}]
    for b in sorted(args.budget, reverse=True):
        for m in methods:
            if (b, m) in found:
                rows.append({"budget": b, "name": m, "plan": found[(b, m)]})
            else:
                print(f"note: no finished '{m}' run at budget {b:g} in {folder}; run 'painters search run --method "
                      f"{m.rstrip('0123456789')}' first")
        for name, plan in baselines(t, int(b), scores).items():
            rows.append({"budget": b, "name": name, "plan": plan.text})
        if args.equal_depth:
            for name, plan in equal_depth_variants(t, int(b)).items():
                rows.append({"budget": b, "name": name, "plan": plan.text})
    return rows


def _add_heldout(args, result: dict, plans, model, tok, calib, objective) -> None:
    """Every row's perplexity on text the search never saw (its own cache folder, beside the calibration's)."""
    from glue_painters.plans import Plan
    from glue_painters.scores import CalibrationLoss, load_calibration, perplexity

    held = load_calibration(tok, args.heldout_text, args.heldout_docs, args.max_length, args.batch_size,
                            args.data_dir)
    if held.fingerprint == calib.fingerprint:
        raise UserError("--heldout-text gives the calibration set itself; name text the search did not see")
    held_memo = memo_for(CalibrationLoss(model, held, model_id=objective.model_id, progress=objective.progress),
                         Path(args.out) / model_name(args) / held.fingerprint)
    print(f"held-out perplexity on {held.source} ({held.n_tokens} tokens)")
    held_losses = dict(zip((p.text for p in plans), held_memo.many(plans)))
    held_memo.save()
    for r in result["rows"]:
        loss = held_losses[Plan.parse(r["plan"]).text]
        r.update(heldout_loss=loss, heldout_perplexity=perplexity(loss))
    result["heldout"] = held.describe()


def _print_table(args, result: dict, calib, tasks: list[str]) -> None:
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


def _write_summary(args, result: dict, calib, tasks: list[str], store) -> None:
    """The summary JSON, then its Markdown page and plot (drawn from the JSON as written)."""
    from glue_painters.results import atomic_write_json

    from decoder_eval.verdict_report import plot_verdict, write_verdict_markdown

    from glue_painters.outputs import reports_dir

    summary = Path(args.summary or reports_dir() / f"search_verdict_{model_name(args)}.json")
    atomic_write_json(summary, dict(result, model=args.model, calibration=calib.describe(), tasks=tasks,
                                    limit=args.limit, records={"store": str(store.root), "track": result["track"]},
                                    command="painters search verdict " + argv_tail(args)))
    png = plot_verdict(result, tasks, summary.with_suffix(".png"), title=f"{args.model}: plans found vs equal-cost "
                       f"baselines (first {args.limit} docs)")
    md = write_verdict_markdown(json.loads(summary.read_text()), summary.with_suffix(".md"))
    print(f"wrote {summary}, {md} and {png}; records in {store.root}/{result['track']}")
