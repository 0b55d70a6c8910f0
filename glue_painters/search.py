"""Search for the best rewiring of a model under a compute budget.

The objective is any function ``plan -> float`` to minimise (for a real model: the calibration
loss, ``scores.CalibrationLoss``; in tests: a synthetic function with a planted optimum). An
objective may also have ``many(plans) -> list[float]`` to evaluate several plans together (the
calibration loss shares their common prefixes that way); the searches hand it whole steps or
generations at once. ``Memo`` wraps it so no plan is evaluated twice (keyed by plan hash) and
keeps the cache in a JSON file, written atomically after every step or generation.

Budgets are costs a plan may not exceed: by default ``plan.executions`` (layer runs per token);
with a latency table (``reports/latency_<model>.json``) the measured milliseconds per token.

Three searches:

* ``greedy``: from the full model, repeatedly drop the one layer (or one member of a group, or
  one repetition) whose removal raises the objective least - the classic pruning heuristic;
  ``beam`` with width 1.
* ``beam``: the same, keeping the ``width`` best plans at each level.
* ``evolve``: an evolutionary search in the spirit of evolutionary model merging (Akiba et al.
  2024): a population of plans, tournament selection on the objective, one-point crossover,
  mutation, elitism. Its genome (``Genome``) has one gene per layer - skip it, start a new step
  with it (run k times), or add it to the previous step as a parallel member - so the space holds
  non-contiguous skips, parallel groups of any layers, looped groups and repeated layers, not
  only the paper's contiguous middle block. Layer order is kept (the paper finds reordering
  hurts). Children over the budget are repaired by dropping layers or repetitions at random.

The verdict (``verdict``) puts the plans found on the benchmarks next to equal-cost baselines
(``baselines``: contiguous skip blocks, ShortGPT/BI and skip-one pruning; ``equal_depth_variants``:
the paper's parallel variants of equal depth) with the decoder track's engine and records.

Determinism and resumption: every random choice comes from a local ``random.Random`` seeded from
``seed`` (and the budget), and an objective value depends only on the plan. So a re-run with the
same settings replays the same choices, finds every plan it already evaluated in the cache, and
carries on from where the interrupted run stopped: resuming cannot drift from an uninterrupted
run, by construction. The run file next to the cache records the progress for readers.
"""

from __future__ import annotations

import glob
import hashlib
import json
import math
import random
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Iterable, Sequence

from tqdm.auto import tqdm

from .errors import UserError
from .plans import Layer, Parallel, Plan, PlanError, Repeat, full_plan
from .results import atomic_write_json
from .variants import VariantSpec

Objective = Callable[[Plan], float]
Cost = Callable[[Plan], float]

SEARCH_VERSION = 1


# ---- cost ----------------------------------------------------------------------------------------

def executions(plan: Plan) -> float:
    """Layer executions per token (a parallel group of m costs m, a loop k times its body)."""
    return float(plan.executions)


