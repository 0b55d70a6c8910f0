"""Per-document paths (issue 26, item 5): for each document, the plans that get it right, and how
much of the full model's errors an oracle over cheap plans would fix, beside what chance would.

**Right and wrong.** A document is got right by a plan when its per-document score of the task's
primary metric is 1 (records' ``per_item``). Only *accuracy-type* units are read: every plan's
per-document values 0 or 1 (lm-eval's ``acc``, ``acc_norm``, ``exact_match`` per document); a
perplexity or an F1 has no right/wrong and is listed as skipped. For a multiple-choice task
(ARC-Easy, HellaSwag) lm-eval's per-document ``acc`` is 1 when the gold choice has the highest
loglikelihood and ``acc_norm`` when it has the highest loglikelihood per byte of its text; the
task's primary metric decides which (HellaSwag: ``acc_norm``), as in every other table.

**The oracle.** A plan's cost is its layer executions over the model's layer count T (``full`` is
1.0; a skip of 6 layers of 30 is 0.8; a duplicated block of 4 is 34/30). The oracle at cost c
counts the documents the full model gets wrong that at least one plan other than the full model,
of cost at most c, gets right: what a per-document router choosing among those plans could fix at
best (``glue_painters.relayer_stats.oracle_fixes``).

**Chance.** With dozens of plans, a document on the edge is got right by some plan by luck, so the
oracle count is large even when no plan knows anything the full model does not. The baseline
permutes each document's outcomes across all plans (the full model included) and counts again
(``chance_fixes``), ``--permutations`` times (default ``stats.RESAMPLES``, enough for a 95% range
with ``stats.TAIL_DRAWS`` draws beyond each end), from a generator seeded by the unit; the table
gives its mean and central 95% range. What the comparison measures: a permutation keeps how many
plans get each document right and makes the full model one more draw among the plans, so the
chance count is what the oracle would be if the full model were an ordinary plan; the oracle is
above the range only when the full model is wrong, more often than a plan drawn at random, on
documents some eligible plan gets right. An oracle count inside or below the range is what
exchangeable plans give: the "fixes" are documents where the plans disagree by luck (below: the
full model loses fewer of those coin flips than a random plan), not errors some plan fixes for a
reason. The count and its share of the full model's errors are both shown (a permuted full row
has its own error count, so the chance share is the mean over permutations of count / errors).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from glue_painters import stats
from glue_painters.relayer_stats import chance_fixes, oracle_fixes, summary_range
from painters.report.html import Table
from painters.report.per_document import Unit, load_units, units_of
from painters.report.section import Section

DEFAULT_COST = 1.0
ANCHOR = "paths"


@dataclass
class Paths:
    unit: Unit
    labels: list[str]  # every plan of the unit, the full model first
    costs: list[float]
    right: np.ndarray  # (plans, documents) bool
    cost: float  # the oracle's budget c
    fixed: np.ndarray  # (documents,) bool: full wrong, some eligible plan right
    chance: np.ndarray  # (permutations,) the permuted counts
    chance_errors: np.ndarray  # (permutations,) the permuted full row's errors
    eligible: np.ndarray = field(repr=False, default=None)

    @property
    def name(self) -> str:
        return self.unit.task + ("" if self.unit.split == "all" else f" ({self.unit.split})")

    @property
    def errors(self) -> int:
        return int((~self.right[0]).sum())

    def chance_range(self) -> tuple[float, float, float]:
        return summary_range(self.chance)

    def chance_share(self) -> float:
        """Mean share over the permutations whose permuted full row has errors (NaN if none has)."""
        has = self.chance_errors > 0
        if not has.any():
            return float("nan")
        return float(np.mean(self.chance[has] / self.chance_errors[has]))

    def cheapest_fix(self, d: int) -> int | None:
        """The cheapest eligible plan right on document ``d`` (ties: the earlier plan), or None."""
        idx = [p for p in range(len(self.labels)) if self.eligible[p] and self.right[p, d]]
        return min(idx, key=lambda p: (self.costs[p], p)) if idx else None


def right_of(unit: Unit) -> tuple[list, np.ndarray] | str:
    """(plans with scores, full model first; (plans, documents) bool) of an accuracy-type unit, or
    why the unit cannot be read as right/wrong."""
    full = unit.full
    if full is None:
        return "no full-model record on these documents"
    base = unit.values(full)
    if base is None:
        return "the full model's record has no per-document scores of one number each"
    plans, rows = [full], [base]
    for p in unit.plans:
        v = unit.values(p)
        if p is full or v is None or v.shape != base.shape:
            continue
        plans.append(p)
        rows.append(v)
    x = np.stack(rows)
    if not np.isin(x, (0.0, 1.0)).all():
        return f"{unit.primary} is not right/wrong per document (values other than 0 and 1)"
    if len(plans) < 2:
        return "no plan besides the full model"
    return plans, x == 1.0


def unit_paths(unit: Unit, cost: float = DEFAULT_COST, permutations: int = stats.RESAMPLES) -> Paths | str:
    """The oracle and its chance baseline on one unit, or why the unit has none."""
    got = right_of(unit)
    if isinstance(got, str):
        return got
    plans, right = got
    T = unit.num_layers or plans[0].executions
    if not T:
        return "the model's layer count is unknown (no full-model record with its executions)"
    costs = [(p.executions or 0) / T for p in plans]
    eligible = np.array([k > 0 and c <= cost + 1e-9 for k, c in enumerate(costs)])
    rng = stats.generator("paths", unit.title, unit.task, unit.split, right.shape, [p.label for p in plans])
    counts, errors = chance_fixes(right, 0, eligible, permutations, rng=rng)
    return Paths(unit, [p.label for p in plans], costs, right, cost, oracle_fixes(right, 0, eligible), counts, errors,
                 eligible)


def all_paths(units: list[Unit], cost: float = DEFAULT_COST, permutations: int = stats.RESAMPLES):
    """(paths of every accuracy-type unit, [(unit name, why skipped)])."""
    out, skipped = [], []
    for u in units:
        got = unit_paths(u, cost, permutations)
        if isinstance(got, str):
            skipped.append((f"{u.title}: {u.task}" + ("" if u.split == "all" else f" ({u.split})"), got))
        else:
            out.append(got)
    return out, skipped


def load_paths(results, models=None, tasks=None, cost: float = DEFAULT_COST, permutations: int = stats.RESAMPLES):
    return all_paths(load_units(results, models, tasks), cost, permutations)


def summary_table(paths: list[Paths], skipped: list[tuple[str, str]]) -> Table:
    rows = []
    for p in paths:
        mean, low, high = p.chance_range()
        fixed = int(p.fixed.sum())
        share = fixed / p.errors if p.errors else float("nan")
        rows.append([p.unit.title, p.name, p.unit.primary, f"{p.right.shape[1]:,}", str(len(p.labels) - 1),
                     str(int(p.eligible.sum())), str(p.errors), f"{fixed} ({share:.0%})",
                     f"{mean:.1f} [{low:.0f}, {high:.0f}] ({p.chance_share():.0%})", f"{fixed - mean:+.1f}",
                     str(int((~p.right.any(axis=0)).sum())), str(int(p.right.all(axis=0).sum()))])
    cost = paths[0].cost if paths else DEFAULT_COST
    notes = [f"skipped {who}: {why}" for who, why in skipped]
    notes.append(f"eligible: plans other than the full model with cost (layer executions / T) at most {cost:g}; "
                 f"oracle: the full model's errors some eligible plan gets right; chance: the same count with each "
                 f"document's outcomes permuted across all plans, mean [central 95% range] over "
                 f"{len(paths[0].chance) if paths else 0:,} permutations, and its mean share of the permuted full "
                 f"row's errors; above chance: oracle − chance mean.")
    return Table(f"Per-document paths: the oracle at cost ≤ {cost:g} against chance",
                 ["model", "task", "metric", "documents", "other plans", "eligible", "full model's errors",
                  "oracle fixes (share)", "chance fixes: mean [95%] (share)", "above chance", "right by no plan",
                  "right by every plan"], rows, notes)


def errors_table(p: Paths) -> Table:
    """Each of the full model's errors: how many eligible plans get it right, and the cheapest."""
    rows = []
    for d in np.flatnonzero(~p.right[0]):
        k = p.cheapest_fix(int(d))
        n = int(p.right[p.eligible, d].sum())
        rows.append([str(int(d)), f"{n} of {int(p.eligible.sum())}",
                     "–" if k is None else f"{p.labels[k]} (cost {p.costs[k]:.2f})"])
    return Table(f"{p.unit.title}, {p.name}: the full model's errors", ["document", "eligible plans right",
                                                                         "cheapest plan right"], rows)


