"""The core's ``painters search`` commands: ``scores`` (per-layer rankings) and ``run`` (the search).

A run that is interrupted continues where it stopped when the same command is given again: the
run files are named by ``state.run_key`` of the settings, and the loss cache holds every plan
already evaluated (``state``).
"""

from __future__ import annotations

import time

from glue_painters.errors import UserError
from painters.search.cli_setup import argv_tail, cost_from_args, load_scores, memo_for, model_name, scores_path, setup


def cmd_scores(args) -> int:
    from glue_painters.results import atomic_write_json
    from glue_painters.scores import layer_scores, perplexity

    model, tok, calib, objective, folder = setup(args)
    memo = memo_for(objective, folder)
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
    print("  " + "  ".join(f"n={n}: {s}-{s + n - 1} ({d:.3f})" for n, (s, d) in scores.best_block.items()
                           if n <= t // 2))
    path = scores_path(args)
    atomic_write_json(path, scores.to_json(model=args.model, seconds=round(seconds, 1),
                                           command="painters search scores " + argv_tail(args)))
    print(f"wrote {path}")
    return 0


class _ObjectiveView:
    """The memo in the shape ``layer_scores`` expects (``many``), so scores reuse cached losses."""

    def __init__(self, memo, objective):
        self.memo, self.objective = memo, objective

    def many(self, plans):
        return self.memo.many(plans)


def cmd_run(args) -> int:
    """Budgets below the full model's cost shrink it (greedy/beam/evolve as before); budgets at or
    above it grow it (``glue_painters.search.grow``: greedy/beam over duplicated blocks); a list
    may hold both, each part runs its own search on the same loss cache."""
    from glue_painters.models import model_info
    from glue_painters.plans import full_plan
    from glue_painters.rewire import num_layers

    cost, cost_name = cost_from_args(args, model_name(args))
    if args.max_block is not None and args.max_block < 1:
        raise UserError(f"--max-block must be at least 1 layer, got {args.max_block}")
    t = model_info(args.model)["num_layers"]  # from the config: a refusal comes before the weights load
    full_cost = cost(full_plan(t))
    shrink = sorted(b for b in args.budget if b < full_cost)
    grow = sorted(b for b in args.budget if b >= full_cost)
    unit = "layer executions" if cost_name == "executions" else "ms/token"
    if cost_name == "executions" and shrink and shrink[0] < 1:
        raise UserError(f"budget {shrink[0]:g} must be at least 1 layer execution")
    if grow and (args.method == "evolve" or args.objective == "speculative"):
        raise UserError(f"budget {grow[0]:g} is not below the full model's cost ({full_cost:g} {unit}): only a loss "
                        f"search with --method greedy or beam can grow the model (duplicated blocks); "
                        + ("evolve's genome runs each layer in one step" if args.method == "evolve"
                           else "a speculative draft must cost less than the model it drafts for"))
    model, tok, calib, objective, folder = setup(args)
    if num_layers(model) != t:
        raise UserError(f"model '{args.model}': its config says {t} layers, the loaded model has {num_layers(model)}")
    held = None
    if args.heldout_text:
        from painters.search.heldout import load_heldout

        held = load_heldout(args, tok, calib)  # refused before any search runs
    if args.objective == "speculative":
        from glue_painters.speculative import objective_for_search

        objective, folder = objective_for_search(model, tok, calib, folder, args.draft_tokens, args.new_tokens)
    memo = memo_for(objective, folder)
    start = time.perf_counter()
    found = {}
    if shrink:
        settings = dict(method=args.method, budgets=shrink, cost=cost_name)
        search = _run_beam if args.method in ("greedy", "beam") else _run_evolve
        found.update(search(args, memo, t, cost, settings, folder, calib, shrink))
    if grow:
        found.update(_run_grow(args, memo, t, cost, dict(method=args.method, budgets=grow, cost=cost_name), folder,
                               grow))
    seconds = time.perf_counter() - start
    if args.objective == "speculative":
        from glue_painters.speculative import print_drafts

        print_drafts(args.model, found, memo, folder, seconds, t, args.draft_tokens, args.new_tokens)
        return 0
    _print_found(args, found, memo, objective, calib, folder, seconds, t)
    if held is not None:
        _heldout(args, found, memo, model, held, objective, folder, t)
    elif grow:
        print("note: without --heldout-text the losses above are the calibration set's, the very figures the plans "
              "were picked by (biased low: the winner's curse); add --heldout-text wikitext2:test to re-estimate them")
    return 0


def _run_grow(args, memo, t, cost, settings, folder, budgets) -> dict:
    """The growing beam (``grow``) for the budgets at or above the full model's cost."""
    from glue_painters.search.grow import grow
    from glue_painters.search.state import run_key

    width = 1 if args.method == "greedy" else args.width
    name = "greedy_grow" if width == 1 else f"beam{width}_grow"
    settings.update(width=width, max_block=args.max_block, grow=True)
    run_file = folder / f"run-{name}-{run_key(**settings)}.json"
    return grow(memo, t, budgets, width, max_block=args.max_block, cost=cost, method=name, run_file=run_file,
                progress=not args.no_progress)


def _heldout(args, found, memo, model, held, objective, folder, t) -> None:
    """The found plans re-estimated on held-out text (``painters.search.heldout``), printed and
    written to ``<state folder>/heldout-<held-out fingerprint>.json``."""
    from glue_painters.plans import full_plan
    from glue_painters.results import atomic_write_json
    from painters.search.cli_setup import argv_tail
    from painters.search.heldout import report

    full = full_plan(t)
    result = report(found, memo.many([full])[0], model, held, objective.model_id, full.text)
    path = folder / f"heldout-{held.fingerprint}.json"
    atomic_write_json(path, dict(result, model=args.model, command="painters search run " + argv_tail(args)))
    print(f"wrote {path}")


def _run_beam(args, memo, t, cost, settings, folder, calib, budgets) -> dict:
    from glue_painters.search.beam import beam
    from glue_painters.search.state import run_key

    width = 1 if args.method == "greedy" else args.width
    settings.update(width=width)
    name = "greedy" if width == 1 else f"beam{width}"
    run_file = folder / f"run-{name}-{run_key(**settings)}.json"
    return beam(memo, t, budgets, width, cost=cost, method=name, run_file=run_file,
                progress=not args.no_progress)


def _run_evolve(args, memo, t, cost, settings, folder, calib, budgets) -> dict:
    """One evolutionary search per budget, seeded as ``--seeds`` says (baselines and/or the plan a
    finished greedy run found), mutation steered by the scores' skip-one increases."""
    from glue_painters.plans import Plan
    from glue_painters.search.baselines import baselines
    from glue_painters.search.evolve import evolve
    from glue_painters.search.genome import Genome, drop_weights_from
    from glue_painters.search.state import found_plans, run_key

    kinds = {k.strip() for k in args.seeds.split(",") if k.strip()}
    if not kinds or kinds - {"baselines", "greedy", "none"}:
        raise UserError(f"--seeds takes baselines, greedy or none (comma-separated), got '{args.seeds}'")
    scores = load_scores(args, calib.fingerprint)
    weights = drop_weights_from(scores.skip_one_increase) \
        if scores is not None and args.drop_weights == "scores" else None
    greedy_found = found_plans(folder, ["greedy"], budgets) if "greedy" in kinds else {}
    found = {}
    for b in sorted(budgets, reverse=True):
        seeds = list(baselines(t, int(b), scores).values()) if "baselines" in kinds \
            and settings["cost"] == "executions" else []
        if "greedy" in kinds:
            if (b, "greedy") not in greedy_found:
                raise UserError(f"--seeds greedy: no finished greedy run at budget {b:g} in {folder}")
            seeds.append(Plan.parse(greedy_found[(b, "greedy")]))
        seeds = list({p.text: p for p in seeds if Genome.encode(p, t) is not None}.values())
        s = dict(settings, budgets=[b], seed=args.seed, generations=args.generations, population=args.population,
                 max_times=args.max_times, seeds=[p.text for p in seeds], drop_weights=weights)
        run_file = folder / f"run-evolve-{run_key(**s)}.json"
        found[b] = evolve(memo, t, b, seed=args.seed, generations=args.generations, population=args.population,
                          seeds=seeds, cost=cost, max_times=args.max_times, drop_weights=weights,
                          run_file=run_file, progress=not args.no_progress)
    return found


def _print_found(args, found, memo, objective, calib, folder, seconds: float, t: int) -> None:
    from glue_painters.plans import full_plan
    from glue_painters.scores import perplexity

    full = memo.many([full_plan(t)])[0]
    print(f"{args.model}: calibration {calib.source} ({calib.n_tokens} tokens), full loss {full:.4f} "
          f"(perplexity {perplexity(full):.2f})")
    print(f"{'budget':>7} {'method':>12} {'exec':>5} {'depth':>5} {'loss':>8} {'ppl':>9}  plan")
    for b in sorted(found, reverse=True):
        f = found[b]
        print(f"{b:7g} {f.method:>12} {f.executions:5d} {f.depth:5d} {f.value:8.4f} {f.perplexity:9.2f}  {f.plan}")
    print(f"{memo.evaluated} plans evaluated now, {memo.hits} cache hits, {len(memo)} in the cache; "
          f"{objective.layer_runs} layer runs per token; {seconds:.0f} s; state in {folder}")
