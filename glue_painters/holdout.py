"""A held-out split chosen before a scan, and the rule that picks the scan's winner.

Why: a scan over hundreds of plans (every duplicated block of a model, say) scored on one set of
documents picks the luckiest plan; its score on those documents is biased upward (the winner's
curse). Re-scoring the winner on documents the scan never saw gives an unbiased estimate. For that
to hold, the split must be fixed before any plan is scored and must not depend on the plans, on
their scores or on the order records land in a store: it is a function of the number of documents
and a seed alone (``split_documents``).

The split is by position in a task's evaluated documents (after ``limit``, in file order): each
position gets a SHA-256 of ``"<seed>:<position>"``, and the ``round(fraction * n)`` positions with
the smallest hashes are held out. A hash rather than ``random.shuffle``: the same split on every
Python and NumPy release, and a reader can check a store's split with nothing but this function.

What the split means in a record: ``selection(part, fraction, seed, n)`` is the value a track puts
into the record's key (so a held-out record never shares a key, a summary table or a pooled number
with a scan record of the same plan) and its ``part`` is shown as the record's ``split`` column
(``all`` for a record of every document).

The winner (``pick``): per task, the plan with the largest mean paired difference to the full model
on the scan part (higher is better; a lower-is-better metric's difference is negated). Across
tasks, the plan with the largest mean over tasks of that difference divided by the task's
``scale`` (the decoder track passes the full model's margin over chance, so the difference is on
the paper's normalized scale); tasks without a scale (the full model at chance, a perplexity) are
left out of that mean, and when no task has one, raw differences are averaged. Ties go to the
cheaper plan (fewer layer executions), then to the plan text, so every process of a sweep picks
the same plan.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from .errors import UserError

PARTS = ("scan", "holdout")


def split_documents(n_docs: int, fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """``(scan_ids, holdout_ids)``: positions ``0..n_docs-1`` split so that ``round(fraction *
    n_docs)`` are held out, each list ascending, disjoint, together every position. Depends on
    ``n_docs``, ``fraction`` and ``seed`` only."""
    check_fraction(fraction, "holdout fraction")
    if not isinstance(n_docs, int) or n_docs < 0:
        raise UserError(f"split_documents: n_docs must be a count, got {n_docs!r}")
    k = round(fraction * n_docs)
    if not 0 < k < n_docs:
        raise UserError(f"a held-out fraction of {fraction:g} of {n_docs} documents leaves "
                        f"{'no document held out' if k == 0 else 'no document to scan'}; "
                        f"evaluate more documents or change the fraction")
    order = sorted(range(n_docs), key=lambda d: hashlib.sha256(f"{seed}:{d}".encode()).digest())
    held = set(order[:k])
    return [d for d in range(n_docs) if d not in held], sorted(held)


def check_fraction(fraction, where: str) -> float:
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 < fraction < 1:
        raise UserError(f"{where} must be a number between 0 and 1 (the share of documents held out), got {fraction!r}")
    return float(fraction)


def selection(part: str, fraction: float, seed: int, n_docs: int) -> dict:
    """What a record's key holds about its documents: which part of which split of how many."""
    if part not in PARTS:
        raise ValueError(f"part must be one of {PARTS}, got {part!r}")
    return {"part": part, "fraction": float(fraction), "seed": int(seed), "of": int(n_docs)}


def part_of(subset: dict | None) -> str:
    """A record's ``split`` from its key's subset: ``scan``, ``holdout`` or ``all``."""
    return ((subset or {}).get("selection") or {}).get("part", "all")


@dataclass
class Pick:
    """The scan's winners: ``per_task[task]`` the best plan on that task, ``overall`` the best by
    the mean normalized difference; ``differences[task][plan]`` each plan's improvement on the full
    model (sign-adjusted), ``overall_scores[plan]`` what ``overall`` maximised; ``rule`` says how."""

    per_task: dict[str, str]
    overall: str | None
    differences: dict[str, dict[str, float]] = field(default_factory=dict)
    overall_scores: dict[str, float] = field(default_factory=dict)
    rule: str = ""

    def plans_for(self, task: str) -> list[str]:
        """The plans to re-score on ``task``'s held-out part, besides the full model."""
        return list(dict.fromkeys(p for p in (self.per_task.get(task), self.overall) if p is not None))


def pick(differences: dict[str, dict[str, float]], scale: dict[str, float | None],
         cost: dict[str, float] | None = None) -> Pick:
    """Choose the winners from ``differences[task][plan]`` (plan minus full on the scan part,
    already negated where lower is better; the full model itself left out) and ``scale[task]``
    (None: the task is left out of the overall mean). See the module docstring for the rule."""
    cost = cost or {}

    def best(scores: dict[str, float]) -> str | None:
        return min(scores, key=lambda p: (-scores[p], cost.get(p, 0), p)) if scores else None

    per_task = {t: b for t, d in differences.items() if (b := best(d)) is not None}
    used = [t for t in differences if scale.get(t)]
    if used:
        rule = ("mean over " + ", ".join(used) + " of (plan - full) / (full - chance)"
                + (f"; left out (no scale): {', '.join(t for t in differences if t not in used)}"
                   if len(used) < len(differences) else ""))
        weights = {t: 1.0 / scale[t] for t in used}
    else:
        used = list(differences)
        rule = "mean over " + ", ".join(used) + " of plan - full (no task has a scale: raw differences)"
        weights = {t: 1.0 for t in used}
    common = set.intersection(*(set(differences[t]) for t in used)) if used else set()
    overall_scores = {p: sum(differences[t][p] * weights[t] for t in used) / len(used) for p in common}
    return Pick(per_task, best(overall_scores), differences, overall_scores, rule)