def to_json(paths: list[Paths], skipped, command: str) -> dict:
    """Everything the tables are drawn from: per unit its plans and, per document, the plans right."""
    units = []
    for p in paths:
        mean, low, high = p.chance_range()
        units.append({"model": p.unit.model, "title": p.unit.title, "task": p.unit.task, "split": p.unit.split,
                      "metric": p.unit.primary, "documents": int(p.right.shape[1]),
                      "plans": [{"label": lab, "cost": round(c, 6), "eligible": bool(e)}
                                for lab, c, e in zip(p.labels, p.costs, p.eligible)],
                      "full_errors": p.errors, "oracle_fixes": int(p.fixed.sum()),
                      "chance_fixes": {"mean": round(mean, 4), "low": low, "high": high, "permutations": len(p.chance)},
                      "right_by": [np.flatnonzero(p.right[:, d]).tolist() for d in range(p.right.shape[1])]})
    return {"command": command, "cost": paths[0].cost if paths else None,
            "skipped": [{"unit": who, "why": why} for who, why in skipped], "units": units,
            "right_by": "per document, the indices into plans of the plans that get it right (0: the full model)"}


INTRO = (
    "For each document, the plans that get it right (right = the document's score of the task's primary metric "
    "is 1; only tasks scored right/wrong per document are read; for multiple choice, lm-eval's per-document acc "
    "(gold choice most likely) or acc_norm (most likely per byte), whichever is the task's primary metric). The "
    "oracle is the share of the full model's errors that some other plan of cost at most c (layer executions / T) "
    "gets right: what a per-document choice of plan could fix at best. Beside it, what chance alone would fix: the "
    "same count with each document's outcomes permuted across all plans, the full model included (plans "
    "exchangeable: which plan got a document right carries no information, and the full model is one more draw "
    "among them). The oracle leaves the chance range only if the full model is wrong, more often than a random "
    "plan, on documents some cheap plan gets right; inside or below it, the oracle's fixes are documents the plans "
    "get right or wrong by luck.",
)


def section(paths: list[Paths], skipped, details: bool = False) -> Section:
    return Section(ANCHOR, "Per-document paths: which plans get each document right", list(INTRO),
                   [summary_table(paths, skipped)], [], [errors_table(p) for p in paths] if details else [])


__all__ = ["DEFAULT_COST", "Paths", "all_paths", "load_paths", "section", "summary_table", "to_json", "unit_paths",
           "units_of"]
