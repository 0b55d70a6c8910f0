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
    from glue_painters.rewire import num_layers

    cost, cost_name = cost_from_args(args, model_name(args))
    model, tok, calib, objective, folder = setup(args)
    if args.objective == "speculative":
        from glue_painters.speculative import objective_for_search

        objective, folder = objective_for_search(model, tok, calib, folder, args.draft_tokens, args.new_tokens)
    t = num_layers(model)
    for b in args.budget:
        if cost_name == "executions" and not 1 <= b < t:
            raise UserError(f"budget {b:g} must be between 1 and {t - 1} layer executions for a {t}-layer model")
    memo = memo_for(objective, folder)
    settings = dict(method=args.method, budgets=sorted(args.budget), cost=cost_name)
    start = time.perf_counter()
    search = _run_beam if args.method in ("greedy", "beam") else _run_evolve
    found = search(args, memo, t, cost, settings, folder, calib)
    seconds = time.perf_counter() - start
    if args.objective == "speculative":
        from glue_painters.speculative import print_drafts

        print_drafts(args.model, found, memo, folder, seconds, t, args.draft_tokens, args.new_tokens)
        return 0
    _print_found(args, found, memo, objective, calib, folder, seconds, t)
    return 0


def _run_beam(args, memo, t, cost, settings, folder, calib) -> dict:
    from glue_painters.search.beam import beam
    from glue_painters.search.state import run_key

    width = 1 if args.method == "greedy" else args.width
    settings.update(width=width)
    name = "greedy" if width == 1 else f"beam{width}"
    run_file = folder / f"run-{name}-{run_key(**settings)}.json"
    return beam(memo, t, args.budget, width, cost=cost, method=name, run_file=run_file,
                progress=not args.no_progress)


def _run_evolve(args, memo, t, cost, settings, folder, calib) -> dict:
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
    greedy_found = found_plans(folder, ["greedy"], args.budget) if "greedy" in kinds else {}
    found = {}
    for b in sorted(args.budget, reverse=True):
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
    print(f"{'budget':>7} {'method':>8} {'exec':>5} {'depth':>5} {'loss':>8} {'ppl':>9}  plan")
    for b in sorted(found, reverse=True):
        f = found[b]
        print(f"{b:7g} {f.method:>8} {f.executions:5d} {f.depth:5d} {f.value:8.4f} {f.perplexity:9.2f}  {f.plan}")
    print(f"{memo.evaluated} plans evaluated now, {memo.hits} cache hits, {len(memo)} in the cache; "
          f"{objective.layer_runs} layer runs per token; {seconds:.0f} s; state in {folder}")