class LatencyCost:
    """Milliseconds per token of a plan, from a measured latency table.

    The table is ``benchmarks/latency.py``'s JSON (``rows`` with ``plan`` and ``decode_ms_per_token``;
    a plan timed in several parallel modes costs its fastest) or the simpler ``{"records": [{"plan":
    text, "ms_per_token": x}, ...]}`` (a bare list of records also works). A plan measured in the table gets its measurement; any other
    plan gets the least-squares fit ``ms = a + b * executions + c * depth`` over the table (``c``
    only when the table's depths vary independently of executions), which is how a layer stack's
    latency behaves: a fixed part (embeddings, head), a part per layer run, and a part per
    sequential step (a parallel group's members can share a step on parallel hardware).
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        try:
            raw = json.loads(self.path.read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise UserError(f"latency table {self.path}: {e}") from None
        rows = (raw.get("records") or raw.get("rows") or []) if isinstance(raw, dict) else raw
        self.measured: dict[str, float] = {}
        for i, r in enumerate(rows):
            ms = r.get("ms_per_token", r.get("decode_ms_per_token")) if isinstance(r, dict) else None
            if ms is None or "plan" not in r:
                raise UserError(f"latency table {self.path}: record {i} needs 'plan' and 'ms_per_token' "
                                f"(or 'decode_ms_per_token')")
            text = Plan.parse(str(r["plan"])).text
            self.measured[text] = min(float(ms), self.measured.get(text, math.inf))
        points = [(p.executions, p.depth, ms) for p, ms in ((Plan.parse(t), ms) for t, ms in self.measured.items())]
        if len({(e, d) for e, d, _ in points}) < 2:
            raise UserError(f"latency table {self.path}: needs at least two plans of different cost to fit")
        self.coef = _fit(points)

    def __call__(self, plan: Plan) -> float:
        if plan.text in self.measured:
            return self.measured[plan.text]
        a, b, c = self.coef
        return a + b * plan.executions + c * plan.depth

    def describe(self) -> dict:
        return {"cost": "latency_ms_per_token", "table": str(self.path), "fit": list(self.coef)}


def _fit(points) -> tuple[float, float, float]:
    import numpy as np

    e = np.array([p[0] for p in points], float)
    d = np.array([p[1] for p in points], float)
    y = np.array([p[2] for p in points], float)
    if np.linalg.matrix_rank(np.stack([np.ones_like(e), e, d], 1)) == 3:
        a, b, c = np.linalg.lstsq(np.stack([np.ones_like(e), e, d], 1), y, rcond=None)[0]
        return float(a), float(b), float(c)
    a, b = np.linalg.lstsq(np.stack([np.ones_like(e), e], 1), y, rcond=None)[0]
    return float(a), float(b), 0.0


def latency_table(model_name: str, reports_dir: str | Path = "reports") -> Path | None:
    """``reports/latency_<model>.json`` (or the one ``reports/latency_*.json`` naming the model)."""
    direct = Path(reports_dir) / f"latency_{model_name}.json"
    if direct.is_file():
        return direct
    for path in sorted(glob.glob(str(Path(reports_dir) / "latency_*.json"))):
        try:
            if json.loads(Path(path).read_text()).get("model") == model_name:
                return Path(path)
        except (OSError, json.JSONDecodeError, AttributeError):
            continue
    return None


# ---- the cache -----------------------------------------------------------------------------------

class Memo:
    """The objective with a cache keyed by plan hash, optionally kept in a JSON file.

    ``identity`` names the objective (model, calibration tokens, ...): a cache file written for
    another identity is refused rather than silently reused.
    """

    def __init__(self, objective: Objective, path: str | Path | None = None, identity: dict | None = None):
        self.objective = objective
        self.path = Path(path) if path else None
        self.identity = identity or {}
        self.values: dict[str, tuple[str, float]] = {}  # hash -> (text, value)
        self.evaluated = 0  # plans this process evaluated (cache misses)
        self.hits = 0
        if self.path and self.path.exists():
            data = json.loads(self.path.read_text())
            if data.get("identity") != json.loads(json.dumps(self.identity, default=str)):
                raise UserError(f"cache {self.path} belongs to another objective ({data.get('identity')}); "
                                f"pass another --out or remove it")
            self.values = {h: (v["plan"], float(v["value"])) for h, v in data.get("values", {}).items()}

    def __len__(self) -> int:
        return len(self.values)

    def __call__(self, plan: Plan) -> float:
        return self.many([plan])[0]

    def many(self, plans: Sequence[Plan]) -> list[float]:
        todo = list({p.hash: p for p in plans if p.hash not in self.values}.values())
        self.hits += sum(1 for p in plans if p.hash in self.values)
        if todo:
            batch = getattr(self.objective, "many", None)
            values = batch(todo) if batch else [self.objective(p) for p in todo]
            for p, v in zip(todo, values):
                self.values[p.hash] = (p.text, float(v))
            self.evaluated += len(todo)
        return [self.values[p.hash][1] for p in plans]

    def get(self, plan: Plan) -> float | None:
        hit = self.values.get(plan.hash)
        return None if hit is None else hit[1]

    def save(self) -> None:
        if self.path:
            atomic_write_json(self.path, {"identity": self.identity, "values": {
                h: {"plan": t, "value": v} for h, (t, v) in sorted(self.values.items())}})


def _as_memo(objective) -> Memo:
    return objective if isinstance(objective, Memo) else Memo(objective)


# ---- results -------------------------------------------------------------------------------------

@dataclass
class Found:
    """The best plan a search found within one budget."""

    method: str
    budget: float
    plan: str
    value: float  # the objective (calibration loss)
    cost: float
    executions: int
    depth: int

    @property
    def perplexity(self) -> float:
        return math.exp(self.value) if self.value < 700 else float("inf")

    def to_json(self) -> dict:
        return dict(asdict(self), perplexity=self.perplexity)


def _found(method, budget, plan: Plan, value, cost: Cost) -> Found:
    return Found(method, budget, plan.text, value, cost(plan), plan.executions, plan.depth)


def _order(item):
    """Sort key of (plan, value): lower value first; ties broken by plan text, so deterministic."""
    plan, value = item
    return (value if not math.isnan(value) else math.inf, plan.text)


class _Progress:
    """The run file beside the cache: what a search has done so far (written atomically)."""

    def __init__(self, path: Path | None, header: dict):
        self.path, self.header, self.steps = path, header, []

    def step(self, memo: Memo, **info) -> None:
        self.steps.append(info)
        memo.save()
        if self.path:
            atomic_write_json(self.path, dict(self.header, steps=self.steps, done=False))

    def finish(self, memo: Memo, found: dict) -> None:
        memo.save()
        if self.path:
            atomic_write_json(self.path, dict(self.header, steps=self.steps, done=True,
                                              found={str(b): f.to_json() for b, f in found.items()}))


# ---- greedy and beam -----------------------------------------------------------------------------

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
    memo = _as_memo(objective)
    method = method or ("greedy" if width == 1 else f"beam{width}")
    start = (start or full_plan(num_layers)).validate(num_layers)
    log = _Progress(Path(run_file) if run_file else None,
                    {"method": method, "width": width, "budgets": budgets, "start": start.text, "version": SEARCH_VERSION})
    current = [(start, memo.many([start])[0])]
    best: dict[float, tuple[Plan, float]] = {}

    def consider(pairs):
        for plan, value in pairs:
            for b in budgets:
                if cost(plan) <= b and (b not in best or _order((plan, value)) < _order(best[b])):
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
        pairs = sorted(zip(candidates, values), key=_order)
        consider(pairs)
        current = pairs[:width]
        level += 1
        log.step(memo, level=level, beam=[{"plan": p.text, "value": v, "cost": cost(p)} for p, v in current],
                 evaluated=len(candidates))
        bar.update(1)
        bar.set_postfix(cost=cost(current[0][0]), loss=f"{current[0][1]:.4f}")
    bar.close()
    found = {b: _found(method, b, *best[b], cost) for b in budgets if b in best}
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


# ---- the evolutionary search ---------------------------------------------------------------------

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


def _mutate(genes: list[int], rng: random.Random, max_times: int, drop_weights: Sequence[float]) -> list[int]:
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
                _set_skip(g, rng.choices(kept, weights=w)[0] if sum(w) > 0 else rng.choice(kept))
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


def _set_skip(g: list[int], i: int) -> None:
    """Skip layer i; if it started a step, the step's next member takes over its start and count."""
    if g[i] >= 1:
        nxt = next((j for j in range(i + 1, len(g)) if g[j] != SKIP), None)
        if nxt is not None and g[nxt] == JOIN:
            g[nxt] = g[i]
    g[i] = SKIP


