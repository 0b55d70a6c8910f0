"""The evolutionary search, in the spirit of evolutionary model merging (Akiba et al. 2024).

A population of plans (``genome.Genome``), tournament selection on the objective, one-point
crossover, mutation, elitism; children over the budget are repaired by dropping layers or
repetitions at random. Every random choice comes from one ``random.Random`` seeded from the seed
and the budget, so a re-run replays the same choices and resumes from the cache (``state``).
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Sequence

from tqdm.auto import tqdm

from ..errors import UserError
from ..plans import Plan
from .cost import Cost, executions
from .genome import Genome, mutate, one_point_crossover, repair
from .state import SEARCH_VERSION, Found, Objective, Progress, as_memo, order_key


def evolve(objective: Objective, num_layers: int, budget: float, *, seed: int = 0, generations: int = 10,
           population: int = 12, seeds: Sequence[Plan] = (), cost: Cost = executions, max_times: int = 4,
           elite: int = 2, tournament: int = 3, crossover: float = 0.5, drop_weights: Sequence[float] | None = None,
           run_file: str | Path | None = None, progress: bool = True) -> Found:
    """Evolutionary search for the plan of least objective within ``budget``.

    The first population is the order-preserving ``seeds`` (repaired to the budget) and mutants of
    them (or of the full model when there are none), all distinct. Each generation keeps the
    ``elite`` best and fills up with children: two tournament winners are crossed over (with
    probability ``crossover``, else one is copied), mutated once or twice, repaired to the budget.
    ``drop_weights`` (one per layer; default uniform) bias which layers mutation and repair drop
    (see ``drop_weights_from``).
    """
    if population < 2 or generations < 0 or not 0 <= elite < population or tournament < 1:
        raise UserError(f"evolve needs population >= 2, generations >= 0, 0 <= elite < population and "
                        f"tournament >= 1; got population={population}, generations={generations}, elite={elite}")
    budget = float(budget)
    weights = [1.0] * num_layers if drop_weights is None else [float(w) for w in drop_weights]
    if len(weights) != num_layers or any(w < 0 for w in weights):
        raise UserError(f"drop_weights needs {num_layers} non-negative numbers, got {len(weights)}")
    memo = as_memo(objective)
    rng = random.Random(f"evolve:{seed}:{budget}")  # a str seed hashes the same in every process
    log = Progress(Path(run_file) if run_file else None,
                   {"method": "evolve", "budget": budget, "seed": seed, "generations": generations,
                    "population": population, "seeds": [p.text for p in seeds], "max_times": max_times,
                    "elite": elite, "tournament": tournament, "crossover": crossover,
                    "drop_weights": None if drop_weights is None else weights, "version": SEARCH_VERSION})

    pool: list[list[int]] = []
    for plan in seeds:
        genes = Genome.encode(plan.validate(num_layers), num_layers)
        if genes is None:
            raise UserError(f"evolve seed '{plan.text}' is not order-preserving with each layer in one step")
        pool.append(genes)
    pool = pool or [[1] * num_layers]

    def child_of(parents: list[list[int]]) -> list[int] | None:
        cross = len(parents) > 1 and rng.random() < crossover
        g = one_point_crossover(parents[0], parents[1], rng) if cross else parents[0]
        for _ in range(1 + (rng.random() < 0.5)):
            g = mutate(g, rng, max_times, weights)
        return repair(g, budget, cost, rng, weights)

    members: dict[str, list[int]] = {}
    for genes in pool:
        fixed = repair(genes, budget, cost, rng, weights)
        if fixed is not None and len(members) < population:
            members.setdefault(Genome.decode(fixed).text, fixed)
    for _ in range(50 * population):
        if len(members) >= population:
            break
        g = child_of([rng.choice(pool)])
        if g is not None:
            members.setdefault(Genome.decode(g).text, g)
    if not members:
        raise UserError(f"no plan fits the budget {budget:g}")

    seen: set[str] = set()

    def scored(genomes: dict[str, list[int]]):
        plans = [Genome.decode(g) for g in genomes.values()]
        seen.update(p.text for p in plans)
        values = memo.many(plans)
        return sorted(((p, v, genomes[p.text]) for p, v in zip(plans, values)), key=lambda x: order_key(x[:2]))

    ranked = scored(members)
    log.step(memo, generation=0, best={"plan": ranked[0][0].text, "value": ranked[0][1]},
             population=[{"plan": p.text, "value": v} for p, v, _ in ranked])
    bar = tqdm(range(1, generations + 1), desc=f"evolve (budget {budget:g})", disable=not progress)
    for gen in bar:
        def pick():
            entrants = [rng.randrange(len(ranked)) for _ in range(tournament)]
            return ranked[min(entrants)][2]  # ranked is sorted: the smallest index wins

        nxt = {p.text: g for p, _, g in ranked[:elite]}
        for attempt in range(50 * population):
            if len(nxt) >= population:
                break
            g = child_of([pick(), pick()])
            if g is None:
                continue
            plan = Genome.decode(g)
            # a child this search already evaluated takes a place only when new ones are hard to
            # find (``seen`` is this search's own history, not the shared cache: a resumed run
            # must make the same choices as an uninterrupted one)
            if plan.text not in nxt and (plan.text not in seen or attempt >= 10 * population):
                nxt[plan.text] = g
        ranked = scored(nxt)
        log.step(memo, generation=gen, best={"plan": ranked[0][0].text, "value": ranked[0][1]},
                 population=[{"plan": p.text, "value": v} for p, v, _ in ranked])
        bar.set_postfix(loss=f"{ranked[0][1]:.4f}", evaluated=len(memo))
    bar.close()
    best_plan, best_value, _ = ranked[0]
    found = Found.of("evolve", budget, best_plan, best_value, cost)
    log.finish(memo, {budget: found})
    return found
