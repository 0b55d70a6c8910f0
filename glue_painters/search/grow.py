"""Search above the full model's cost: compositions of duplicated blocks (relayering).

Relayering ("Repeat Your Self") runs a contiguous block of layers ``i..j-1`` once more right after
itself, no training (``variants.duplicate``). The shrinking searches (``beam``) start from the full
model and remove; this one starts from the full model and *adds*, one duplication at a time, and
for each budget keeps the plan of least objective whose cost is at most the budget (the full model
included: when no duplication helps, that is the honest answer).

The move (``duplications``): in the current plan, a run of steps that are consecutive original
layers ``i, i+1, .., j-1`` (at most ``max_block`` of them) is inserted again right after itself.
Why blocks of *original layers as they appear in the plan*, and not any run of the plan's steps:

* from the full model the moves are exactly RYS's single duplications, ``duplicate:i=I,j=J``
  (what the relayering scan scores, so a grown search's first level is that scan's cells);
* a composition stays in the family the literature writes and publishes, e.g. ``0-13,10-20,18-29``
  (13 then 20 are each followed by a jump back); a run of steps straddling such a jump (``12,13,
  10,11``) would be a reordering of layers, a different and far larger space that RYS does not
  use and that the paper finds harmful;
* a move costs its block's width in layer executions, so budgets and block widths read alike.

Why a beam per budget (each expanding only moves that stay within its budget) and not one beam
for all: a duplication's effect on the loss does not grow with its width, so one beam ranked by
loss can fill the largest budget in one wide move and never try the two narrow moves a smaller
budget needs. Every level's candidates, over all budgets, go to the objective in one call
(``Memo.many``), so a calibration loss shares their common prefixes (a duplication at ``j``
shares the full model's first ``j`` layers) and a plan two beams reach is evaluated once.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

from tqdm.auto import tqdm

from ..errors import UserError
from ..plans import Layer, Plan, Repeat, full_plan
from .cost import Cost, executions
from .state import SEARCH_VERSION, Found, Objective, Progress, as_memo, order_key


def _flat(plan: Plan) -> list:
    """The plan's steps with repeated layers spelled out (``5x2`` -> ``5, 5``): ints for layers,
    the step itself for anything else (a parallel group), which no block crosses."""
    out: list = []
    for step in plan.steps:
        if isinstance(step, Layer):
            out.append(step.index)
        elif isinstance(step, Repeat) and isinstance(step.step, Layer):
            out.extend([step.step.index] * step.times)
        else:
            out.append(step)
    return out


def blocks(plan: Plan) -> list[tuple[int, int]]:
    """The maximal runs of consecutive original layers in the plan, as ``(start, end)`` positions
    in its spelled-out step list (end exclusive): where a duplication may take its block from."""
    seq, runs, start = _flat(plan), [], None
    for k, x in enumerate(seq):
        if not isinstance(x, int):
            if start is not None:
                runs.append((start, k))
            start = None
        elif start is None or not (isinstance(seq[k - 1], int) and x == seq[k - 1] + 1):
            if start is not None:
                runs.append((start, k))
            start = k
    if start is not None:
        runs.append((start, len(seq)))
    return runs


def duplications(plan: Plan, max_block: int | None = None) -> list[Plan]:
    """Every plan one duplication bigger: a block of at most ``max_block`` consecutive original
    layers, taken from a run of the plan, inserted again right after itself (distinct plans, in
    order of position then width). On the full model of T layers these are
    ``variants.duplicate(T, i, j)`` for every ``1 <= j - i <= max_block``."""
    if max_block is not None and max_block < 1:
        raise UserError(f"the largest duplicated block must be at least 1 layer, got {max_block}")
    seq, out = _flat(plan), {}
    for a, b in blocks(plan):
        for p in range(a, b):
            for q in range(p + 1, min(b, p + (max_block or b)) + 1):
                new = seq[:q] + seq[p:q] + seq[q:]
                grown = Plan(tuple(Layer(x) if isinstance(x, int) else x for x in new))
                out.setdefault(grown.text, grown)
    return list(out.values())


def grow(objective: Objective, num_layers: int, budgets: Iterable[float], width: int = 1, *,
         max_block: int | None = None, cost: Cost = executions, start: Plan | None = None,
         method: str | None = None, run_file: str | Path | None = None, progress: bool = True) -> dict[float, Found]:
    """Beam search by duplication: for each budget a beam of ``width`` plans (from ``start``, the
    full model by default), extended level by level by every ``duplications`` move that stays
    within that budget, the ``width`` best kept. For each budget, the best plan evaluated whose
    cost is within it (possibly ``start`` itself). A budget's beam stops when no move fits; a
    move must raise the cost (so a latency fit with a non-positive slope cannot loop forever)."""
    if width < 1:
        raise UserError(f"beam width must be at least 1, got {width}")
    start = (start or full_plan(num_layers)).validate(num_layers)
    budgets = sorted({float(b) for b in budgets})
    if not budgets or budgets[0] < cost(start):
        raise UserError(f"a growing search needs budgets of at least the start's cost ({cost(start):g}), "
                        f"got {budgets}")
    memo = as_memo(objective)
    method = method or ("greedy_grow" if width == 1 else f"beam{width}_grow")
    log = Progress(Path(run_file) if run_file else None,
                   {"method": method, "width": width, "budgets": budgets, "start": start.text,
                    "max_block": max_block, "version": SEARCH_VERSION})
    first = (start, memo.many([start])[0])
    beams = {b: [first] for b in budgets}
    best: dict[float, tuple[Plan, float]] = {b: first for b in budgets}
    bar = tqdm(desc=f"{method} search", disable=not progress)
    level = 0
    while True:
        moves = {b: list({c.text: c for p, _ in beams[b] for c in duplications(p, max_block)
                          if cost(p) < cost(c) <= b}.values()) for b in budgets}
        candidates = list({c.text: c for b in budgets for c in moves[b]}.values())
        if not candidates:
            break
        value = dict(zip((c.text for c in candidates), memo.many(candidates)))
        for b in budgets:
            beams[b] = sorted(((c, value[c.text]) for c in moves[b]), key=order_key)[:width]
            for pair in ((c, value[c.text]) for c in candidates if cost(c) <= b):  # any beam's plan that fits
                if order_key(pair) < order_key(best[b]):
                    best[b] = pair
        level += 1
        log.step(memo, level=level, evaluated=len(candidates),
                 beams={str(b): [{"plan": p.text, "value": v, "cost": cost(p)} for p, v in beams[b]] for b in budgets})
        bar.update(1)
        top = min((pair for b in budgets for pair in beams[b]), key=order_key)
        bar.set_postfix(cost=cost(top[0]), loss=f"{top[1]:.4f}")
    bar.close()
    found = {b: Found.of(method, b, *best[b], cost) for b in budgets}
    log.finish(memo, found)
    return found
