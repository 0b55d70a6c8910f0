"""Greedy and beam search by removal: the classic pruning heuristic, widened.

From the full model, repeatedly drop the one layer (or one member of a group, or one repetition)
whose removal raises the objective least (``greedy``: ``beam`` with width 1); ``beam`` keeps the
``width`` best plans at each level, which escapes traps where two removals together beat the best
single one. Each level's candidates go to the objective in one call (``Memo.many``), so a
calibration loss can share their common prefixes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

from tqdm.auto import tqdm

from ..errors import UserError
from ..plans import Parallel, Plan, Repeat, full_plan
from .cost import Cost, executions
from .state import SEARCH_VERSION, Found, Objective, Progress, as_memo, order_key


def removals(plan: Plan) -> list[Plan]:
    """Every plan one edit cheaper: a single layer dropped, one member dropped from a parallel
    group (which saves one execution per loop of the group), or one repetition fewer. Empty when
    nothing can go."""
    out = []
    steps = list(plan.steps)
    for j, step in enumerate(steps):
        unit, times = (step.step, step.times) if isinstance(step, Repeat) else (step, 1)
        options = []
        if times > 1:
            options.append(Repeat(unit, times - 1))
        if isinstance(unit, Parallel):
            for m in unit.members:
                rest = tuple(x for x in unit.members if x != m)
                options.append(Repeat(Parallel(rest), times))
        elif times == 1:
            options.append(None)
        for option in options:
            new = steps[:j] + ([option] if option is not None else []) + steps[j + 1:]
            if new:
                out.append(Plan(tuple(new)))
    return list({p.text: p for p in out}.values())


def beam(objective: Objective, num_layers: int, budgets: Iterable[float], width: int = 3, *,
         cost: Cost = executions, start: Plan | None = None, method: str | None = None,
         run_file: str | Path | None = None, progress: bool = True) -> dict[float, Found]:
    """Beam search by removal: level by level, every one-execution-cheaper plan of the beam is
    evaluated and the ``width`` best are kept. For each budget, the best plan evaluated whose cost
    is within it. Stops once the whole beam is within the smallest budget."""
    if width < 1:
        raise UserError(f"beam width must be at least 1, got {width}")
    budgets = _budgets(budgets)
    memo = as_memo(objective)
    method = method or ("greedy" if width == 1 else f"beam{width}")
    start = (start or full_plan(num_layers)).validate(num_layers)
    log = Progress(Path(run_file) if run_file else None,
                   {"method": method, "width": width, "budgets": budgets, "start": start.text,
                    "version": SEARCH_VERSION})
    current = [(start, memo.many([start])[0])]
    best: dict[float, tuple[Plan, float]] = {}

    def consider(pairs):
        for plan, value in pairs:
            for b in budgets:
                if cost(plan) <= b and (b not in best or order_key((plan, value)) < order_key(best[b])):
                    best[b] = (plan, value)

    consider(current)
    total = max(0, int(max(cost(start) - min(budgets), 0)))
    bar = tqdm(total=total, desc=f"{method} search", disable=not progress)
    level = 0
    while any(cost(p) > min(budgets) for p, _ in current):
        candidates = list({c.text: c for p, _ in current for c in removals(p)}.values())
        if not candidates:
            break
        values = memo.many(candidates)
        pairs = sorted(zip(candidates, values), key=order_key)
        consider(pairs)
        current = pairs[:width]
        level += 1
        log.step(memo, level=level, beam=[{"plan": p.text, "value": v, "cost": cost(p)} for p, v in current],
                 evaluated=len(candidates))
        bar.update(1)
        bar.set_postfix(cost=cost(current[0][0]), loss=f"{current[0][1]:.4f}")
    bar.close()
    found = {b: Found.of(method, b, *best[b], cost) for b in budgets if b in best}
    log.finish(memo, found)
    return found


def greedy(objective: Objective, num_layers: int, budgets: Iterable[float], **kwargs) -> dict[float, Found]:
    """Greedy removal: drop whatever hurts the objective least, one execution at a time."""
    return beam(objective, num_layers, budgets, width=1, **kwargs)


def _budgets(budgets) -> list[float]:
    out = sorted({float(b) for b in budgets}, reverse=True)
    if not out or any(b <= 0 for b in out):
        raise UserError(f"budgets must be positive numbers, got {list(budgets)}")
    return out