def _crossover(a: list[int], b: list[int], rng: random.Random) -> list[int]:
    """One-point crossover on the layer axis: a's genes before the cut, b's from it."""
    cut = rng.randrange(1, len(a))
    return list(a[:cut]) + list(b[cut:])


def _repair(genes: list[int], budget: float, cost: Cost, rng: random.Random,
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
            _set_skip(g, i)
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
    memo = _as_memo(objective)
    rng = random.Random(f"evolve:{seed}:{budget}")  # a str seed hashes the same in every process
    log = _Progress(Path(run_file) if run_file else None,
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
        g = parents[0] if len(parents) == 1 or rng.random() >= crossover else _crossover(parents[0], parents[1], rng)
        for _ in range(1 + (rng.random() < 0.5)):
            g = _mutate(g, rng, max_times, weights)
        return _repair(g, budget, cost, rng, weights)

    members: dict[str, list[int]] = {}
    for genes in pool:
        fixed = _repair(genes, budget, cost, rng, weights)
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
        return sorted(((p, v, genomes[p.text]) for p, v in zip(plans, values)), key=lambda x: _order(x[:2]))

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
    found = _found("evolve", budget, best_plan, best_value, cost)
    log.finish(memo, {budget: found})
    return found


# ---- equal-cost baselines ------------------------------------------------------------------------

def drop(num_layers: int, dropped: Iterable[int]) -> Plan:
    """The full model without the layers ``dropped``."""
    gone = set(dropped)
    keep = [i for i in range(num_layers) if i not in gone]
    if not keep:
        raise PlanError("cannot drop every layer")
    return Plan(tuple(Layer(i) for i in keep))


def skip_block(num_layers: int, start: int, n: int) -> Plan:
    """Layers ``start .. start+n-1`` dropped (a contiguous block)."""
    if not (0 <= start and n >= 0 and start + n <= num_layers):
        raise PlanError(f"block {start}..{start + n - 1} does not fit {num_layers} layers")
    return drop(num_layers, range(start, start + n))


def baselines(num_layers: int, budget: int, scores=None) -> dict[str, Plan]:
    """Plans of exactly ``budget`` executions that the literature would try, by name.

    * ``skip_centred``: the middle block of ``T - budget`` layers dropped (the paper's ``skip``
      keeps ``0..N`` and ``T-N..T-1``, an odd number of layers; at an even budget this keeps one
      layer more at the front);
    * ``skip_angular``: the block of least angular distance (Gromov et al.), from ``scores``;
    * ``prune_bi``: the ``T - budget`` layers of least Block Influence dropped (ShortGPT);
    * ``prune_skip_one``: the ``T - budget`` layers whose single removal costs least dropped;
    * every paper variant whose executions equal ``budget`` (none but ``skip`` can cost less
      than T: ``parallel`` runs every layer once, ``looped_parallel`` more).
    """
    from . import variants

    n = num_layers - int(budget)
    if not 0 < n < num_layers:
        raise UserError(f"budget {budget} must be between 1 and {num_layers - 1} layer executions")
    out = {"skip_centred": skip_block(num_layers, (num_layers - n) // 2, n)}
    if scores is not None:
        if n in scores.best_block:
            out["skip_angular"] = skip_block(num_layers, scores.best_block[n][0], n)
        order_bi = sorted(range(num_layers), key=lambda i: (scores.block_influence[i], i))
        out["prune_bi"] = drop(num_layers, order_bi[:n])
        inc = scores.skip_one_increase
        out["prune_skip_one"] = drop(num_layers, sorted(range(num_layers), key=lambda i: (inc[i], i))[:n])
    for name in ("skip", "parallel", "looped_parallel"):
        for nn in variants.n_range(num_layers):
            for k in ((2, 3, 4) if name == "looped_parallel" else (None,)):
                plan = variants.build(name, num_layers, n=nn, **({"k": k} if k else {}))
                if plan.executions == budget:
                    out[f"{name}:n={nn}" + (f",k={k}" if k else "")] = plan
    return out


def equal_depth_variants(num_layers: int, budget: int) -> dict[str, Plan]:
    """The paper's ``parallel`` / ``looped_parallel`` (k = 2..4) plans whose *depth* (sequential
    steps) equals ``budget``. They run more layer executions than the budget, so they are not an
    equal-cost comparison in executions; they are the equal-latency one on hardware that runs a
    parallel group's members side by side, which is what those variants are for."""
    from . import variants

    out = {}
    for nn in variants.n_range(num_layers):
        for k in (1, 2, 3, 4):
            plan = variants.looped_parallel(num_layers, nn, k)
            if plan.depth == budget:
                out[("parallel" if k == 1 else "looped_parallel") + f":n={nn}" + (f",k={k}" if k > 1 else "")
                    + " [equal depth]"] = plan
    return out


# ---- verdict: the plans on the benchmarks -------------------------------------------------------

def normalized(score: float, full: float, chance: float) -> float:
    """The paper's normalized score: (score - random) / (full - random)."""
    return (score - chance) / (full - chance)


def _spec(row_name: str, plan: Plan):
    """The decoder track's ``PlanSpec`` for a verdict row: a paper variant keeps its name and
    parameters (so its record is the one a decoder sweep of that variant writes, and is shared),
    anything else is a ``custom`` plan keyed by its text."""
    from decoder_eval.sweep import PlanSpec

    name = row_name.split(" [")[0]
    if name == "full" or name.partition(":")[0] in ("skip", "parallel", "looped_parallel"):
        return PlanSpec(VariantSpec.parse(name), plan)
    return PlanSpec(VariantSpec.parse(plan.text), plan)


def verdict(model, tokenizer, rows: Sequence[dict], tasks: dict, store, *, model_key: str, model_name: str,
            losses: dict[str, float], dtype: str = "float32", evaluate=None, batch_size: int = 16,
            calibration: dict | None = None) -> dict:
    """Benchmark every plan of ``rows`` (dicts with ``budget``, ``name``, ``plan`` text; one named
    ``full``) on ``tasks`` (``{name: decoder_eval TaskData}``) and store the results as the decoder
    track's records (``decoder_eval.sweep.save_result``, track ``decoder``), so the report draws
    them with the paper's variants on its accuracy-vs-cost plots. A record that exists is reused,
    so a re-run resumes and a plan a decoder sweep already evaluated costs nothing. Each record
    carries ``search``: the calibration loss and the rows (method or baseline, budget) it is.

    Returns the rows with executions, depth, calibration loss/perplexity, each task's primary score
    and standard error, the normalized scores and their median. A task where the full model does not
    clear chance by the decoder track's margin (``decoder_eval.summary.reliability``) is *flagged*:
    its normalized score would divide noise by noise, so it is left out of the median.
    ``evaluate(model, tokenizer, plans, {task: data}, batch_size=)`` returns ``{plan text: {task:
    TaskResult}}``; by default the decoder engine's ``Evaluator`` with a progress bar (tests pass a
    stand-in).
    """
    from decoder_eval.summary import reliability
    from decoder_eval.sweep import TRACK, key_fields, save_result

    evaluate = evaluate or _evaluate_with_progress
    if not any(r["name"] == "full" for r in rows):
        raise UserError("the verdict needs the full model among its rows")
    specs, labels = {}, {}
    for r in rows:
        plan = Plan.parse(r["plan"])
        specs.setdefault((r["name"] if r["name"] == "full" or ":" in r["name"] else "custom", plan.text),
                         _spec(r["name"], plan))
        labels.setdefault(plan.text, []).append({"budget": r["budget"], "name": r["name"]})
    key = {(spec.variant, spec.params, task): key_fields(model_key, spec, task, tasks[task].subset, dtype)
           for spec in specs.values() for task in tasks}
    for task, data in tasks.items():
        todo = [s for s in specs.values() if not store.has(TRACK, key[(s.variant, s.params, task)])]
        if not todo:
            continue
        plans = list({s.plan.text: s.plan for s in todo}.values())
        results = evaluate(model, tokenizer, plans, {task: data}, batch_size=batch_size)
        for s in todo:
            save_result(store, key[(s.variant, s.params, task)], s, results[s.plan.text][task], model_name=model_name,
                        extra={"search": {"calibration_loss": losses.get(s.plan.text), "calibration": calibration,
                                          "rows": labels[s.plan.text]}})

    def record(row, task):
        plan = Plan.parse(row["plan"])
        s = _spec(row["name"], plan)
        return store.get(TRACK, key[(s.variant, s.params, task)])

    full_row = next(r for r in rows if r["name"] == "full")
    full = {t: record(full_row, t) for t in tasks}
    rel = {t: reliability(t, full[t]) for t in tasks}
    primary = {t: full[t]["primary_metric"] for t in tasks}
    usable = [t for t in tasks if rel[t].ok]
    out = []
    for row in rows:
        recs = {t: record(row, t) for t in tasks}
        plan = Plan.parse(row["plan"])
        score = {t: recs[t]["metrics"][primary[t]] for t in tasks}
        norm = {t: normalized(score[t], rel[t].full, rel[t].chance) for t in usable}
        loss = losses.get(plan.text)
        out.append(dict(row, executions=plan.executions, depth=plan.depth, calibration_loss=loss,
                        calibration_perplexity=None if loss is None else (math.exp(loss) if loss < 700 else math.inf),
                        scores=score, stderr={t: recs[t]["stderr"].get(primary[t]) for t in tasks},
                        metrics={t: recs[t]["metrics"] for t in tasks},
                        normalized=norm, normalized_median=_median(list(norm.values()))))
    return {"rows": out, "primary": primary, "usable": usable,
            "flagged": {t: rel[t].why for t in tasks if not rel[t].ok},
            "n": {t: full[t]["n"] for t in tasks}, "track": TRACK}


def _evaluate_with_progress(model, tokenizer, plans, tasks, batch_size: int = 16) -> dict:
    """``decoder_eval.evaluate_plans`` for one task, with a progress bar over its batches."""
    from decoder_eval.evaluate import Evaluator

    (name, data), = tasks.items()
    evaluator = Evaluator(model, tokenizer, batch_size)
    with tqdm(total=evaluator.work_units(data, len(plans)), desc=f"{name}: {len(plans)} plans", unit="batch") as bar:
        evaluator.progress = bar.update
        results = evaluator.run(data, plans)
    return {text: {name: r} for text, r in results.items()}


def _median(values: list[float]) -> float | None:
    if not values:
        return None
    v = sorted(values)
    mid = len(v) // 2
    return v[mid] if len(v) % 2 else (v[mid - 1] + v[mid]) / 2


def run_key(**fields) -> str:
    """A short, stable name for a run's settings (its run file is named by it)."""
    blob = json.dumps(fields, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:10]


__all__ = [
    "Found", "Genome", "LatencyCost", "Memo", "baselines", "beam", "drop", "drop_weights_from", "evolve", "executions", "greedy",
    "equal_depth_variants", "latency_table", "normalized", "removals", "run_key", "skip_block", "verdict",
]
