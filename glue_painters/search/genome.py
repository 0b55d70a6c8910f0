"""The evolutionary search's representation and its edits: genome, mutation, crossover, repair.

Why a gene per layer: it holds non-contiguous skips, parallel groups of any layers, looped groups
and repeated layers (not only the paper's contiguous middle block) while keeping layer order,
which the paper finds should not change; crossover on the layer axis then mixes whole regions.
"""

from __future__ import annotations

import math
import random
from typing import Sequence

from ..plans import Layer, Parallel, Plan, Repeat
from .cost import Cost

SKIP, JOIN = 0, -1


class Genome:
    """One gene per layer, in layer order: ``0`` skip it; ``k >= 1`` start a new step with it,
    run ``k`` times; ``-1`` add it to the previous step as a parallel member (a ``-1`` with no
    step before it starts one). A step with several members is a parallel group; its ``k`` loops
    it (the paper's looped parallel); a single layer with ``k > 1`` is a repeated layer."""

    @staticmethod
    def decode(genes: Sequence[int]) -> Plan | None:
        steps: list[list] = []  # [members, times]
        for i, g in enumerate(genes):
            if g == SKIP:
                continue
            if g == JOIN and steps:
                steps[-1][0].append(i)
            else:
                steps.append([[i], max(1, g)])
        if not steps:
            return None
        return Plan(tuple(Repeat(Layer(m[0]) if len(m) == 1 else Parallel(tuple(m)), k) for m, k in steps))

    @staticmethod
    def encode(plan: Plan, num_layers: int) -> list[int] | None:
        """The genome of an order-preserving plan that runs each layer in at most one step; None
        for other plans (reordered, or a layer in two steps)."""
        genes = [SKIP] * num_layers
        last = -1
        for step in plan.steps:
            unit, times = (step.step, step.times) if isinstance(step, Repeat) else (step, 1)
            members = unit.members if isinstance(unit, Parallel) else (unit.index,)
            if list(members) != sorted(members) or members[0] <= last:
                return None
            genes[members[0]] = times
            for m in members[1:]:
                genes[m] = JOIN
            last = members[-1]
        return genes if Genome.decode(genes) == plan else None


# How often each edit is tried. Exchanges and shifts keep the cost; the structural edits (parallel
# groups, loops) change what runs. Why not uniform: with the full budget in use, a bare drop makes a
# cheaper plan that is nearly always worse (a wasted evaluation: ~10 s on the shared CPU), and the
# structural edits mostly lose at equal executions; they stay in, less often.
MUTATIONS = (("exchange", 0.4), ("shift", 0.3), ("group", 0.15), ("loop", 0.15))


def mutate(genes: list[int], rng: random.Random, max_times: int, drop_weights: Sequence[float]) -> list[int]:
    """One random edit: exchange (a skipped layer back in, another, chosen by ``drop_weights``,
    out), shift a skip to a neighbouring layer, join/split a parallel member, or loop a step once
    more or less."""
    g = list(genes)
    t = len(g)
    ops, op_weights = zip(*MUTATIONS)
    for _ in range(20):
        op = rng.choices(ops, weights=op_weights)[0]
        if op == "exchange":
            skipped = [i for i in range(t) if g[i] == SKIP]
            kept = [i for i in range(t) if g[i] != SKIP]
            if skipped and kept:
                back = rng.choice(skipped)
                w = [drop_weights[j] for j in kept]
                set_skip(g, rng.choices(kept, weights=w)[0] if sum(w) > 0 else rng.choice(kept))
                g[back] = 1
                return g
        if op == "group":
            kept = [i for i in range(1, t) if g[i] != SKIP and any(g[j] != SKIP for j in range(i))]
            if kept:
                i = rng.choice(kept)
                g[i] = 1 if g[i] == JOIN else JOIN
                return g
        if op == "loop":
            starts = [i for i in range(t) if g[i] >= 1]
            if starts:
                i = rng.choice(starts)
                g[i] = min(max_times, max(1, g[i] + rng.choice((-1, 1))))
                return g
        if op == "shift":
            pairs = [i for i in range(t - 1) if (g[i] == SKIP) != (g[i + 1] == SKIP)]
            if pairs:
                i = rng.choice(pairs)
                g[i], g[i + 1] = g[i + 1], g[i]
                if g[0] == JOIN:
                    g[0] = 1
                return g
    return g


def set_skip(g: list[int], i: int) -> None:
    """Skip layer i; if it started a step, the step's next member takes over its start and count."""
    if g[i] >= 1:
        nxt = next((j for j in range(i + 1, len(g)) if g[j] != SKIP), None)
        if nxt is not None and g[nxt] == JOIN:
            g[nxt] = g[i]
    g[i] = SKIP


def one_point_crossover(a: list[int], b: list[int], rng: random.Random) -> list[int]:
    """One-point crossover on the layer axis: a's genes before the cut, b's from it."""
    cut = rng.randrange(1, len(a))
    return list(a[:cut]) + list(b[cut:])


def repair(genes: list[int], budget: float, cost: Cost, rng: random.Random,
            drop_weights: Sequence[float]) -> list[int] | None:
    """Fit the plan to the budget: drop layers (chosen by ``drop_weights``) or repetitions while
    it is over, then put skipped layers back (least droppable first) while one still fits, so no
    child wastes budget it could use. None if nothing fits."""
    g = list(genes)
    while True:
        plan = Genome.decode(g)
        if plan is None:
            return None
        if cost(plan) <= budget:
            break
        kept = [i for i in range(len(g)) if g[i] != SKIP]
        loops = [i for i in range(len(g)) if g[i] > 1]
        weights = [drop_weights[i] for i in kept]
        mean = sum(weights) / len(weights) if sum(weights) > 0 else 1.0
        options = [("skip", i) for i in kept] + [("less", i) for i in loops]
        kind, i = rng.choices(options, weights=weights + [mean] * len(loops))[0] if sum(weights) + len(loops) > 0 \
            else rng.choice(options)
        if kind == "less":
            g[i] -= 1
        else:
            set_skip(g, i)
    for i in sorted((i for i in range(len(g)) if g[i] == SKIP), key=lambda i: (drop_weights[i], i)):
        trial = list(g)
        trial[i] = 1
        if cost(Genome.decode(trial)) <= budget:
            g = trial
    return g


def drop_weights_from(increase: Sequence[float]) -> list[float]:
    """How readily the evolutionary search drops each layer, from each layer's skip-one loss
    increase: ``exp(-increase / median increase)``. Why: a uniformly random drop hits a layer the
    model cannot lose (SmolLM2's layer 0: +8.4 nats) about one time in ten, and on a shared CPU a
    wasted child costs ~10 s; with these weights such drops are rare but never impossible."""
    positive = sorted(max(0.0, x) for x in increase)
    scale = positive[len(positive) // 2] or 1.0
    return [math.exp(-max(0.0, x) / scale) + 1e-9 for x in increase]
